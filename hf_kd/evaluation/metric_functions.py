"""The metric functions for (distilled) text classifiers, on scikit-learn: plain numpy functions of scores and labels.

Each task's metrics ([`~hf_kd.evaluation.tasks.TaskType`]) are made of these; `hf_kd.evaluation.metrics` re-exports
them beside `make_compute_metrics`, the `compute_metrics` factory of a `transformers.Trainer`. Decision thresholds are
in `hf_kd.evaluation.thresholds`, BLURB's HoC scoring in `hf_kd.evaluation.blurb`.

Conventions shared by every function of this module:

- Label entries equal to `-100` (the `transformers` ignore index) are ignored. For multi-label inputs this is done
  per cell, so a row that is entirely `-100` (an unlabeled example) drops out of the metric.
- A probability `p` is predicted positive when `p >= threshold`.
- Precision, recall and F1 with an empty denominator are `0.0` (scikit-learn's `zero_division=0`).
- Invalid inputs (NaN, mismatched shapes, probabilities outside `[0, 1]`, labels outside the expected set) raise
  `ValueError` naming the offending argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.metrics import accuracy_score, average_precision_score, brier_score_loss, f1_score, roc_auc_score

from ..constants import IGNORE_INDEX, SINGLE_LABEL, has_threshold
from .numeric import (
    as_numeric,
    as_probabilities,
    check_same_shape,
    check_threshold,
    confusion_counts,
    f1_from_counts,
    labeled_mask,
    metric_keys,
    prepare_multilabel,
    safe_divide,
    threshold_vector,
)

__all__ = [
    "agreement",
    "binary_metrics",
    "expected_calibration_error",
    "multilabel_metrics",
    "single_label_metrics",
]


def multilabel_metrics(
    probs: npt.ArrayLike,
    labels: npt.ArrayLike,
    threshold: float | npt.ArrayLike = 0.5,
    label_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """
    Micro/macro F1 and micro precision/recall of a multi-label classifier, plus one F1 per label.

    A cell is predicted positive when `probs >= threshold`. Cells whose label is `-100` are ignored, so fully
    unlabeled rows drop out. Per-label F1 with no gold and no predicted positive is `0.0` and counts in `macro_f1`
    (scikit-learn's `zero_division=0`).

    Args:
        probs (`npt.ArrayLike` of shape `(n_examples, num_labels)`):
            Probabilities in `[0, 1]` (sigmoid outputs, not logits). A 1-D array is treated as a single label.
        labels (`npt.ArrayLike` of shape `(n_examples, num_labels)`):
            Gold labels in `{0, 1}`, or `-100` for ignored cells. Float labels (`0.0`/`1.0`) are accepted.
        threshold (`float` or `npt.ArrayLike` of shape `(num_labels,)`, *optional*, defaults to 0.5):
            Decision threshold, global or one per label, in `[0, 1]`.
        label_names (`Sequence[str]`, *optional*):
            One name per label used in the `f1_<name>` keys: accents are stripped, the name is lower-cased, runs of
            characters outside `[a-z0-9_]` become one `_` and leading/trailing `_` are removed (a name left empty
            falls back to its index). Defaults to the label indices (`f1_0`, `f1_1`, ...). Two names giving the
            same key raise a `ValueError`.

    Returns:
        `dict[str, float]`: `micro_f1`, `macro_f1`, `micro_precision`, `micro_recall` and `f1_<name>` for each label.
    """
    probs_arr, gold, mask = prepare_multilabel(probs, labels)
    num_labels = probs_arr.shape[1]
    keys = metric_keys(label_names, num_labels)
    preds = probs_arr >= threshold_vector(threshold, num_labels)

    tp, fp, fn = confusion_counts(preds, gold, mask, axis=0)
    per_label_f1 = f1_from_counts(tp, fp, fn)
    tp_all, fp_all, fn_all = tp.sum(), fp.sum(), fn.sum()
    metrics = {
        "micro_f1": float(f1_from_counts(tp_all, fp_all, fn_all)),
        "macro_f1": float(per_label_f1.mean()),
        "micro_precision": float(safe_divide(tp_all, tp_all + fp_all)),
        "micro_recall": float(safe_divide(tp_all, tp_all + fn_all)),
    }
    for key, value in zip(keys, per_label_f1):
        metrics[f"f1_{key}"] = float(value)
    return metrics


# ----------------------------------------------------------------------------------------------------
# Single-label and binary metrics
# ----------------------------------------------------------------------------------------------------


def prepare_class_labels(labels: npt.ArrayLike, n_examples: int, num_classes: int, scores_name: str) -> np.ndarray:
    labels_arr = as_numeric(labels, "labels")
    if labels_arr.ndim != 1 or labels_arr.shape[0] != n_examples:
        raise ValueError(
            f"`labels` has shape {labels_arr.shape} but `{scores_name}` has {n_examples} rows; expected labels of "
            f"shape ({n_examples},)."
        )
    if (labels_arr != np.round(labels_arr)).any():
        raise ValueError("`labels` must contain integer class ids.")
    labels_arr = labels_arr.astype(np.int64)
    valid = labels_arr[labels_arr != IGNORE_INDEX]
    bad = (valid < 0) | (valid >= num_classes)
    if bad.any():
        raise ValueError(
            f"`labels` must be class ids in [0, {num_classes}) or {IGNORE_INDEX}, got {np.unique(valid[bad])[:5]}."
        )
    return labels_arr


def single_label_metrics(
    logits_or_probs: npt.ArrayLike, labels: npt.ArrayLike, label_names: Sequence[str] | None = None
) -> dict[str, float]:
    """
    Accuracy and macro-F1 of a single-label (multi-class) classifier predicting the argmax class, and each class's F1.

    Examples labeled `-100` are ignored. As in scikit-learn's `f1_score(average="macro")`, the macro average runs
    over the classes present in the gold labels or the predictions of the scored examples.

    Args:
        logits_or_probs (`npt.ArrayLike` of shape `(n_examples, num_classes)`):
            Logits or probabilities (the argmax is the same).
        labels (`npt.ArrayLike` of shape `(n_examples,)`):
            Gold class ids in `[0, num_classes)`, or `-100` for ignored examples.
        label_names (`Sequence[str]`, *optional*):
            One name per class for the `f1_<name>` keys (sanitized as in [`multilabel_metrics`]); the class ids
            when None.

    Returns:
        `dict[str, float]`: `accuracy`, `macro_f1` and `f1_<name>` for each class (0 for a class neither in the gold
        labels nor predicted).
    """
    scores = as_numeric(logits_or_probs, "logits_or_probs")
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(
            f"`logits_or_probs` must have shape (n_examples, num_classes) with num_classes >= 2, got {scores.shape}."
        )
    labels_arr = prepare_class_labels(labels, scores.shape[0], scores.shape[1], "logits_or_probs")
    keep = labels_arr != IGNORE_INDEX
    if not keep.any():
        raise ValueError("`labels` has no labeled example (all are -100 or the input is empty).")
    preds = scores[keep].argmax(axis=-1)
    gold = labels_arr[keep]
    keys = metric_keys(label_names, scores.shape[1])
    per_class = f1_score(gold, preds, labels=list(range(scores.shape[1])), average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(gold, preds)),
        "macro_f1": float(f1_score(gold, preds, average="macro", zero_division=0)),
        **{f"f1_{key}": float(value) for key, value in zip(keys, per_class)},
    }


def _positive_scores(scores: npt.ArrayLike, name: str) -> np.ndarray:
    scores_arr = as_probabilities(scores, name)
    if scores_arr.ndim == 2 and scores_arr.shape[1] == 1:
        scores_arr = scores_arr[:, 0]
    if scores_arr.ndim != 1:
        raise ValueError(
            f"`{name}` must hold one positive-class probability per example, shape (n,) or (n, 1), got "
            f"{scores_arr.shape}."
        )
    return scores_arr


def binary_metrics(scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float = 0.5) -> dict[str, float]:
    """
    Ranking, calibration and thresholded (triage) metrics of a binary classifier.

    Examples labeled `-100` are ignored. When the scored labels contain a single class, AUROC and AUPRC are undefined
    and returned as `float("nan")` (no exception, so that training loops keep running); the other metrics are still
    computed.

    Args:
        scores (`npt.ArrayLike` of shape `(n_examples,)` or `(n_examples, 1)`):
            Probability of the positive class, in `[0, 1]`.
        labels (`npt.ArrayLike` of shape `(n_examples,)` or `(n_examples, 1)`):
            Gold labels in `{0, 1}`, or `-100` for ignored examples.
        threshold (`float`, *optional*, defaults to 0.5):
            An example is predicted positive when `score >= threshold`.

    Returns:
        `dict[str, float]`: `auroc`, `auprc` (average precision), `brier` (mean squared error of the probabilities),
        `ece` ([`expected_calibration_error`] of the binary predictions), and at `threshold`: `sensitivity` (recall of
        the positive class), `specificity` (recall of the negative class), `ppv` (precision), `npv`, `f1` (of the
        positive class); `prevalence` (positive rate of the labels) and `threshold`.
    """
    threshold = check_threshold(threshold)
    scores_arr = _positive_scores(scores, "scores")
    labels_arr = as_numeric(labels, "labels")
    if labels_arr.ndim == 2 and labels_arr.shape[1] == 1:
        labels_arr = labels_arr[:, 0]
    check_same_shape(scores_arr, "scores", labels_arr, "labels")
    mask = labeled_mask(labels_arr, "labels")
    if not mask.any():
        raise ValueError("`labels` has no labeled example (all are -100 or the input is empty).")
    scores_arr, gold = scores_arr[mask], labels_arr[mask] == 1

    if gold.all() or not gold.any():
        auroc = auprc = math.nan
    else:
        auroc = float(roc_auc_score(gold, scores_arr))
        auprc = float(average_precision_score(gold, scores_arr))
    predicted = scores_arr >= threshold
    tp, fp, fn = confusion_counts(predicted, gold, np.ones_like(gold), axis=None)
    tn = int((~predicted & ~gold).sum())
    return {
        "auroc": auroc,
        "auprc": auprc,
        "brier": float(brier_score_loss(gold, scores_arr, pos_label=True)),
        "ece": expected_calibration_error(scores_arr, gold.astype(np.int64)),
        "sensitivity": float(safe_divide(tp, tp + fn)),
        "specificity": float(safe_divide(tn, tn + fp)),
        "ppv": float(safe_divide(tp, tp + fp)),
        "npv": float(safe_divide(tn, tn + fn)),
        "f1": float(f1_from_counts(tp, fp, fn)),
        "prevalence": float(gold.mean()),
        "threshold": threshold,
    }


# ----------------------------------------------------------------------------------------------------
# Distillation diagnostics
# ----------------------------------------------------------------------------------------------------


def agreement(
    student_probs: npt.ArrayLike,
    teacher_probs: npt.ArrayLike,
    problem_type: str,
) -> float:
    """
    Fraction of predictions on which the student agrees with its teacher.

    - `"single_label_classification"`: rows of shape `(n, num_classes)`, predictions are the argmax (so logits work
      too); the result is the fraction of rows with the same argmax.
    - `"multi_label_classification"` / `"binary"`: probabilities in `[0, 1]`, each cell predicted positive when
      `p >= 0.5`; the result is the fraction of matching cells.

    Args:
        student_probs (`npt.ArrayLike`):
            Student probabilities, same shape as `teacher_probs`.
        teacher_probs (`npt.ArrayLike`):
            Teacher probabilities.
        problem_type (`str`):
            One of `"single_label_classification"`, `"multi_label_classification"` or `"binary"`.

    Returns:
        `float`: Agreement in `[0, 1]`.
    """
    if problem_type == SINGLE_LABEL:
        student = as_numeric(student_probs, "student_probs")
        teacher = as_numeric(teacher_probs, "teacher_probs")
    elif has_threshold(problem_type):
        student = as_probabilities(student_probs, "student_probs")
        teacher = as_probabilities(teacher_probs, "teacher_probs")
    else:
        raise ValueError(
            f"`problem_type` must be 'single_label_classification', 'multi_label_classification' or 'binary', got "
            f"{problem_type!r}."
        )
    check_same_shape(student, "student_probs", teacher, "teacher_probs")
    if student.size == 0:
        raise ValueError("`student_probs` is empty.")
    if problem_type == SINGLE_LABEL:
        if student.ndim != 2:
            raise ValueError(f"`student_probs` must have shape (n_examples, num_classes), got {student.shape}.")
        return float(np.mean(student.argmax(axis=-1) == teacher.argmax(axis=-1)))
    return float(np.mean((student >= 0.5) == (teacher >= 0.5)))


def expected_calibration_error(probs: npt.ArrayLike, labels: npt.ArrayLike, n_bins: int = 15) -> float:
    """
    Expected calibration error (ECE) with equal-width confidence bins.

    `ECE = sum_b (|B_b| / N) * |acc(B_b) - conf(B_b)|`, where the `n_bins` bins split `[0, 1]` into equal
    right-closed intervals `((b-1)/n_bins, b/n_bins]` (the first one also holds 0), `N` is the number of scored
    predictions, `acc(B_b)` the fraction of correct predictions in bin `b` and `conf(B_b)` their mean confidence.

    The kind of prediction is inferred from the shapes:

    - single-label: `probs` of shape `(n, num_classes)` (`num_classes >= 2`, rows summing to 1) and `labels` of shape
      `(n,)`: the prediction is the argmax, its confidence the max probability.
    - binary / multi-label: `probs` and `labels` of the same shape `(n,)` or `(n, num_labels)`, `probs` being
      positive-class probabilities: every cell is a binary prediction `p >= 0.5` with confidence `max(p, 1 - p)`.

    Labels equal to `-100` are ignored (the example for single-label, the cell otherwise).

    Args:
        probs (`npt.ArrayLike`):
            Probabilities in `[0, 1]` (not logits).
        labels (`npt.ArrayLike`):
            Gold labels: class ids for single-label, `{0, 1}` otherwise; `-100` for ignored entries.
        n_bins (`int`, *optional*, defaults to 15):
            Number of equal-width bins.

    Returns:
        `float`: The ECE, in `[0, 1]`.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"`n_bins` must be a positive integer, got {n_bins!r}.")
    probs_arr = as_probabilities(probs, "probs")
    labels_arr = as_numeric(labels, "labels")

    if probs_arr.ndim == 2 and labels_arr.ndim == 1 and probs_arr.shape[1] >= 2:
        labels_arr = prepare_class_labels(labels_arr, probs_arr.shape[0], probs_arr.shape[1], "probs")
        if not np.allclose(probs_arr.sum(axis=1), 1.0, atol=1e-3):
            raise ValueError(
                "`probs` rows must sum to 1 for single-label ECE (labels are class ids); apply `softmax` first."
            )
        keep = labels_arr != IGNORE_INDEX
        confidence = probs_arr[keep].max(axis=1)
        correct = probs_arr[keep].argmax(axis=1) == labels_arr[keep]
    else:
        if probs_arr.ndim == 2 and probs_arr.shape[1] == 1 and labels_arr.ndim == 1:
            probs_arr = probs_arr[:, 0]
        check_same_shape(probs_arr, "probs", labels_arr, "labels")
        keep = labeled_mask(labels_arr, "labels")
        confidence = np.maximum(probs_arr[keep], 1.0 - probs_arr[keep])
        correct = (probs_arr[keep] >= 0.5) == (labels_arr[keep] == 1)
    if confidence.size == 0:
        raise ValueError("`labels` has no labeled entry (all are -100 or the input is empty).")

    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], confidence, side="left")
    confidence_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(bins, weights=correct.astype(np.float64), minlength=n_bins)
    return float(np.abs(correct_sum - confidence_sum).sum() / confidence.size)
