"""Data: files read with `datasets`' loaders, label columns, the two corpora, unlabeled text, the collator and
the word alignment of two tokenizers. Imports only `hf_kd.constants`.

The order between subpackages is written in `docs/src/architecture.md` and checked by `tests/test_layout.py`.
"""
