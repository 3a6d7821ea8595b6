"""Evaluation metrics for `transformers.Trainer`: [`make_compute_metrics`], the one `compute_metrics` factory.

It computes a task's metrics through its [`~hf_kd.evaluation.tasks.TaskType`], the one place that says how each task
turns logits into scores and scores into metrics. The metric functions themselves (plain numpy / scikit-learn,
usable on their own) are in `hf_kd.evaluation.metric_functions` and importable from here too; decision thresholds
are in `hf_kd.evaluation.thresholds`, BLURB's HoC scoring in `hf_kd.evaluation.blurb`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..constants import TASK_TYPES
from .metric_functions import (
    agreement,
    binary_metrics,
    expected_calibration_error,
    multilabel_metrics,
    single_label_metrics,
)
from .numeric import as_numeric, check_threshold, positive_scores, sigmoid, softmax, threshold_vector
from .tasks import task_type
from .thresholds import check_threshold_rule, choose_threshold

if TYPE_CHECKING:
    from transformers import EvalPrediction

__all__ = [
    "agreement",
    "binary_metrics",
    "expected_calibration_error",
    "make_compute_metrics",
    "multilabel_metrics",
    "positive_scores",
    "sigmoid",
    "single_label_metrics",
    "softmax",
]


def _first(x: Any) -> Any:
    """First element of a tuple/list of model outputs (e.g. logits followed by hidden states)."""
    while isinstance(x, tuple | list):
        if not x:
            raise ValueError("`EvalPrediction.predictions` is an empty tuple.")
        x = x[0]
    return x


def make_compute_metrics(
    problem_type: str,
    threshold: float | npt.ArrayLike | str | dict = 0.5,
    label_names: Sequence[str] | None = None,
    evaluate_metric: Any = None,
) -> Callable[[EvalPrediction], dict[str, float]]:
    """
    Builds a `compute_metrics` function for `transformers.Trainer`.

    The returned callable takes an `EvalPrediction` (or a `(predictions, label_ids)` pair). When `predictions` is a
    tuple (logits followed by other outputs), its first element is used. The task type's metrics are computed
    ([`~hf_kd.evaluation.tasks.TaskType.metrics`], the functions of `hf_kd.evaluation.metric_functions`):

    - `"single_label_classification"`: softmax over `(n, num_classes)` logits, then [`single_label_metrics`].
    - `"multi_label_classification"`: sigmoid over `(n, num_labels)` logits, then [`multilabel_metrics`] (with
      `threshold` and `label_names`).
    - `"binary"`: a one-logit head (`(n,)` or `(n, 1)` logits, sigmoid) or a two-logit head (`(n, 2)`, softmax,
      positive class 1), then [`binary_metrics`].
    - `"regression"`: `mse` and `mae` between the (squeezed) predictions and labels.

    Args:
        problem_type (`str`):
            One of `"single_label_classification"`, `"multi_label_classification"`, `"binary"` or `"regression"`.
        threshold (`float`, `npt.ArrayLike`, `str` or `dict`, *optional*, defaults to 0.5):
            Decision threshold of `"multi_label_classification"` and `"binary"`: a number (for multi-label also one
            per label), or a threshold rule of `hf_kd.evaluation.thresholds` applied to the evaluated predictions
            themselves: `"f1"` (the threshold maximizing F1), `"prevalence"` or `{"sensitivity": s}`. The threshold
            used (one number) is reported as `threshold`; evaluated on the dev split, these are the dev metrics
            `hf-kd` reports (e.g. a search objective that does not depend on an arbitrary 0.5). Unused otherwise.
        label_names (`Sequence[str]`, *optional*):
            Label names for the per-label (per-class) `f1_<name>` keys of multi-label and single-label tasks.
        evaluate_metric (`evaluate.EvaluationModule` or `evaluate.CombinedEvaluations`, *optional*):
            A metric of the `evaluate` library (e.g. `evaluate.combine([...])` of your own metrics) computed too, on
            the predicted labels (class ids; 0/1 per label at the threshold for multi-label and binary; values for
            regression) and the labels, unlabeled rows left out; its results are added to ours (ours win a name
            clash).

    Returns:
        `Callable[[EvalPrediction], dict[str, float]]`: The metric function.
    """
    if problem_type not in TASK_TYPES:
        raise ValueError(f"`problem_type` must be one of {list(TASK_TYPES)}, got {problem_type!r}.")
    kind = task_type(problem_type)
    if isinstance(threshold, str) and threshold == "tune":
        raise ValueError("`threshold='tune'` is now the threshold rule `'f1'`.")
    rule = isinstance(threshold, str | dict)
    if rule:
        if not kind.thresholded:
            raise ValueError(f"A threshold rule ({threshold!r}) applies to multi-label and binary tasks only.")
        check_threshold_rule(threshold)
    elif kind.per_label and np.ndim(threshold) > 0:
        threshold_vector(threshold, int(np.size(threshold)))
    else:
        check_threshold(threshold)
    names = list(label_names) if label_names is not None else ()

    def compute_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
        if hasattr(eval_pred, "predictions"):
            predictions, label_ids = eval_pred.predictions, eval_pred.label_ids
        else:
            predictions, label_ids = eval_pred[0], eval_pred[1]
        logits = as_numeric(_first(predictions), "predictions")
        labels = as_numeric(_first(label_ids), "label_ids")
        chosen = threshold
        if rule:
            scores = kind.scores(logits)
            chosen = choose_threshold(threshold, scores, labels.reshape(-1) if scores.ndim == 1 else labels)
        ours = kind.metrics(logits, labels, label_names=names, threshold=chosen)
        if evaluate_metric is None:
            return ours
        predicted, references = kind.decided_labels(logits, labels, chosen)
        extra = evaluate_metric.compute(predictions=predicted, references=references)
        return {**{k: v for k, v in extra.items() if k not in ours}, **ours}

    return compute_metrics
