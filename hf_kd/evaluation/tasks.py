"""The task module: one [`TaskType`] per task `hf_kd` trains and scores, carrying what differs between tasks.

A task type says, in one place, what the rest of the package used to decide by comparing task names:

- `problem_type`: the `config.problem_type` of its models (a binary task has a two-logit single-label head);
- `thresholded`: whether its predictions are decided at an operating threshold (chosen on validation by the recipe's
  `evaluation.threshold` rule, saved with the model);
- `hard_loss` and `distillation_loss_field`: its loss on the labels and the `DistillationTrainingArguments` field that
  chooses its distillation loss (`hf_kd.training.losses.HARD_LOSSES` and `DISTILLATION_LOSSES` map these names to
  the tensor functions the trainer runs, so the task type decides a task's losses);
- `scores`: how logits become the scores a threshold or an argmax reads, and `predicted_labels` and
  `decided_labels`: the decisions taken on them (at the operating threshold for a thresholded task);
- `metric_names`, `default_metric` and `metrics`: what its evaluation reports, the gate's and the search's default,
  and one split's metrics.

The operating threshold itself (its rules and its save/load pair) is in `hf_kd.evaluation.thresholds`.

`task_type(name)` looks one up. The functions below it (`metric_names`, `default_metric`, `split_metrics`) keep the
call signatures the pipeline has always used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from ..constants import (
    BINARY,
    IGNORE_INDEX,
    MULTI_LABEL,
    REGRESSION,
    SINGLE_LABEL,
    has_threshold,
    problem_type_of_task,
)
from .blurb import blurb_hoc_f1
from .metric_functions import binary_metrics, multilabel_metrics, single_label_metrics
from .numeric import as_numeric, check_same_shape, metric_keys, positive_scores, sigmoid, softmax, threshold_vector

__all__ = [
    "TASKS",
    "TaskType",
    "default_metric",
    "metric_names",
    "split_metrics",
    "task_type",
    "user_metric",
]


def _regression_scores(logits: npt.ArrayLike) -> np.ndarray:
    values = as_numeric(logits, "logits")
    if values.ndim > 2 or (values.ndim == 2 and values.shape[1] != 1):
        raise ValueError(f"Regression `logits` must hold one value per row, got shape {values.shape}.")
    return values.reshape(len(values), -1)[:, 0]


# Each task's metrics from (scores, labels, label names, threshold): the functions of
# `hf_kd.evaluation.metric_functions`.


def _single_label(probs: np.ndarray, labels: np.ndarray, names: Sequence[str], _: Any) -> dict[str, float]:
    return single_label_metrics(probs, labels, label_names=list(names) or None)


def _multi_label(probs: np.ndarray, labels: np.ndarray, names: Sequence[str], threshold: Any) -> dict[str, float]:
    out = multilabel_metrics(probs, labels, threshold=threshold, label_names=list(names) or None)
    return {**out, "threshold": float(threshold)} if np.ndim(threshold) == 0 else out


def _binary(scores: np.ndarray, labels: np.ndarray, _: Sequence[str], threshold: Any) -> dict[str, float]:
    return binary_metrics(scores, np.asarray(labels).reshape(-1), threshold=threshold)


def _regression(values: np.ndarray, labels: np.ndarray, _: Sequence[str], __: Any) -> dict[str, float]:
    targets = as_numeric(labels, "labels")
    targets = targets.reshape(len(targets), -1)[:, 0] if targets.ndim == 2 and targets.shape[1] == 1 else targets
    check_same_shape(values, "predictions", targets, "labels")
    if values.size == 0:
        raise ValueError("`predictions` is empty.")
    errors = values.astype(np.float64) - targets.astype(np.float64)
    return {"mse": float(np.mean(errors**2)), "mae": float(np.mean(np.abs(errors)))}


# Each task's decisions from its scores: the predicted label names (`names`), and the predicted labels and labels of
# the labelled rows as an `evaluate` metric takes them (`decided`).


def _argmax_names(probs: np.ndarray, names: Sequence[str], _: Any) -> list[Any]:
    return [names[int(i)] for i in probs.argmax(axis=1)]


def _per_label_names(probs: np.ndarray, names: Sequence[str], threshold: Any) -> list[Any]:
    chosen = probs >= threshold_vector(threshold, probs.shape[1])
    return [[names[j] for j in np.flatnonzero(row)] for row in chosen]


def _positive_names(scores: np.ndarray, names: Sequence[str], threshold: Any) -> list[Any]:
    return [names[1] if p >= float(threshold) else names[0] for p in scores]


def _values(values: np.ndarray, _: Sequence[str], __: Any) -> list[Any]:
    return [float(v) for v in values]


def _argmax_decided(probs: np.ndarray, labels: np.ndarray, _: Any) -> tuple[list, list]:
    keep = labels != IGNORE_INDEX
    return probs.argmax(-1)[keep].astype(int).tolist(), labels[keep].astype(int).tolist()


def _per_label_decided(probs: np.ndarray, labels: np.ndarray, threshold: Any) -> tuple[list, list]:
    keep = (labels != IGNORE_INDEX).all(axis=1)
    chosen = (probs >= threshold_vector(threshold, probs.shape[1])).astype(int)
    return chosen[keep].tolist(), labels[keep].astype(int).tolist()


def _positive_decided(scores: np.ndarray, labels: np.ndarray, threshold: Any) -> tuple[list, list]:
    flat = labels.reshape(-1)
    keep = flat != IGNORE_INDEX
    return (scores >= float(threshold)).astype(int)[keep].tolist(), flat[keep].astype(int).tolist()


def _values_decided(values: np.ndarray, labels: np.ndarray, _: Any) -> tuple[list, list]:
    return values.tolist(), labels.reshape(len(labels), -1)[:, 0].tolist()


_BLURB_NAMES = ("blurb_micro_f1", "blurb_micro_precision", "blurb_micro_recall", "blurb_macro_f1")


@dataclass(frozen=True)
class TaskType:
    """
    What one task does differently from the others. Look one up with [`task_type`].

    Args:
        name (`str`):
            The task, one of `hf_kd.constants.TASK_TYPES`.
        hard_loss (`str`):
            The loss on the labels, as a model card names it.
        distillation_loss_field (`str`, *optional*):
            The `DistillationTrainingArguments` field that chooses the distillation loss (None: always MSE).
        score_function (`Callable`):
            Logits to the scores a threshold or an argmax reads (probabilities; values for regression).
        metric_function (`Callable`):
            `(scores, labels, label_names, threshold)` to the metrics (the functions of
            `hf_kd.evaluation.metric_functions`).
        names_function (`Callable`):
            `(scores, label_names, threshold)` to the predicted label names, one entry per row.
        decided_function (`Callable`):
            `(scores, labels, threshold)` to the predicted labels and the labels of the labelled rows, as an
            `evaluate` metric takes them.
        reported (`tuple[str, ...]`):
            The metrics a gate or a search may use, before the per-label F1s.
        per_label (`bool`):
            Whether the metrics include an F1 per label (`f1_<name>`).
        default (`str`, *optional*):
            The default gate and search metric.
        grouped_default (`str`, *optional*):
            The default when a document has several rows (BLURB's abstract-level scores for HoC sentences); None:
            the task scores no documents.
    """

    name: str
    hard_loss: str
    distillation_loss_field: str | None
    score_function: Callable[[npt.ArrayLike], np.ndarray]
    metric_function: Callable[..., dict[str, float]]
    names_function: Callable[[np.ndarray, Sequence[str], Any], list[Any]]
    decided_function: Callable[[np.ndarray, np.ndarray, Any], tuple[list, list]]
    reported: tuple[str, ...]
    per_label: bool = False
    default: str | None = None
    grouped_default: str | None = None

    @property
    def problem_type(self) -> str:
        """The `config.problem_type` of the task's models."""
        return problem_type_of_task(self.name)

    @property
    def classifier(self) -> bool:
        """Whether its models predict labels (every task but regression): they have label names, probabilities, an
        unlabeled value (-100) for a transfer set, and classes to stratify a split by."""
        return self.name != REGRESSION

    @property
    def thresholded(self) -> bool:
        """Whether predictions are decided at an operating threshold (`hf_kd.constants.THRESHOLDED_TASKS`)."""
        return has_threshold(self.name)

    def scores(self, logits: npt.ArrayLike) -> np.ndarray:
        """The scores a threshold or an argmax reads: probabilities for a classifier, values for regression."""
        return self.score_function(logits)

    def predicted_labels(
        self, logits: npt.ArrayLike, label_names: Sequence[str], threshold: float | npt.ArrayLike | None = None
    ) -> list[Any]:
        """The predicted label names, one entry per row: a name (single-label; binary: the second, positive name
        when its probability reaches `threshold`), a list of names (multi-label, each label at `threshold`), or a
        float (regression). `threshold` None is 0.5."""
        return self.names_function(self.scores(logits), label_names, 0.5 if threshold is None else threshold)

    def decided_labels(
        self, logits: npt.ArrayLike, labels: npt.ArrayLike, threshold: float | npt.ArrayLike = 0.5
    ) -> tuple[list, list]:
        """The predicted labels and the labels of the labelled rows (`-100` left out), as an `evaluate` metric
        takes them: class ids (single-label), 0/1 per label (multi-label) or 0/1 (binary) at `threshold`, values
        (regression)."""
        return self.decided_function(self.scores(logits), as_numeric(labels, "labels"), threshold)

    def metric_names(self, label_names: Sequence[str], grouped: bool = False) -> list[str]:
        """The metrics the evaluation reports per split (the names a gate or a search may use)."""
        per_label = [f"f1_{key}" for key in metric_keys(label_names, len(label_names))] if self.per_label else []
        blurb = list(_BLURB_NAMES) if grouped and self.grouped_default else []
        return [*self.reported, *(per_label if label_names else []), *blurb]

    def default_metric(self, grouped: bool = False) -> str | None:
        """The default gate and search metric (None: the task has none)."""
        return self.grouped_default if grouped and self.grouped_default else self.default

    def metrics(
        self,
        logits: npt.ArrayLike,
        labels: np.ndarray,
        groups: np.ndarray | None = None,
        label_names: Sequence[str] = (),
        threshold: float | npt.ArrayLike = 0.5,
    ) -> dict[str, float]:
        """One split's metrics from its logits, and BLURB's document-level scores when documents have several rows."""
        scores = self.scores(logits)
        out = dict(self.metric_function(scores, labels, label_names, threshold))
        if self.grouped_default and groups is not None and len(np.unique(groups)) < len(groups):
            blurb = blurb_hoc_f1(scores, labels, groups, threshold=threshold)
            out.update({f"blurb_{k}": v for k, v in blurb.items()})
        return out


TASKS: dict[str, TaskType] = {
    task.name: task
    for task in (
        TaskType(
            SINGLE_LABEL,
            "cross-entropy",
            "single_label_distillation_loss",
            partial(softmax, axis=-1),
            _single_label,
            _argmax_names,
            _argmax_decided,
            ("accuracy", "macro_f1"),
            per_label=True,
            default="macro_f1",
        ),
        TaskType(
            MULTI_LABEL,
            "binary cross-entropy",
            "multi_label_distillation_loss",
            sigmoid,
            _multi_label,
            _per_label_names,
            _per_label_decided,
            ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "threshold"),
            per_label=True,
            default="micro_f1",
            grouped_default="blurb_micro_f1",
        ),
        TaskType(
            BINARY,
            "cross-entropy",
            "single_label_distillation_loss",
            positive_scores,
            _binary,
            _positive_names,
            _positive_decided,
            ("auroc", "auprc", "brier", "ece", "sensitivity", "specificity", "ppv", "npv", "f1", "prevalence"),
            default="auroc",
        ),
        TaskType(REGRESSION, "MSE", None, _regression_scores, _regression, _values, _values_decided, ("mse", "mae")),
    )
}
"""Every task type, by name."""


def task_type(name: str) -> TaskType:
    """
    The task type of a task name.

    Args:
        name (`str`):
            One of `hf_kd.constants.TASK_TYPES`.

    Returns:
        [`TaskType`]: Its task type.

    Raises:
        `ValueError`: Quoting the name when it is no task.
    """
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}: expected one of {list(TASKS)}.")
    return TASKS[name]


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
    return task_type(task).metric_names(label_names, grouped)


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
    return task_type(task).default_metric(grouped)


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
    kind = task_type(task)
    out = kind.metrics(logits, labels, groups, label_names, threshold)
    if evaluate_metric is not None:
        predictions, references = kind.decided_labels(logits, labels, threshold)
        extra = evaluate_metric.compute(predictions=predictions, references=references)
        out = {**{k: v for k, v in extra.items() if k not in out}, **out}
    return out
