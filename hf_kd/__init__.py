"""hf_kd: knowledge distillation of text classifiers as a drop-in `transformers.Trainer`."""

from .distillation_config import DistillationTrainingArguments
from .distillation_trainer import DistillationTrainer
from .teacher_cache import cache_teacher_logits

__version__ = "0.1.0"

__all__ = [
    "DistillationTrainer",
    "DistillationTrainingArguments",
    "__version__",
    "cache_teacher_logits",
]
