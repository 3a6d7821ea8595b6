"""A resumable, recipe-driven distillation pipeline: teacher fine-tuning → gate → cached logits → student → report.

[`run_pipeline`] runs a [`~hf_kd.recipe.config.DistillationPipelineConfig`] in up to seven stages, each declared in
`hf_kd.pipeline.stages` (its inputs, outputs and run), each writing under `output_dir/<stage>/` and leaving a
`DONE.json` marker with the fingerprint of its declared inputs (`hf_kd.pipeline.stage`, `hf_kd.pipeline.markers`):

0. `general_distillation` (optional): the student distilled from the pretrained teacher on text.
1. `teacher`: fine-tune the teacher on the hard labels (`DistillationTrainer` with `alpha=1`), unless the given
   teacher is already fine-tuned on this label space (its `config.id2label` equals the dataset's label names).
2. `teacher_eval`: evaluate the teacher on the labelled validation (and test) split; with
   `evaluation.min_teacher_metric`, stop with a `QualityGateError` when the teacher is below the gate.
3. `teacher_logits`: run the teacher once over the training rows and the transfer set (unlabeled rows,
   `hf_kd.pipeline.splits.transfer_set`) with `cache_teacher_logits`, shared between processes; saved with
   `save_to_disk`.
4. `student_warmup` (optional, `student.warmup_epochs > 0`): train the student on the labelled rows only.
5. `student`: distil (`DistillationTrainer` on the cached logits, the transfer set with the distillation term only;
   the online teacher only when hidden-state or attention terms or `student.online_teacher` ask for it).
6. `evaluation`: evaluate the student like the teacher (`hf_kd.pipeline.scoring`), predict an unlabeled test split,
   save the operating threshold in `config.json`, write the report, figures and card (`hf_kd.pipeline.run_report`),
   and push the student to the Hub when the student section names a `hub_model_id` (or sets `push_to_hub`).

Before the first stage, the whole recipe is checked (`hf_kd.pipeline.preflight`), the folder is locked against a
second run, and every stage whose inputs changed since its marker was written is removed, with those made from it, so
that a rerun recomputes exactly what a changed field affects and skips the rest. Training stages save a checkpoint
every 200 steps (the last one kept) and resume from it when the stage was interrupted. Each stage prints a one-line
banner, and its training shows Trainer's progress bar. The `datasets` cache files (copies of the text) are kept in
`output_dir/cache/` and removed when the run succeeds, unless `data.keep_cache`. Logs, reports and errors never
contain example text. Under `accelerate launch` every process runs the stages, and only the main process writes
markers, reports and cards and prints.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ..processes import is_main_process, start_state
from ..recipe.config import DistillationPipelineConfig
from .context import PipelineRun
from .markers import DONE_FILE, RunLock
from .scoring import QualityGateError
from .stages import PIPELINE, STAGES

__all__ = ["DONE_FILE", "STAGES", "PipelineRun", "QualityGateError", "run_pipeline"]


def run_pipeline(config: DistillationPipelineConfig, force_unlock: bool = False) -> dict[str, Any]:
    """
    Run (or resume) the distillation recipe `config`; see the module docstring for the stages.

    Args:
        config ([`~hf_kd.recipe.config.DistillationPipelineConfig`]):
            The recipe.
        force_unlock (`bool`, *optional*, defaults to `False`):
            Take over a lock of `output_dir` from another host or unreadable (`--force-unlock`, `RunLock`).

    Returns:
        `dict[str, Any]`: `output_dir`, `stages` (what each stage did: `"ran"`, `"skipped (...)"` or
        `"disabled"`), `teacher_model` and `student_model` (paths), `teacher` and `student` (metrics per split) and
        `report` (the `hf_kd.reporting.report` report when written in this run, else None).

    Raises:
        [`QualityGateError`]: When the teacher is below `evaluation.min_teacher_metric`.
        [`~hf_kd.pipeline.markers.RunLockedError`]: When another live run (or another host's) holds `output_dir`.
        `ValueError`: When the recipe does not fit its data or models (before any stage runs).
    """
    start_state(cpu=config.use_cpu)  # the main process holds the folder's lock for the processes of its launch
    with RunLock(Path(config.output_dir), force_unlock) if is_main_process() else contextlib.nullcontext():
        run = PipelineRun(config, PIPELINE)
        run.start()
        for stage in PIPELINE:  # general distillation, teacher, its evaluation, logits, warm-up, student, evaluation
            stage.run(run)
        run.finish()
    return {
        "output_dir": str(run.root),
        "stages": dict(run.stages),
        "teacher_model": run.teacher_path,
        "student_model": run.student_dir,
        "teacher": run.result["teacher"],
        "student": run.result["student"],
        "report": run.result.get("report"),
    }
