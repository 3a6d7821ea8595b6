"""Kept importable: `DistillationTrainingArguments` lives in `hf_kd.config`."""

from .config import DistillationTrainingArguments

__all__ = ["DistillationTrainingArguments"]
