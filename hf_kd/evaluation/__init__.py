"""Evaluation: metrics, decision thresholds, the array checks they share, BLURB's HoC scoring, the task-default
metrics, size and latency, and the `evaluate` modules. Imports only `hf_kd.constants`.

The order between subpackages is written in `docs/src/architecture.md` and checked by `tests/test_layout.py`.
"""
