"""Scoring a classifier on a recipe's splits after training: one path, used by the pipeline and by `hf-kd evaluate`.

A model's logits on each split come from `Trainer.predict` (the student alone, never the teacher), and the metrics of
`hf_kd.evaluation.metrics` are computed from them, per task:

- multi-label: micro/macro F1, precision, recall and per-label F1 at one global threshold; sentence-level splits
  with a `group` column (HoC) also get BLURB's abstract-level scores (`blurb_*`);
- binary: AUROC, AUPRC, Brier score, ECE, and sensitivity, specificity, PPV, NPV and F1 at the operating threshold;
- single-label: accuracy, macro-F1 and per-class F1; regression: MSE and MAE.

The threshold of multi-label and binary tasks comes from the recipe's rule (`evaluation.threshold`, see
`hf_kd.evaluation.thresholds`) applied to the validation split, and is used on every split.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..constants import LABELS_COLUMN, has_threshold, problem_type_of_task
from ..evaluation.tasks import split_metrics, task_type
from ..evaluation.thresholds import choose_threshold, saved_threshold
from ..processes import on_cpu, start_state
from ..recipe.config import DistillationPipelineConfig
from ..training.distillation_config import DistillationTrainingArguments
from ..training.distillation_trainer import DistillationTrainer
from .builders import load_classifier, load_tokenizer
from .splits import labelled_split, load_recipe_data, model_columns, subset, tokenize_side

__all__ = [
    "QualityGateError",
    "apply_gate",
    "evaluate_model",
    "evaluate_splits",
    "headline",
    "predict_logits",
    "result_summary",
    "saved_threshold",
]


class QualityGateError(RuntimeError):
    """Raised when the teacher's evaluation metric is below the recipe's gate, or cannot be computed."""


def apply_gate(value: float | None, gate: float, name: str, split: str) -> None:
    """
    The teacher's quality gate: raise [`QualityGateError`] when `value` is below `gate`, or is no number at all.

    A metric that cannot be computed (NaN, e.g. the AUROC of a split with one class, or None, as a NaN is stored in
    a stage marker) fails the gate: a teacher nobody could judge is not distilled.

    Args:
        value (`float`, *optional*):
            The teacher's metric.
        gate (`float`):
            `evaluation.min_teacher_metric`.
        name (`str`):
            The metric's name, for the message.
        split (`str`):
            The split it was computed on, for the message.
    """
    if value is None or not math.isfinite(float(value)):
        raise QualityGateError(
            f"Teacher quality gate cannot be applied: {split} {name} is {value} (no number; e.g. AUROC on a split "
            f"with one class). Use a {split} split with both classes, or another `evaluation.gate_metric`."
        )
    if value < gate:
        raise QualityGateError(
            f"Teacher quality gate failed: {split} {name} = {value:.4f} < min_teacher_metric = {gate}. Fix the "
            "teacher (or lower the gate) before distilling."
        )


def predict_logits(model: Any, tokenizer: Any, dataset: Any, output_dir: Path, batch_size: int) -> np.ndarray:
    """
    A model's logits on a tokenized split, with `Trainer.predict` (or onnxruntime, for an exported model).

    Args:
        model (`PreTrainedModel` or [`~hf_kd.export.onnx_classifier.OnnxClassifier`]):
            The classifier.
        tokenizer (`PreTrainedTokenizerBase`):
            Its tokenizer (padding).
        dataset (`datasets.Dataset`):
            The tokenized split.
        output_dir (`Path`):
            Scratch folder of the trainer.
        batch_size (`int`):
            Examples per forward pass.

    Returns:
        `np.ndarray`: float64 logits, one row per example, in the split's order.
    """

    # Rows are run sorted by length (each batch padded to its own longest row: less padding), then put back.
    columns = model_columns(dataset, teacher_side=False)
    order = np.argsort([len(ids) for ids in columns["input_ids"]], kind="stable") if len(columns) else np.arange(0)
    columns = columns.select(order.tolist())
    # An exported model (`hf_kd.export.onnx_classifier.OnnxClassifier`) computes its own logits.
    if callable(getattr(model, "dataset_logits", None)):
        logits = model.dataset_logits(columns, batch_size)
    else:
        args = DistillationTrainingArguments(
            output_dir=str(output_dir), per_device_eval_batch_size=batch_size, report_to="none", use_cpu=on_cpu()
        )
        trainer = DistillationTrainer(model=model, args=args, processing_class=tokenizer)
        output = trainer.predict(columns)
        predictions = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        logits = np.asarray(predictions, dtype=np.float64)
    restored = np.empty_like(logits)
    restored[order] = logits
    return restored


def evaluate_splits(
    model: Any,
    tokenizer: Any,
    splits: Mapping[str, Any],
    validation_split: str,
    task: str,
    label_names: Sequence[str],
    threshold: Any,
    output_dir: Path,
    batch_size: int,
    fixed_threshold: float | None = None,
    evaluate_metric: Any = None,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
    """
    The metrics of every split, at the threshold the rule gives on `validation_split`.

    Args:
        model (`PreTrainedModel`):
            The classifier.
        tokenizer (`PreTrainedTokenizerBase`):
            Its tokenizer.
        splits (`Mapping[str, datasets.Dataset]`):
            Tokenized splits by name.
        validation_split (`str`):
            The split the threshold is chosen on.
        task (`str`):
            The task.
        label_names (`Sequence[str]`):
            The label names.
        threshold (`float`, `str` or `dict`):
            The threshold rule (`hf_kd.evaluation.thresholds`).
        output_dir (`Path`):
            Scratch folder.
        batch_size (`int`):
            Examples per forward pass.
        fixed_threshold (`float`, *optional*):
            Use this threshold (e.g. the one saved with the model) instead of applying the rule.
        evaluate_metric (`evaluate.EvaluationModule`, *optional*):
            The user's `evaluate` metric ([`~hf_kd.evaluation.tasks.user_metric`]), added to every split's
            metrics.

    Returns:
        `tuple[dict, dict]`: Split -> metrics, and split -> `{"probs", "labels"}` arrays (multi-label and binary
        probabilities, for the figures).
    """

    raw: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    for name, dataset in splits.items():
        if len(dataset) == 0:
            raise ValueError(f"Split {name!r} has no example to evaluate.")
        logits = predict_logits(model, tokenizer, dataset, output_dir, batch_size)
        labels = np.asarray(dataset[LABELS_COLUMN])
        groups = np.asarray(dataset["group"]) if "group" in dataset.column_names else None
        raw[name] = (logits, labels, groups)
    chosen = 0.5
    if has_threshold(task):
        if fixed_threshold is not None:
            chosen = float(fixed_threshold)
        elif validation_split in raw:
            logits, labels, _ = raw[validation_split]
            chosen = float(choose_threshold(threshold, task_type(task).scores(logits), labels))
    metrics = {
        name: split_metrics(logits, labels, groups, task, label_names, chosen, evaluate_metric)
        for name, (logits, labels, groups) in raw.items()
    }
    outputs = {}
    if has_threshold(task):
        outputs = {name: {"probs": task_type(task).scores(lg), "labels": lb} for name, (lg, lb, _) in raw.items()}
    return metrics, outputs


def headline(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """
    Split-prefixed headline metrics (no per-label entries) for the report, e.g. `validation_micro_f1`.

    Args:
        metrics (`Mapping[str, Mapping[str, float]]`):
            Split -> metrics.

    Returns:
        `dict[str, float]`: The headline metrics.
    """
    out: dict[str, float] = {}
    for split, values in metrics.items():
        for key, value in values.items():
            if key.startswith("f1_") or key in ("blurb_n_documents", "threshold", "prevalence"):
                continue
            out[f"{split}_{key}"] = value
    return out


def result_summary(
    teacher_metrics: Mapping[str, Mapping[str, float]], student_metrics: Mapping[str, Mapping[str, float]]
) -> dict[str, Any]:
    """
    Headline metrics of both models, split-prefixed (e.g. `validation_micro_f1`, `test_micro_f1`).

    Args:
        teacher_metrics (`Mapping[str, Mapping[str, float]]`):
            The teacher's metrics per split.
        student_metrics (`Mapping[str, Mapping[str, float]]`):
            The student's metrics per split.

    Returns:
        `dict[str, Any]`: `{"teacher": {...}, "student": {...}}`.
    """
    return {"teacher": headline(teacher_metrics), "student": headline(student_metrics)}


def evaluate_model(
    config: DistillationPipelineConfig, model: str, split: str = "validation", side: str = "student"
) -> dict[str, float]:
    """
    Evaluate a saved classifier on a split of the recipe's data, with the pipeline's metrics (`hf-kd evaluate`).

    Multi-label and binary tasks are scored at the threshold saved with the model (`hf_kd_threshold` in its
    `config.json`, written by the pipeline); without one, at the threshold the recipe's rule gives on the
    validation split.

    Args:
        config ([`~hf_kd.recipe.config.DistillationPipelineConfig`]):
            The recipe (its data section and evaluation settings are used).
        model (`str`):
            Folder (or Hub id) of the classifier; its tokenizer is loaded from there.
        split (`str`, *optional*, defaults to `"validation"`):
            Split to report.
        side (`str`, *optional*, defaults to `"student"`):
            Which text column and maximum length to use: the student's (`text_column`, `max_length`) or the
            teacher's (`teacher_text_column`, `teacher_max_length`).

    Returns:
        `dict[str, float]`: The metrics of `split`.
    """
    if side not in ("student", "teacher"):
        raise ValueError(f"`side` must be 'student' or 'teacher', got {side!r}.")
    start_state(cpu=config.use_cpu)
    scratch = Path(config.output_dir) / "evaluate_tmp"
    try:
        return _evaluate_model(config, model, split, side, scratch)
    finally:
        # The `datasets` cache of this evaluation holds copies of the text: it goes with the evaluation.
        shutil.rmtree(scratch / "cache", ignore_errors=True)


def _evaluate_model(config: DistillationPipelineConfig, model: str, split: str, side: str, scratch: Path) -> dict:
    raw, label_names, task = load_recipe_data(config, cache_dir=str(scratch / "cache"))
    validation = config.data.validation_split
    for name, why in ((validation, "the threshold"), (split, "an evaluation")):
        labelled_split(raw, name, config.data.label_column, why)
    if side == "teacher":
        column = config.data.teacher_text_column or config.data.text_column
        length = config.data.teacher_max_length or config.data.max_length
    else:
        column, length = config.data.text_column, config.data.max_length
    tokenizer = load_tokenizer(model)
    splits = {
        name: tokenize_side(subset(raw[name], config.data.eval_size, config.seed), tokenizer, column, length)
        for name in dict.fromkeys([validation, split])
    }
    metrics, _ = evaluate_splits(
        load_classifier(model, label_names, problem_type_of_task(task)),
        tokenizer,
        splits,
        validation,
        task,
        label_names,
        config.evaluation.threshold,
        scratch,
        config.evaluation.batch_size,
        fixed_threshold=saved_threshold(model) if has_threshold(task) else None,
    )
    return metrics[split]
