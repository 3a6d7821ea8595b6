"""Stage 0 (optional), `general_distillation`: the student distilled from the pretrained teacher on the run's text,
labels unused (`student.general_distillation`, [`run_general_distillation`])."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...constants import LABELS_COLUMN
from ...recipe.config import DistillationPipelineConfig
from ...training.distillation_trainer import DistillationTrainer
from ..builders import general_arguments, load_classifier
from ..context import PipelineRun
from ..markers import files_identity
from ..splits import model_columns
from ..stage import (
    GENERAL_STUDENT_FIELDS,
    Stage,
    data_identity,
    student_fields,
    student_model_identity,
    transfer_identity,
)
from ..students import build_student

__all__ = ["GENERAL_DISTILLATION", "run_general_distillation", "runs_general_distillation"]


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


def run_general_distillation(run: PipelineRun) -> str | None:
    """
    The pipeline's optional first stage, `general_distillation` (`student.general_distillation`): build the student
    from the pretrained teacher (`teacher.model`, or the section's `teacher`, e.g. the base an already fine-tuned
    `teacher.model` was fine-tuned from) and distil its encoder on the run's text (the
    labelled training rows and the transfer set, labels unused) with the hidden-state and MiniLMv2 relation terms
    (`alpha=1` and no labels: no logit term). The task stages then start from its encoder
    ([`~hf_kd.training.student.load_encoder`]); `model: <path>` in the section reuses another run's output instead.

    Args:
        run ([`~hf_kd.pipeline.context.PipelineRun`]):
            The run.

    Returns:
        `str` or `None`: The general-distilled student's folder, or `None` when the recipe has no such stage.
    """
    stage, settings = "general_distillation", run.config.student.general_distillation
    if settings is None:
        run.stages[stage] = "disabled"
        return None
    if settings.get("model") is not None:
        run.skip(stage, f"reusing {settings['model']}")
        return str(settings["model"])
    done = run.done(stage)
    if done is not None:
        run.skip(stage, "done")
        return str(done["model"])
    rows = model_columns(run.student_train)  # the teacher_* columns stay when the teacher reads its own tokens
    rows = rows.remove_columns([c for c in (LABELS_COLUMN,) if c in rows.column_names])
    run.banner(stage, f"distilling the student from the pretrained teacher on {len(rows)} texts, no labels")
    source = str(settings.get("teacher") or run.teacher_name)
    pretrained = load_classifier(source, run.label_names, run.problem_type, seed=run.config.seed)
    student = build_student(run, teacher=pretrained)  # a copy: pruning the teacher below leaves the student alone
    teacher = run.distillation_teacher(pretrained)
    folder = run.stage_dir(stage)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=general_arguments(run.config, folder / "checkpoints"),
        train_dataset=rows,
        processing_class=run.student_tokenizer,
        teacher_processing_class=run.distill_teacher_tokenizer,
    )
    model_dir, _, seconds = run.fit(stage, trainer)
    run.mark_done(stage, {"model": model_dir, "num_rows": len(rows), "train_seconds": seconds})
    run.stages[stage] = "ran"
    return model_dir


def _run(run: PipelineRun) -> None:
    run.general_model = run_general_distillation(run)


GENERAL_DISTILLATION = Stage(
    name="general_distillation",
    inputs=_inputs,
    run=_run,
    outputs=("general_model",),
    in_recipe=lambda config: config.student.general_distillation is not None,
)
