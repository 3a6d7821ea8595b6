"""The pipeline: the stages a recipe runs (`run_pipeline`), their markers, the checks before the first stage,
the splits a run uses, the models of each stage, the evaluation stage and its report, and `hf-kd search`.

The order between subpackages is written in `docs/src/architecture.md` and checked by `tests/test_layout.py`.
"""
