"""Stage 5, `student`: distil the student (`DistillationTrainer` on the cached logits, the transfer set with the
distillation term only; the online teacher only when hidden-state or attention terms or `student.online_teacher`
ask for it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...recipe.config import DistillationPipelineConfig
from ..context import PipelineRun
from ..stage import Stage, general_identity, student_fields, student_model_identity
from ..students import new_student
from .student_warmup import after_logits

__all__ = ["STUDENT"]


def _after(config: DistillationPipelineConfig) -> tuple[str, ...]:
    return ("student_warmup",) if config.student.warmup_epochs else after_logits(config)


def _inputs(config: DistillationPipelineConfig, upstream: Mapping[str, str]) -> dict[str, Any]:
    return {
        "upstream": upstream["student_warmup"] if config.student.warmup_epochs else upstream["teacher_logits"],
        "student": student_fields(config),
        "model": student_model_identity(config),
        "general": general_identity(config, upstream),
    }


def _run(run: PipelineRun) -> None:
    done = run.done("student")
    if done is not None:
        run.student_dir, run.student_info = done["model"], done
        return run.skip("student", "done")
    online = run.config.student.needs_online_teacher
    run.banner("student", f"distilling the student from {'the online teacher' if online else 'cached logits'}")
    folder = run.stage_dir("student")
    trainer = run.distillation_trainer(folder / "checkpoints", run.logits, new_student(run, run.warm_model))
    model_dir, adapter_dir, seconds = run.fit("student", trainer)
    info = {
        "model": model_dir,
        "online_teacher": online,
        "train_seconds": seconds,
        "args": dict(run.config.student.training),
    }
    if adapter_dir is not None:
        info.update({"lora": run.config.student.lora, "adapter": adapter_dir})
    run.mark_done("student", info)
    run.stages["student"] = "ran"
    run.student_dir, run.student_info = model_dir, info


STUDENT = Stage(name="student", inputs=_inputs, run=_run, outputs=("student_dir", "student_info"), after=_after)
