"""Stage 1, `teacher`: fine-tune the teacher on the hard labels (`DistillationTrainer` with `alpha=1`), unless the
given teacher is already fine-tuned on this label space (its `config.id2label` equals the dataset's label names)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from ...recipe.config import DistillationPipelineConfig
from ...training.distillation_trainer import DistillationTrainer
from ..builders import is_finetuned_on, load_classifier, with_lora
from ..context import PipelineRun
from ..markers import files_identity
from ..splits import model_columns
from ..stage import Stage, data_identity

logger = logging.getLogger(__name__)

__all__ = ["TEACHER"]


def _inputs(config: DistillationPipelineConfig, upstream: Mapping[str, str]) -> dict[str, Any]:
    return {
        "data": data_identity(config),
        "teacher": asdict(config.teacher),
        "model": files_identity(config.teacher.model),
    }


def _run(run: PipelineRun) -> None:
    done = run.done("teacher")
    if done is not None:
        run.teacher_path = done["model"]
        return run.skip("teacher", "done")
    if is_finetuned_on(run.teacher_name, run.label_names):
        logger.info("Teacher is already fine-tuned on this label space; skipping its fine-tuning.")
        run.teacher_path = run.teacher_name
        run.mark_done("teacher", {"model": run.teacher_name, "fine_tuned": False, "reason": "already fine-tuned"})
        return run.skip("teacher", "teacher already fine-tuned")
    run.banner("teacher", "fine-tuning the teacher on the hard labels")
    model = load_classifier(run.teacher_name, run.label_names, run.problem_type, seed=run.config.seed)
    lora = run.config.teacher.lora
    trainer = DistillationTrainer(
        model=with_lora(model, lora, "teacher", run.config.seed),
        args=run.training_arguments("teacher", run.stage_dir("teacher") / "checkpoints"),
        train_dataset=run.teacher_train,
        eval_dataset=model_columns(run.teacher_evals[run.validation_split]),
        processing_class=run.teacher_tokenizer,
        compute_metrics=run.compute_metrics(),
    )
    run.teacher_path, adapter_dir, seconds = run.fit("teacher", trainer)
    info = {"model": run.teacher_path, "fine_tuned": True, "train_seconds": seconds}
    if lora is not None:
        info.update({"lora": lora, "adapter": adapter_dir})
    run.mark_done("teacher", info)
    run.stages["teacher"] = "ran"


TEACHER = Stage(name="teacher", inputs=_inputs, run=_run, outputs=("teacher_path",))
