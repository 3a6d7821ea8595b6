"""Stage 6, `evaluation`: evaluate the student like the teacher (`hf_kd.pipeline.scoring`), predict an unlabeled
test split, save the operating threshold in the student's `config.json`, export it when `evaluation.export` asks,
write the report, figures and card (`hf_kd.pipeline.run_report`), and push the student to the Hub when the student
section names a `hub_model_id` (or sets `push_to_hub`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...constants import has_threshold
from ...evaluation.thresholds import save_threshold
from ...processes import is_main_process
from ...recipe.config import DistillationPipelineConfig
from ..builders import load_classifier
from ..context import PipelineRun
from ..push import push_student
from ..run_report import predict_unlabeled, save_predictions, write_run_report
from ..scoring import evaluate_splits
from ..stage import Stage

__all__ = ["EVALUATION", "export_student"]


def export_student(run: PipelineRun, student_dir: str, folder: Path, threshold: float | None) -> dict[str, Any]:
    """
    The pipeline's `evaluation.export`: export the student to ONNX in `folder/export/`, and evaluate it through
    onnxruntime on the run's splits at the student's threshold.

    Args:
        run ([`~hf_kd.pipeline.context.PipelineRun`]):
            The run.
        student_dir (`str`):
            The student's folder.
        folder (`Path`):
            The evaluation stage's folder.
        threshold (`float`, *optional*):
            The student's operating threshold (multi-label and binary tasks).

    Returns:
        `dict[str, Any]`: `metrics` (per split), `export` (what [`export_onnx`] wrote) and `classifier` (the loaded
        [`~hf_kd.export.onnx_classifier.OnnxClassifier`]).
    """
    import torch

    from ...export.onnx import export_onnx
    from ...export.onnx_classifier import OnnxClassifier

    config = run.config.evaluation
    target = folder / "export"
    quantize = None if config.export == "fp32" else config.export
    # Static int8 calibrates its activation ranges on the first training texts (read in memory, never written).
    calibration = run.splits.train[run.config.data.text_column][:256] if quantize == "int8-static" else None
    info = export_onnx(student_dir, target, quantize=quantize, calibration_texts=calibration)
    classifier = OnnxClassifier.from_pretrained(target, num_threads=torch.get_num_threads())
    metrics, _ = evaluate_splits(
        classifier,
        run.student_tokenizer,
        run.student_evals,
        run.validation_split,
        run.task,
        run.label_names,
        config.threshold,
        folder / "tmp",
        config.batch_size,
        fixed_threshold=threshold,
    )
    return {"metrics": metrics, "export": info, "classifier": classifier}


def _inputs(config: DistillationPipelineConfig, upstream: Mapping[str, str]) -> dict[str, Any]:
    gate = ("gate_metric", "min_teacher_metric")  # read after the teacher's evaluation, not inputs of a stage
    return {
        "student": upstream["student"],
        "teacher_eval": upstream["teacher_eval"],
        "evaluation": {k: v for k, v in asdict(config.evaluation).items() if k not in gate},
        "ids": config.data.id_column,  # read by the predictions of an unlabeled test split only
    }


def _run(run: PipelineRun) -> None:
    done = run.done("evaluation")
    if done is not None:
        run.result = done
        return run.skip("evaluation", "done")
    run.banner("evaluation", "evaluating the student and writing the report")
    folder, student_dir, teacher_metrics = run.stage_dir("evaluation"), run.student_dir, run.teacher_metrics
    student = load_classifier(student_dir, run.label_names, run.problem_type)
    student_metrics, outputs = run.evaluate(student, run.student_tokenizer, run.student_evals, folder)
    save_predictions(folder, outputs)
    result: dict[str, Any] = {"teacher": teacher_metrics, "student": student_metrics}
    threshold = None
    if has_threshold(run.task):  # the operating point travels with the model
        threshold = student_metrics[run.validation_split]["threshold"]
    if run.student_predict:
        result["predicted"] = predict_unlabeled(run, student, folder, threshold)
    if is_main_process():
        if threshold is not None:
            save_threshold(student.config, threshold)
            student.config.save_pretrained(student_dir)
        if run.config.data.max_length:  # `hf-kd export` and `hf-kd predict` truncate where training did
            run.student_tokenizer.model_max_length = int(run.config.data.max_length)
            run.student_tokenizer.save_pretrained(student_dir)
        exported = export_student(run, student_dir, folder, threshold) if run.config.evaluation.export else None
        if exported is not None:
            result["exported"] = exported["metrics"]
        result["report"] = write_run_report(
            run, student, student_dir, teacher_metrics, student_metrics, folder, exported=exported
        )
        result["pushed_to"] = push_student(run, student_dir)
    run.mark_done("evaluation", result)
    run.stages["evaluation"] = "ran"
    run.result = result


EVALUATION = Stage(
    name="evaluation",
    inputs=_inputs,
    run=_run,
    outputs=("result",),
    after=lambda config: ("student", "teacher_eval"),
)
