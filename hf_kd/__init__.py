"""hf_kd: knowledge distillation of text classifiers as a drop-in `transformers.Trainer`.

The public API is imported lazily (PEP 562), so `import hf_kd` and the `hf-kd` command start fast; each name is
loaded from its module on first use:

| name | module |
| --- | --- |
| `DistillationTrainer` | `hf_kd.training.distillation_trainer` |
| `DistillationTrainingArguments` | `hf_kd.training.distillation_config` |
| `DistillationDataCollator` | `hf_kd.data.collator` |
| `load_classification_dataset`, `tokenize_for_distillation` | `hf_kd.data.loading` |
| `load_hoc`, `load_codiesp` | `hf_kd.data.corpora` |
| `cache_teacher_logits` | `hf_kd.training.teacher_cache` |
| `student_from_teacher` | `hf_kd.training.student` |
| `make_compute_metrics` | `hf_kd.evaluation.metrics` |
| `DistillationCardData` | `hf_kd.reporting.card_data` |
| `build_model_card`, `write_model_card` | `hf_kd.reporting.model_card` |
| `DistillationPipelineConfig` | `hf_kd.recipe.config` |
| `run_pipeline` | `hf_kd.pipeline.run` |
| `evaluate_model` | `hf_kd.pipeline.evaluation` |
| `run_search` | `hf_kd.pipeline.recipe_search` |
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
    "DistillationCardData": "reporting.card_data",
    "DistillationDataCollator": "data.collator",
    "DistillationPipelineConfig": "recipe.config",
    "DistillationTrainer": "training.distillation_trainer",
    "DistillationTrainingArguments": "training.distillation_config",
    "build_model_card": "reporting.model_card",
    "cache_teacher_logits": "training.teacher_cache",
    "evaluate_model": "pipeline.evaluation",
    "load_classification_dataset": "data.loading",
    "load_codiesp": "data.corpora",
    "load_hoc": "data.corpora",
    "make_compute_metrics": "evaluation.metrics",
    "run_pipeline": "pipeline.run",
    "run_search": "pipeline.recipe_search",
    "student_from_teacher": "training.student",
    "tokenize_for_distillation": "data.loading",
    "write_model_card": "reporting.model_card",
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
    from .data.collator import DistillationDataCollator
    from .data.corpora import load_codiesp, load_hoc
    from .data.loading import load_classification_dataset, tokenize_for_distillation
    from .evaluation.metrics import make_compute_metrics
    from .pipeline.evaluation import evaluate_model
    from .pipeline.recipe_search import run_search
    from .pipeline.run import run_pipeline
    from .recipe.config import DistillationPipelineConfig
    from .reporting.card_data import DistillationCardData
    from .reporting.model_card import build_model_card, write_model_card
    from .training.distillation_config import DistillationTrainingArguments
    from .training.distillation_trainer import DistillationTrainer
    from .training.student import student_from_teacher
    from .training.teacher_cache import cache_teacher_logits
