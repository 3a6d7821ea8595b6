"""hf_kd: knowledge distillation of text classifiers as a drop-in `transformers.Trainer`."""

from .data import (
    DistillationDataCollator,
    load_classification_dataset,
    load_codiesp,
    load_hoc,
    tokenize_for_distillation,
)
from .config import DistillationTrainingArguments
from .trainer import DistillationTrainer
from .student import student_from_teacher
from .teacher_cache import cache_teacher_logits

__version__ = "0.1.0"

__all__ = [
    "DistillationDataCollator",
    "DistillationTrainer",
    "DistillationTrainingArguments",
    "__version__",
    "cache_teacher_logits",
    "load_classification_dataset",
    "load_codiesp",
    "load_hoc",
    "student_from_teacher",
    "tokenize_for_distillation",
]
