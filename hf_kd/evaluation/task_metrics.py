"""The metrics of each task type, in one place: which metrics a task reports (`metric_names`), its default metric
for the gate and the search (`default_metric`), the metrics of one split from probabilities (`split_metrics`: the
`hf_kd.evaluation.metrics` functions, BLURB's abstract-level scores for grouped HoC sentences, a user's `evaluate`
metric), and the `compute_metrics` a pipeline's trainers use (`trainer_compute_metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..constants import BINARY, MULTI_LABEL, SINGLE_LABEL, has_threshold
from .blurb import blurb_hoc_f1
from .metrics import (
    binary_metrics,
    make_compute_metrics,
    multilabel_metrics,
    positive_scores,
    sigmoid,
    single_label_metrics,
    softmax,
)
from .numeric import metric_keys
from .thresholds import decided_labels

__all__ = ["default_metric", "metric_names", "split_metrics", "trainer_compute_metrics", "user_metric"]


def metric_names(task: str, label_names: Sequence[str], grouped: bool = False) -> list[str]:
    """
    The metrics the evaluation of a task reports per split (the names a gate or a search may use).

    Args:
        task (`str`):
            The task (a problem type, or `"binary"`).
        label_names (`Sequence[str]`):
            The label names (per-label F1 keys).
        grouped (`bool`, *optional*, defaults to `False`):
            Whether the splits have a `group` column with several rows per document (BLURB scores).

    Returns:
        `list[str]`: The metric names.
    """

    per_label = [f"f1_{key}" for key in metric_keys(label_names, len(label_names))] if label_names else []
    if task == MULTI_LABEL:
        names = ["micro_f1", "macro_f1", "micro_precision", "micro_recall", "threshold", *per_label]
        if grouped:
            names += ["blurb_micro_f1", "blurb_micro_precision", "blurb_micro_recall", "blurb_macro_f1"]
        return names
    if task == BINARY:
        return ["auroc", "auprc", "brier", "ece", "sensitivity", "specificity", "ppv", "npv", "f1", "prevalence"]
    if task == SINGLE_LABEL:
        return ["accuracy", "macro_f1", *per_label]
    return ["mse", "mae"]


def default_metric(task: str, grouped: bool = False) -> str | None:
    """
    The default gate (and search) metric of a task: BLURB micro-F1 for grouped multi-label data (sentence-level
    HoC), `micro_f1` for multi-label, `macro_f1` for single-label, `auroc` for binary; none for regression.

    Args:
        task (`str`):
            The task.
        grouped (`bool`, *optional*, defaults to `False`):
            Whether the splits have several rows per document.

    Returns:
        `str` or `None`: The metric.
    """
    return {MULTI_LABEL: "blurb_micro_f1" if grouped else "micro_f1", SINGLE_LABEL: "macro_f1", BINARY: "auroc"}.get(
        task
    )


def trainer_compute_metrics(task: str, label_names: Sequence[str], threshold: Any, evaluate_metric: Any = None) -> Any:
    """
    The `compute_metrics` of the pipeline's trainers (and the search objective): the numbers the report shows.

    Multi-label and binary metrics are taken at the threshold the recipe's rule gives on the evaluated (validation)
    predictions, as in the report, so that the trainers' eval metrics and the search objective are the report's
    numbers for that split.

    Args:
        task (`str`):
            The task.
        label_names (`Sequence[str]`):
            The label names.
        threshold (`float`, `str` or `dict`):
            The threshold rule.
        evaluate_metric (`evaluate.EvaluationModule`, *optional*):
            The user's `evaluate` metric ([`user_metric`]), computed too.

    Returns:
        `Callable`: For `Trainer(compute_metrics=...)`.
    """

    if not has_threshold(task):
        threshold = 0.5
    names = label_names if task != BINARY else None
    return make_compute_metrics(task, threshold=threshold, label_names=names, evaluate_metric=evaluate_metric)


def user_metric(paths: Sequence[str] | None) -> Any:
    """
    The `evaluate` metrics a recipe names (`evaluation.evaluate_metrics`: local metric folders or scripts, e.g.
    `hf_kd.evaluation.evaluate_metrics.metric_path(...)` or your own), combined; None when it names none.

    Args:
        paths (`Sequence[str]`, *optional*):
            The metrics.

    Returns:
        `evaluate.CombinedEvaluations` or `None`: The metrics, computed on the predicted labels and the labels.
    """
    if not paths:
        return None
    import evaluate

    return evaluate.combine([evaluate.load(str(path)) for path in paths])


def split_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    task: str,
    label_names: Sequence[str],
    threshold: float,
    evaluate_metric: Any = None,
) -> dict[str, float]:
    """
    The metrics of one split from its logits (and the user's `evaluate` metric on its predicted labels).

    Args:
        logits (`np.ndarray`):
            The model's logits, one row per example.
        labels (`np.ndarray`):
            The split's labels.
        groups (`np.ndarray`, *optional*):
            Document ids (e.g. PMIDs of sentence-level HoC): BLURB's document-level scores are added when documents
            have several rows.
        task (`str`):
            The task.
        label_names (`Sequence[str]`):
            The label names (per-label F1 keys).
        threshold (`float`):
            Decision threshold (multi-label and binary).
        evaluate_metric (`evaluate.EvaluationModule`, *optional*):
            The user's `evaluate` metric ([`user_metric`]); its results are added (ours win a name clash).

    Returns:
        `dict[str, float]`: The metrics.
    """
    out = _split_metrics(logits, labels, groups, task, label_names, threshold)
    if evaluate_metric is not None:
        predictions, references = decided_labels(logits, labels, task, threshold)
        extra = evaluate_metric.compute(predictions=predictions, references=references)
        out = {**{k: v for k, v in extra.items() if k not in out}, **out}
    return out


def _split_metrics(
    logits: np.ndarray, labels: np.ndarray, groups: Any, task: str, label_names: Sequence[str], threshold: float
) -> dict[str, float]:

    if task == MULTI_LABEL:
        probs = sigmoid(logits)
        out = dict(multilabel_metrics(probs, labels, threshold=threshold, label_names=label_names))
        if groups is not None and len(np.unique(groups)) < len(groups):
            blurb = blurb_hoc_f1(probs, labels, groups, threshold=threshold)
            out.update({f"blurb_{k}": v for k, v in blurb.items()})
        out["threshold"] = float(threshold)
        return out
    if task == BINARY:
        return dict(binary_metrics(positive_scores(logits), labels, threshold=threshold))
    if task == SINGLE_LABEL:
        return dict(single_label_metrics(softmax(logits, axis=-1), labels, label_names=label_names))
    preds = logits.reshape(len(labels), -1)[:, 0]
    errors = preds.astype(np.float64) - np.asarray(labels, dtype=np.float64).reshape(-1)
    return {"mse": float(np.mean(errors**2)), "mae": float(np.mean(np.abs(errors)))}
