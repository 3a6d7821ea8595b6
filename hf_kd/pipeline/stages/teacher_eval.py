"""Stage 2, `teacher_eval`: evaluate the teacher on the labelled validation (and test) split; with
`evaluation.min_teacher_metric`, stop with a `QualityGateError` when the teacher is below the gate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...evaluation.tasks import default_metric
from ...recipe.config import DistillationPipelineConfig
from ..context import PipelineRun
from ..run_report import save_predictions
from ..scoring import apply_gate
from ..stage import Stage

__all__ = ["TEACHER_EVAL"]


def _inputs(config: DistillationPipelineConfig, upstream: Mapping[str, str]) -> dict[str, Any]:
    # The gate (`gate_metric`, `min_teacher_metric`) is read after the evaluation: not an input.
    return {"teacher": upstream["teacher"], "threshold": config.evaluation.threshold}


def _run(run: PipelineRun) -> None:
    done = run.done("teacher_eval")
    if done is not None:
        metrics = done["metrics"]
        run.skip("teacher_eval", "done")
    else:
        run.banner("teacher_eval", "evaluating the teacher")
        folder = run.stage_dir("teacher_eval")
        metrics, outputs = run.evaluate(run.load_teacher(), run.teacher_tokenizer, run.teacher_evals, folder)
        save_predictions(folder, outputs)
        run.mark_done("teacher_eval", {"metrics": metrics})
        run.stages["teacher_eval"] = "ran"
    run.teacher_metrics = metrics
    gate = run.config.evaluation.min_teacher_metric
    if gate is not None:
        name = run.config.evaluation.gate_metric or default_metric(run.task, run.grouped)
        apply_gate(metrics[run.validation_split].get(name), gate, name, run.validation_split)


TEACHER_EVAL = Stage(
    name="teacher_eval", inputs=_inputs, run=_run, outputs=("teacher_metrics",), after=lambda config: ("teacher",)
)
