"""What the pipeline's evaluation stage writes: `metrics.json`, the teacher-vs-student report, its figures, the card
(the push to the Hub is in `hf_kd.pipeline.push`).

Only numbers, settings and label names go into these files; latency is measured on synthetic token ids.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from ..constants import BINARY, has_threshold
from ..evaluation.model_stats import interleaved_latency, measure_latency, model_size
from ..evaluation.tasks import task_type
from ..processes import is_main_process
from ..reporting.card_data import card_data_from_trainer
from ..reporting.model_card import write_model_card
from ..reporting.report import build_report, jsonable, print_report, write_report
from ..training.distillation_trainer import DistillationTrainer
from .builders import training_args
from .context import PipelineRun
from .push import push_student  # its old path
from .scoring import headline, predict_logits, result_summary

__all__ = ["push_student", "save_predictions", "write_run_report"]

logger = logging.getLogger(__name__)


def _numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def write_run_report(
    run: PipelineRun,
    student: Any,
    student_dir: str,
    teacher_metrics: dict[str, dict[str, float]],
    student_metrics: dict[str, dict[str, float]],
    folder: Path,
    exported: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """
    Write the evaluation stage's files for a pipeline run (main process only).

    `folder/metrics.json` (headline metrics), `report.json` / `report.md` in the run folder and in `folder` (metrics,
    size and CPU latency of both models), the figures (`evaluation.plots`) and the student's model card
    (`evaluation.model_card`).

    Args:
        run ([`~hf_kd.pipeline.context.PipelineRun`]):
            The run: its recipe, folders, tokenizers, teacher and label space.
        student (`PreTrainedModel`):
            The distilled student.
        student_dir (`str`):
            The student's folder (the card is written there).
        teacher_metrics (`dict[str, dict[str, float]]`):
            The teacher's metrics per split.
        student_metrics (`dict[str, dict[str, float]]`):
            The student's metrics per split.
        folder (`Path`):
            The evaluation stage's folder.
        exported (`Mapping[str, Any]`, *optional*):
            The exported student (`hf_kd.pipeline.stages.evaluation.export_student`): its metrics per split, what the
            export wrote and the loaded classifier; the report then has a third model, timed through onnxruntime.

    Returns:
        `dict[str, Any]`: The report (`hf_kd.reporting.report.build_report`).
    """
    config = run.config
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(
        json.dumps(jsonable(result_summary(teacher_metrics, student_metrics)), indent=2) + "\n", encoding="utf-8"
    )
    teacher = run.load_teacher()
    lengths = _latency_lengths(run)
    models = [
        ("teacher", teacher, run.teacher_tokenizer, teacher_metrics, run.teacher_path),
        ("student", student, run.student_tokenizer, student_metrics, student_dir),
    ]
    sides = {name: _side(metrics, path, model) for name, model, _, metrics, path in models}
    batch_sizes = tuple(config.evaluation.latency_batch_sizes)
    timers: dict[tuple[str, str], Any] = {  # (latency key, side) -> one timing of that model
        (key, name): partial(measure_latency, model, tokenizer, batch_sizes=batch_sizes, seq_len=length)
        for name, model, tokenizer, _, _ in models
        for key, length in lengths.items()
    }
    exported_side = None
    if exported is not None:
        info = exported["export"]
        exported_side = {
            "metrics": headline(exported["metrics"]),
            "parameters": sides["student"]["parameters"],
            "size_mb": info["size_mb"],
            "format": f"ONNX {info['quantize'] or 'fp32'}",
        }
        timers.update(_export_timers(exported["classifier"], lengths, batch_sizes))
    if config.evaluation.latency:
        # Teacher, student and export in turn, round after round: a slow spell of the machine falls on all three.
        order = sorted(timers, key=lambda k: list(lengths).index(k[0]))
        timed = interleaved_latency({k: timers[k] for k in order}, rounds=config.evaluation.latency_rounds)
        for (key, name), latency in timed.items():
            (exported_side if name == "exported" else sides[name])[key] = latency
    extra = _report_extra(run, student, teacher_metrics, student_metrics, folder)
    report = build_report(sides["teacher"], sides["student"], extra=extra, exported=exported_side)
    write_report(report, run.root)
    write_report(report, folder)
    print_report(report)
    if config.evaluation.model_card:
        _model_card(run, student, student_dir, teacher, student_metrics, teacher_metrics, report)
    return report


def _latency_lengths(run: PipelineRun) -> dict[str, int]:
    """The sequence lengths the models are timed at: `data.max_length` (128 without one), and the training rows'
    median length when it is shorter (`latency_typical`)."""
    max_length = run.config.data.max_length or 128
    lengths = {"latency": max_length}
    typical = typical_length(run.teacher_train)
    if typical is not None and typical < max_length:
        lengths["latency_typical"] = typical
    return lengths


def _side(metrics: dict[str, dict[str, float]], path: str, model: Any) -> dict[str, Any]:
    """One model's column of the report before timing: its headline metrics, parameters and size on disk."""
    size = model_size(path if Path(path).is_dir() else model)
    return {"metrics": headline(metrics), "parameters": size["parameters"], "size_mb": size["size_mb"]}


def _export_timers(classifier: Any, lengths: dict[str, int], batch_sizes: tuple[int, ...]) -> dict[tuple, Any]:
    """The exported student's timings (through onnxruntime, imported only when a run exports)."""
    from ..export.onnx_classifier import onnx_latency

    return {
        (key, "exported"): partial(onnx_latency, classifier, batch_sizes=batch_sizes, seq_len=length)
        for key, length in lengths.items()
    }


def _report_extra(
    run: PipelineRun, student: Any, teacher_metrics: Any, student_metrics: Any, folder: Path
) -> dict[str, Any]:
    """What the report records besides the models' columns: the data, the task, the checks, the figures, the
    student's vocabulary and width."""
    config = run.config
    extra = {
        "dataset": config.data.dataset,
        "level": config.data.level,
        "train_examples": run.n_train,
        "teacher": run.teacher_name,
        "student_layers": getattr(student.config, "num_hidden_layers", None),
        "task": run.task,
        "threshold_rule": config.evaluation.threshold if has_threshold(run.task) else None,
        "unknown_token_rate": run.unknown_rates,
        "leakage": dict(run.splits.leakage),
    }
    if config.evaluation.plots:
        extra["figures"] = [Path(f).name for f in _plots(run, teacher_metrics, student_metrics, folder)]
        from ..reporting.plots import label_font  # matplotlib, imported only when plotting

        if task_type(run.task).per_label and label_font(run.label_names) is None:
            extra["label_legend"] = list(run.label_names)  # the figures number the labels
    vocabulary = getattr(student.config, "hf_kd_pruned_vocabulary", None)
    if vocabulary:
        extra["student_vocabulary"] = {"kept": student.config.vocab_size, **vocabulary}
    extra["student_hidden_size"] = getattr(student.config, "hidden_size", None)
    return extra


def typical_length(dataset: Any) -> int | None:
    """The median number of tokens of a tokenized split's rows (`input_ids`), or None when it has none."""
    if dataset is None or not len(dataset) or "input_ids" not in dataset.column_names:
        return None
    import numpy as np

    return int(np.median([len(ids) for ids in dataset["input_ids"]]))


MIN_CURVE_POINTS = 5
"""Training curves are drawn from this many logged losses on (fewer make no curve)."""


def _plots(run: PipelineRun, teacher_metrics: Any, student_metrics: Any, folder: Path) -> list[str]:
    """The evaluation stage's figures: training curves, F1 per label or class, and the binary curves."""
    import numpy as np

    from ..reporting.plots import plot_binary_curves, plot_per_label_f1, plot_training_curves

    written: list[str] = []
    split = run.validation_split
    try:
        history_file = run.root / "student" / "log_history.json"
        history = json.loads(history_file.read_text(encoding="utf-8")) if history_file.is_file() else []
        if sum("loss" in entry for entry in history) >= MIN_CURVE_POINTS:
            written.append(str(plot_training_curves(history, folder / "student_training_curves.png")))
        if run.task == BINARY:
            sides = {}
            for name, stage, metrics in (
                ("teacher", "teacher_eval", teacher_metrics),
                ("student", "evaluation", student_metrics),
            ):
                saved = np.load(run.stage_dir(stage) / f"predictions_{split}.npz")
                sides[name] = (saved["probs"], saved["labels"], metrics[split]["threshold"])
            written.append(str(plot_binary_curves(sides, folder / "binary_curves.png")))
        elif task_type(run.task).per_label:
            written.append(
                str(
                    plot_per_label_f1(
                        teacher_metrics[split], student_metrics[split], run.label_names, folder / "per_label_f1.png"
                    )
                )
            )
    except Exception as error:  # noqa: BLE001 - figures are a convenience, never fatal
        logger.warning("Could not write the plots: %s: %s", type(error).__name__, error)
    return written


def _model_card(
    run: PipelineRun,
    student: Any,
    student_dir: str,
    teacher: Any,
    student_metrics: Any,
    teacher_metrics: Any,
    report: Any,
) -> None:

    config = run.config
    args = training_args(run.stage_dir("evaluation") / "tmp", config, config.student.training)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args)
    split = run.validation_split
    card = card_data_from_trainer(
        trainer,
        teacher_id=run.teacher_name,
        dataset_names=[config.data.dataset],
        metrics=_numeric(student_metrics[split]),
        teacher_metrics=_numeric(teacher_metrics[split]),
        eval_split=split,
        label_names=list(run.label_names),
        cached_teacher_logits=not run.config.student.needs_online_teacher,
        # The card's title: the Hub repo when the recipe names one, else the run's folder name.
        model_name=str(args.hub_model_id).split("/")[-1] if args.hub_model_id else Path(config.output_dir).name,
    )
    write_model_card(student_dir, card, report)


def save_predictions(folder: Path, outputs: Mapping[str, Mapping[str, Any]]) -> None:
    """
    Save an evaluation's probabilities and labels per split (`predictions_<split>.npz`, numbers only), for the figures.

    Args:
        folder (`Path`):
            The stage's folder.
        outputs (`Mapping[str, Mapping[str, np.ndarray]]`):
            Split -> `{"probs", "labels"}` (from `hf_kd.pipeline.scoring.evaluate_splits`).
    """
    import numpy as np

    if is_main_process() and outputs:
        folder.mkdir(parents=True, exist_ok=True)
        for split, arrays in outputs.items():
            np.savez(folder / f"predictions_{split}.npz", **arrays)


def write_unlabeled_predictions(
    path: Path,
    logits: Any,
    task: str,
    label_names: list[str],
    threshold: float | None,
    ids: list[Any] | None = None,
    id_key: str = "row",
) -> None:
    """
    Write a model's predictions on an unlabeled split as JSON lines (UTF-8), as `hf-kd predict` writes them: the
    row's id (its `id_key` value, or `row`, its position in the split), `prediction` (label name(s)) and
    `probabilities` (softmax or sigmoid, per label; `hf_kd.export.predict.prediction_records`); never the text.

    Args:
        path (`Path`):
            The file to write.
        logits (`np.ndarray`):
            The logits, one row per example of the split.
        task (`str`):
            The task.
        label_names (`list[str]`):
            The label names in id order.
        threshold (`float`, *optional*):
            The operating threshold of a multi-label or binary task.
        ids (`list`, *optional*):
            Each row's id; the row positions when None.
        id_key (`str`, *optional*, defaults to `"row"`):
            The id's field name.
    """
    from ..export.predict import prediction_records, write_records

    ids = list(range(len(logits))) if ids is None else ids
    path.parent.mkdir(parents=True, exist_ok=True)
    records = prediction_records(logits, task, label_names, threshold, ids, id_key=id_key)
    write_records(path, records, task, label_names)


def predict_unlabeled(run: PipelineRun, student: Any, folder: Path, threshold: float | None) -> dict[str, str]:
    """
    The student's predictions on each unlabeled split of a run that has no metrics (an unlabeled test split),
    written by [`write_unlabeled_predictions`] to `folder/predictions_<split>.jsonl`.

    Args:
        run ([`~hf_kd.pipeline.context.PipelineRun`]):
            The run.
        student (`PreTrainedModel`):
            The student.
        folder (`Path`):
            The evaluation stage's folder.
        threshold (`float`, *optional*):
            The student's operating threshold (multi-label and binary tasks).

    Returns:
        `dict[str, str]`: Split -> the file written.
    """

    written = {}
    for name, dataset in run.student_predict.items():
        batch_size = run.config.evaluation.batch_size
        logits = predict_logits(student, run.student_tokenizer, dataset, folder / "tmp", batch_size)
        path = folder / f"predictions_{name}.jsonl"
        source = run.splits.predict[name]
        id_column = run.config.data.id_column
        ids = list(source[id_column]) if id_column and id_column in source.column_names else None
        if is_main_process():
            write_unlabeled_predictions(
                path, logits, run.task, run.label_names, threshold, ids=ids, id_key=id_column if ids else "row"
            )
        written[name] = str(path)
    return written
