"""Training: `DistillationTrainer` and `DistillationTrainingArguments`, the losses, intermediate-layer terms,
the teacher (loading, placement, cached logits), students built from the teacher, and accelerate's process state.

The order between subpackages is written in `docs/src/architecture.md` and checked by `tests/test_layout.py`.
"""
