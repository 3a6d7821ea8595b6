"""Stage 0 (optional), `general_distillation`: the student distilled from the pretrained teacher on the run's text,
labels unused (`student.general_distillation`; `hf_kd.pipeline.stage_models.run_general_distillation`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...recipe.config import DistillationPipelineConfig
from ..context import PipelineRun
from ..markers import files_identity
from ..stage import (
    GENERAL_STUDENT_FIELDS,
    Stage,
    data_identity,
    student_fields,
    student_model_identity,
    transfer_identity,
)
from ..stage_models import run_general_distillation

__all__ = ["GENERAL_DISTILLATION", "runs_general_distillation"]


def runs_general_distillation(config: DistillationPipelineConfig) -> bool:
    """Whether the recipe trains a general distillation here (not when it reuses another run's)."""
    general = config.student.general_distillation
    return general is not None and general.get("model") is None


def _inputs(config: DistillationPipelineConfig, upstream: Mapping[str, str]) -> dict[str, Any] | None:
    # The pretrained teacher, the student's architecture and the text; not the fine-tuning.
    if not runs_general_distillation(config):
        return None
    general = config.student.general_distillation or {}
    return {
        "data": data_identity(config),
        "transfer": transfer_identity(config),
        "teacher": files_identity(general.get("teacher") or config.teacher.model),
        "student": {k: v for k, v in student_fields(config).items() if k in GENERAL_STUDENT_FIELDS},
        "model": student_model_identity(config),
    }


def _run(run: PipelineRun) -> None:
    run.general_model = run_general_distillation(run)


GENERAL_DISTILLATION = Stage(
    name="general_distillation",
    inputs=_inputs,
    run=_run,
    outputs=("general_model",),
    in_recipe=lambda config: config.student.general_distillation is not None,
)
