"""hf_kd: knowledge distillation of text classifiers as a drop-in `transformers.Trainer`.

The public API is imported lazily (PEP 562), so `import hf_kd` and the `hf-kd` command start fast; each name is
loaded from its module on first use:

| name | module |
| --- | --- |
| `DistillationTrainer` | `hf_kd.trainer` |
| `DistillationTrainingArguments` | `hf_kd.config` |
| `DistillationDataCollator` | `hf_kd.collator` |
| `load_classification_dataset`, `tokenize_for_distillation` | `hf_kd.data` |
| `load_hoc`, `load_codiesp` | `hf_kd.corpora` |
| `cache_teacher_logits` | `hf_kd.teacher_cache` |
| `student_from_teacher` | `hf_kd.student` |
| `make_compute_metrics` | `hf_kd.metrics` |
| `DistillationCardData` | `hf_kd.card_data` |
| `build_model_card`, `write_model_card` | `hf_kd.model_card` |
| `DistillationPipelineConfig` | `hf_kd.recipe` |
| `run_pipeline` | `hf_kd.pipeline` |
| `evaluate_model` | `hf_kd.evaluation` |
| `run_search` | `hf_kd.recipe_search` |
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("hf-kd")
except PackageNotFoundError:  # pragma: no cover - a source tree that was not installed
    __version__ = "0+unknown"

_EXPORTS: dict[str, str] = {
    "DistillationCardData": "card_data",
    "DistillationDataCollator": "collator",
    "DistillationPipelineConfig": "recipe",
    "DistillationTrainer": "trainer",
    "DistillationTrainingArguments": "config",
    "build_model_card": "model_card",
    "cache_teacher_logits": "teacher_cache",
    "evaluate_model": "evaluation",
    "load_classification_dataset": "data",
    "load_codiesp": "corpora",
    "load_hoc": "corpora",
    "make_compute_metrics": "metrics",
    "run_pipeline": "pipeline",
    "run_search": "recipe_search",
    "student_from_teacher": "student",
    "tokenize_for_distillation": "data",
    "write_model_card": "model_card",
}

__all__ = [
    "DistillationCardData",
    "DistillationDataCollator",
    "DistillationPipelineConfig",
    "DistillationTrainer",
    "DistillationTrainingArguments",
    "__version__",
    "build_model_card",
    "cache_teacher_logits",
    "evaluate_model",
    "load_classification_dataset",
    "load_codiesp",
    "load_hoc",
    "make_compute_metrics",
    "run_pipeline",
    "run_search",
    "student_from_teacher",
    "tokenize_for_distillation",
    "write_model_card",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hf_kd' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from .card_data import DistillationCardData
    from .collator import DistillationDataCollator
    from .config import DistillationTrainingArguments
    from .corpora import load_codiesp, load_hoc
    from .data import load_classification_dataset, tokenize_for_distillation
    from .evaluation import evaluate_model
    from .metrics import make_compute_metrics
    from .model_card import build_model_card, write_model_card
    from .pipeline import run_pipeline
    from .recipe import DistillationPipelineConfig
    from .recipe_search import run_search
    from .student import student_from_teacher
    from .teacher_cache import cache_teacher_logits
    from .trainer import DistillationTrainer
