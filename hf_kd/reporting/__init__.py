"""Reporting: the teacher-vs-student report, the model card and what it records, and the figures.

The order between subpackages is written in `docs/src/architecture.md` and checked by `tests/test_layout.py`.
"""
