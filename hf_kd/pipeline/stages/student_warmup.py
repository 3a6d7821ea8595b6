"""Stage 4 (optional, `student.warmup_epochs > 0`), `student_warmup`: train the student on the labelled rows' hard
labels only, before the distillation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...constants import TEACHER_LOGITS_COLUMN
from ...recipe.config import DistillationPipelineConfig
from ...training.distillation_trainer import DistillationTrainer
from ..context import PipelineRun
from ..splits import model_columns
from ..stage import Stage, general_identity, student_model_identity, warmup_fields
from ..students import new_student
from .general_distillation import runs_general_distillation

__all__ = ["STUDENT_WARMUP", "after_logits"]


def after_logits(config: DistillationPipelineConfig) -> tuple[str, ...]:
    """The teacher's logits, and the general distillation when the recipe runs one: what a student starts from."""
    return ("teacher_logits", "general_distillation") if runs_general_distillation(config) else ("teacher_logits",)


def _inputs(config: DistillationPipelineConfig, upstream: Mapping[str, str]) -> dict[str, Any]:
    return {
        "teacher_logits": upstream["teacher_logits"],
        "student": warmup_fields(config),
        "model": student_model_identity(config),
        "general": general_identity(config, upstream),
    }


def _run(run: PipelineRun) -> None:
    epochs = run.config.student.warmup_epochs
    if not epochs:
        run.stages["student_warmup"] = "disabled"
        return None
    done = run.done("student_warmup")
    if done is not None:
        run.warm_model = done["model"]
        return run.skip("student_warmup", "done")
    run.banner("student_warmup", f"{epochs:g} epoch(s) of hard-label training of the student")
    labelled = run.logits.select(range(run.n_train)).remove_columns([TEACHER_LOGITS_COLUMN])
    trainer = DistillationTrainer(
        model=new_student(run),
        args=run.training_arguments("student_warmup", run.stage_dir("student_warmup") / "checkpoints"),
        # the labelled rows only: the transfer set (after them) has no hard label to learn
        train_dataset=model_columns(labelled, teacher_side=False),
        processing_class=run.student_tokenizer,
        compute_metrics=run.compute_metrics(),
    )
    model_dir, adapter_dir, _ = run.fit("student_warmup", trainer)
    run.mark_done("student_warmup", {"model": model_dir, **({"adapter": adapter_dir} if adapter_dir else {})})
    run.stages["student_warmup"] = "ran"
    run.warm_model = model_dir


STUDENT_WARMUP = Stage(name="student_warmup", inputs=_inputs, run=_run, outputs=("warm_model",), after=after_logits)
