"""Kept importable: `DistillationTrainer` lives in `hf_kd.trainer`."""

from .trainer import DistillationTrainer

__all__ = ["DistillationTrainer"]
