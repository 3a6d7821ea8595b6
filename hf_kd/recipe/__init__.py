"""Recipes: `DistillationPipelineConfig` (the YAML recipe and its `--section.field` parser), its sections, and the
starting recipe `hf-kd init` writes.

The order between subpackages is written in `docs/src/architecture.md` and checked by `tests/test_layout.py`.
"""
