"""The pipeline's stages, declared one per module, in the order they run (`PIPELINE`).

Each module declares one [`~hf_kd.pipeline.stage.Stage`]: its inputs (the recipe fields and upstream fingerprints
it is made from), its outputs (what it sets on the [`~hf_kd.pipeline.context.PipelineRun`]) and its `run`. To add a
stage, write its module and put it in `PIPELINE` after the stages it reads.
"""

from __future__ import annotations

from typing import Any

from ...recipe.config import DistillationPipelineConfig
from ..stage import Stage, declared_fingerprints
from .evaluation import EVALUATION
from .general_distillation import GENERAL_DISTILLATION
from .student import STUDENT
from .student_warmup import STUDENT_WARMUP
from .teacher import TEACHER
from .teacher_eval import TEACHER_EVAL
from .teacher_logits import TEACHER_LOGITS

__all__ = ["PIPELINE", "STAGES", "stage_fingerprints"]

PIPELINE: tuple[Stage, ...] = (
    GENERAL_DISTILLATION, TEACHER, TEACHER_EVAL, TEACHER_LOGITS, STUDENT_WARMUP, STUDENT, EVALUATION,
)  # fmt: skip
"""The stages, in the order they run; each writes under `output_dir/<stage>/`."""

STAGES: tuple[str, ...] = tuple(stage.name for stage in PIPELINE)
"""The stages' names, in order."""


def stage_fingerprints(config: DistillationPipelineConfig) -> dict[str, dict[str, Any]]:
    """
    What each stage of [`PIPELINE`] is made from for a recipe, and its fingerprint
    ([`~hf_kd.pipeline.stage.declared_fingerprints`]).

    Args:
        config ([`~hf_kd.recipe.config.DistillationPipelineConfig`]):
            The recipe.

    Returns:
        `dict[str, dict]`: Stage -> `{"fingerprint", "inputs", "after"}`.
    """
    return declared_fingerprints(PIPELINE, config)
