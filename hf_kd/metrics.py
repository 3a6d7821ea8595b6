"""Evaluation metrics for (distilled) text classifiers.

Plain numpy / scikit-learn functions, usable on their own or through [`make_compute_metrics`] as the
`compute_metrics` argument of a `transformers.Trainer`.

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
import re
import unicodedata
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

if TYPE_CHECKING:
    from transformers import EvalPrediction

__all__ = [
    "DEFAULT_THRESHOLD_GRID",
    "IGNORE_INDEX",
    "PROBLEM_TYPES",
    "aggregate_by_group",
    "agreement",
    "binary_metrics",
    "blurb_hoc_f1",
    "expected_calibration_error",
    "make_compute_metrics",
    "multilabel_metrics",
    "positive_rate_threshold",
    "sigmoid",
    "single_label_metrics",
    "softmax",
    "tune_thresholds",
]

IGNORE_INDEX: int = -100
"""Label value ignored by every metric (the `transformers` convention)."""

PROBLEM_TYPES: tuple[str, ...] = (
    "single_label_classification",
    "multi_label_classification",
    "binary",
    "regression",
)
"""Problem types understood by [`make_compute_metrics`]."""

DEFAULT_THRESHOLD_GRID: np.ndarray = np.round(np.arange(1, 20) * 0.05, 2)
"""Default grid of [`tune_thresholds`]: 0.05, 0.10, ..., 0.95."""

_AGGREGATIONS: tuple[str, ...] = ("max", "min", "mean", "sum", "any")


# ----------------------------------------------------------------------------------------------------
# Numeric helpers
# ----------------------------------------------------------------------------------------------------


def _as_float(x: npt.ArrayLike) -> np.ndarray:
    array = np.asarray(x)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def sigmoid(x: npt.ArrayLike) -> np.ndarray:
    """
    Numerically stable logistic function `1 / (1 + exp(-x))`, element-wise.

    Never overflows: `exp` is only evaluated on `-|x|`. Floating inputs keep their dtype, other inputs are cast to
    `float64`; NaN propagates.

    Args:
        x (`npt.ArrayLike`):
            Logits of any shape.

    Returns:
        `np.ndarray`: Probabilities in `[0, 1]`, same shape as `x`.
    """
    x = _as_float(x)
    exp_neg_abs = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + exp_neg_abs), exp_neg_abs / (1.0 + exp_neg_abs)).astype(x.dtype, copy=False)


def softmax(x: npt.ArrayLike, axis: int = -1) -> np.ndarray:
    """
    Numerically stable softmax (the maximum is subtracted before exponentiating).

    Floating inputs keep their dtype, other inputs are cast to `float64`; NaN propagates.

    Args:
        x (`npt.ArrayLike`):
            Logits of any shape with at least one dimension.
        axis (`int`, *optional*, defaults to -1):
            Axis along which the probabilities sum to 1.

    Returns:
        `np.ndarray`: Probabilities, same shape as `x`.
    """
    x = _as_float(x)
    if x.ndim == 0:
        raise ValueError("`x` must have at least one dimension for softmax, got a scalar.")
    shifted = x - np.max(x, axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / np.sum(exp, axis=axis, keepdims=True)


# ----------------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------------


def _check_no_nan(array: np.ndarray, name: str) -> None:
    if np.issubdtype(array.dtype, np.floating) and np.isnan(array).any():
        raise ValueError(f"`{name}` contains NaN values ({int(np.isnan(array).sum())} of {array.size}).")


def _to_array(x: npt.ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(x)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"`{name}` must be numeric, got an array of dtype {array.dtype}.")
    _check_no_nan(array, name)
    return array


def _to_probs(x: npt.ArrayLike, name: str) -> np.ndarray:
    array = _to_array(x, name).astype(np.float64, copy=False)
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise ValueError(
            f"`{name}` must contain probabilities in [0, 1], got values in [{array.min():.4g}, {array.max():.4g}]; "
            "apply `sigmoid`/`softmax` to logits first."
        )
    return array


def _check_same_shape(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"`{a_name}` has shape {a.shape} but `{b_name}` has shape {b.shape}; they must match.")


def _check_same_length(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if a.ndim == 0 or b.ndim == 0 or a.shape[0] != b.shape[0]:
        raise ValueError(
            f"`{a_name}` has shape {a.shape} but `{b_name}` has shape {b.shape}; "
            "their first dimensions (number of examples) must match."
        )


def _binary_label_mask(labels: np.ndarray, name: str) -> np.ndarray:
    """Returns the mask of labeled cells after checking every other cell is 0 or 1."""
    mask = labels != IGNORE_INDEX
    valid = labels[mask]
    bad = (valid != 0) & (valid != 1)
    if bad.any():
        raise ValueError(
            f"`{name}` must contain only 0, 1 or {IGNORE_INDEX} (ignored), got {np.unique(valid[bad])[:5].tolist()}."
        )
    return mask


def _check_threshold_value(threshold: Any, name: str = "threshold") -> float:
    if isinstance(threshold, np.ndarray) and threshold.ndim == 0:
        threshold = threshold.item()
    if isinstance(threshold, bool | np.bool_) or not isinstance(threshold, int | float | np.integer | np.floating):
        raise ValueError(f"`{name}` must be a float in [0, 1], got {type(threshold).__name__}.")
    value = float(threshold)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"`{name}` must be in [0, 1], got {value}.")
    return value


def _threshold_vector(threshold: float | npt.ArrayLike, num_labels: int) -> np.ndarray:
    """Broadcastable `(num_labels,)` thresholds from a scalar or a per-label array."""
    if np.ndim(threshold) == 0:
        return np.full(num_labels, _check_threshold_value(threshold))
    values = _to_array(threshold, "threshold").astype(np.float64)
    if values.shape != (num_labels,):
        raise ValueError(
            f"`threshold` must be a float or an array of shape ({num_labels},) (one per label), got shape "
            f"{values.shape}."
        )
    if (values < 0).any() or (values > 1).any():
        raise ValueError(f"`threshold` values must be in [0, 1], got values in [{values.min()}, {values.max()}].")
    return values


def _prepare_multilabel(probs: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated `(probs, labels, mask)` as 2-D arrays (a 1-D input is one label)."""
    probs_arr = _to_probs(probs, "probs")
    labels_arr = _to_array(labels, "labels")
    _check_same_shape(probs_arr, "probs", labels_arr, "labels")
    if probs_arr.ndim == 1:
        probs_arr, labels_arr = probs_arr[:, None], labels_arr[:, None]
    if probs_arr.ndim != 2:
        raise ValueError(f"`probs` must have shape (n_examples, num_labels), got shape {probs_arr.shape}.")
    mask = _binary_label_mask(labels_arr, "labels")
    if not mask.any():
        raise ValueError("`labels` has no labeled entry (all are -100 or the input is empty).")
    return probs_arr, labels_arr == 1, mask


def _counts(
    preds: np.ndarray, gold: np.ndarray, mask: np.ndarray, axis: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True-positive, false-positive and false-negative counts over the labeled cells."""
    tp = np.sum(preds & gold & mask, axis=axis)
    fp = np.sum(preds & ~gold & mask, axis=axis)
    fn = np.sum(~preds & gold & mask, axis=axis)
    return tp, fp, fn


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    return _safe_divide(2 * tp, 2 * tp + fp + fn)


def _sanitize_label_names(label_names: Sequence[str] | None, num_labels: int) -> list[str]:
    if label_names is None:
        return [str(i) for i in range(num_labels)]
    if isinstance(label_names, str):
        raise ValueError("`label_names` must be a sequence of strings, got a single string.")
    names = list(label_names)
    if len(names) != num_labels:
        raise ValueError(f"`label_names` has {len(names)} entries but there are {num_labels} labels.")
    keys: list[str] = []
    for index, name in enumerate(names):
        ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
        key = re.sub(r"[^a-z0-9_]+", "_", ascii_name.lower())
        key = re.sub(r"_+", "_", key).strip("_")
        keys.append(key or str(index))
    duplicated = sorted({key for key in keys if keys.count(key) > 1})
    if duplicated:
        raise ValueError(f"`label_names` map to duplicated metric keys after sanitization: {duplicated}.")
    return keys


# ----------------------------------------------------------------------------------------------------
# Multi-label metrics
# ----------------------------------------------------------------------------------------------------


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
    probs_arr, gold, mask = _prepare_multilabel(probs, labels)
    num_labels = probs_arr.shape[1]
    keys = _sanitize_label_names(label_names, num_labels)
    preds = probs_arr >= _threshold_vector(threshold, num_labels)

    tp, fp, fn = _counts(preds, gold, mask, axis=0)
    per_label_f1 = _f1_from_counts(tp, fp, fn)
    tp_all, fp_all, fn_all = tp.sum(), fp.sum(), fn.sum()
    metrics = {
        "micro_f1": float(_f1_from_counts(tp_all, fp_all, fn_all)),
        "macro_f1": float(per_label_f1.mean()),
        "micro_precision": float(_safe_divide(tp_all, tp_all + fp_all)),
        "micro_recall": float(_safe_divide(tp_all, tp_all + fn_all)),
    }
    for key, value in zip(keys, per_label_f1):
        metrics[f"f1_{key}"] = float(value)
    return metrics


def _check_grid(grid: npt.ArrayLike | None) -> np.ndarray:
    if grid is None:
        return DEFAULT_THRESHOLD_GRID.copy()
    values = _to_array(grid, "grid").astype(np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"`grid` must be a non-empty 1-D array of thresholds, got shape {values.shape}.")
    if (values < 0).any() or (values > 1).any():
        raise ValueError(f"`grid` values must be in [0, 1], got values in [{values.min()}, {values.max()}].")
    return np.unique(values)


def _best_threshold(grid: np.ndarray, scores: np.ndarray) -> float:
    """Grid value of maximal score; ties go to the value closest to 0.5, then to the lower one."""
    best = scores.max()
    candidates = grid[np.isclose(scores, best, rtol=0.0, atol=1e-12)]
    distance = np.abs(candidates - 0.5)
    return float(np.min(candidates[np.isclose(distance, distance.min(), rtol=0.0, atol=1e-12)]))


def tune_thresholds(
    probs: npt.ArrayLike,
    labels: npt.ArrayLike,
    per_label: bool = False,
    grid: npt.ArrayLike | None = None,
) -> float | np.ndarray:
    """
    Decision threshold(s) maximizing F1 on held-out data (typically the dev split).

    With `per_label=False`, one global threshold maximizing micro-F1 over all labels is returned. With
    `per_label=True`, each label gets the threshold maximizing its own F1, independently of the others.

    Ties are broken deterministically: among the grid values reaching the best F1 (to `1e-12`), the one **closest to
    0.5** wins, and if two are equally close (e.g. 0.4 and 0.6) the **lower** one wins. A label with no gold positive
    has F1 = 0 at every threshold, so it gets the grid value closest to 0.5.

    Args:
        probs (`npt.ArrayLike` of shape `(n_examples, num_labels)`):
            Probabilities in `[0, 1]`. A 1-D array (binary task) is treated as a single label.
        labels (`npt.ArrayLike` of shape `(n_examples, num_labels)`):
            Gold labels in `{0, 1}`, or `-100` for ignored cells.
        per_label (`bool`, *optional*, defaults to `False`):
            Whether to tune one threshold per label instead of a single global one.
        grid (`npt.ArrayLike`, *optional*):
            Candidate thresholds in `[0, 1]` (duplicates are dropped). Defaults to `0.05, 0.10, ..., 0.95`.

    Returns:
        `float` or `np.ndarray`: The global threshold as a `float`, or an array of shape `(num_labels,)` when
        `per_label=True`.
    """
    probs_arr, gold, mask = _prepare_multilabel(probs, labels)
    candidates = _check_grid(grid)
    if per_label:
        scores = np.empty((candidates.size, probs_arr.shape[1]))
        for i, value in enumerate(candidates):
            scores[i] = _f1_from_counts(*_counts(probs_arr >= value, gold, mask, axis=0))
        return np.array([_best_threshold(candidates, scores[:, j]) for j in range(probs_arr.shape[1])])
    scores = np.array([_f1_from_counts(*_counts(probs_arr >= value, gold, mask, axis=None)) for value in candidates])
    return _best_threshold(candidates, scores)


def aggregate_by_group(
    values: npt.ArrayLike,
    groups: Sequence[Hashable] | npt.ArrayLike,
    reduce: Literal["max", "min", "mean", "sum", "any"] = "max",
) -> tuple[np.ndarray, np.ndarray]:
    """
    Aggregates rows of `values` that share a group id (e.g. the sentences of one PubMed abstract).

    Args:
        values (`npt.ArrayLike` of shape `(n_examples, ...)`):
            Numeric (or boolean) values, one row per example.
        groups (`Sequence[Hashable]` or `npt.ArrayLike` of shape `(n_examples,)`):
            Group id of each row (any hashable: int, str, ...).
        reduce (`str`, *optional*, defaults to `"max"`):
            One of `"max"`, `"min"`, `"mean"`, `"sum"` or `"any"` (logical OR, returns booleans). On 0/1 values
            `"max"` and `"any"` both compute the union.

    Returns:
        `tuple[np.ndarray, np.ndarray]`: The unique group ids in order of first appearance, shape `(n_groups,)`, and
        the aggregated values, shape `(n_groups, ...)`, row `i` belonging to group `i`.
    """
    if reduce not in _AGGREGATIONS:
        raise ValueError(f"`reduce` must be one of {list(_AGGREGATIONS)}, got {reduce!r}.")
    values_arr = _to_array(values, "values")
    groups_arr = np.asarray(groups)
    if groups_arr.ndim != 1:
        raise ValueError(f"`groups` must be 1-D (one id per row), got shape {groups_arr.shape}.")
    _check_same_length(values_arr, "values", groups_arr, "groups")
    if values_arr.shape[0] == 0:
        raise ValueError("`values` is empty.")

    first_index: dict[Hashable, int] = {}
    group_of_row = np.empty(len(groups_arr), dtype=np.intp)
    first_rows: list[int] = []
    for row, group in enumerate(groups_arr.tolist()):
        index = first_index.get(group)
        if index is None:
            index = first_index[group] = len(first_rows)
            first_rows.append(row)
        group_of_row[row] = index
    unique_groups = groups_arr[np.asarray(first_rows, dtype=np.intp)]
    n_groups = len(first_rows)

    if reduce == "any":
        out = np.zeros((n_groups, *values_arr.shape[1:]), dtype=bool)
        np.logical_or.at(out, group_of_row, values_arr.astype(bool))
        return unique_groups, out
    if reduce in ("max", "min"):
        ufunc = np.maximum if reduce == "max" else np.minimum
        out = values_arr[np.asarray(first_rows, dtype=np.intp)].copy()
        ufunc.at(out, group_of_row, values_arr)
        return unique_groups, out
    dtype = np.float64 if reduce == "mean" else np.result_type(values_arr.dtype, np.int64)
    out = np.zeros((n_groups, *values_arr.shape[1:]), dtype=dtype)
    np.add.at(out, group_of_row, values_arr)
    if reduce == "mean":
        sizes = np.bincount(group_of_row, minlength=n_groups).reshape((n_groups,) + (1,) * (values_arr.ndim - 1))
        out /= sizes
    return unique_groups, out


def blurb_hoc_f1(
    sentence_probs_or_preds: npt.ArrayLike,
    labels: npt.ArrayLike,
    groups: Sequence[Hashable] | npt.ArrayLike,
    threshold: float | npt.ArrayLike = 0.5,
) -> dict[str, float]:
    """
    Document-level metric of the BLURB Hallmarks of Cancer (HoC) task.

    Sentence predictions (`sentence_probs_or_preds >= threshold`) and sentence gold labels are grouped by document
    id; each document's predicted (resp. gold) label set is the union (logical OR) of its sentences' sets. Micro
    precision, recall and F1 are then computed over all `(document, label)` cells. Hard 0/1 predictions can be
    passed directly: they are unchanged by any threshold in `(0, 1]`.

    Cells labeled `-100` are ignored on both sides (their prediction does not count either); a document cell is
    scored when at least one of its sentences is labeled for it, and a document with no labeled cell is dropped.

    Args:
        sentence_probs_or_preds (`npt.ArrayLike` of shape `(n_sentences, num_labels)`):
            Sentence-level probabilities in `[0, 1]` or hard 0/1 predictions.
        labels (`npt.ArrayLike` of shape `(n_sentences, num_labels)`):
            Sentence-level gold labels in `{0, 1}`, or `-100` for ignored cells.
        groups (`Sequence[Hashable]` or `npt.ArrayLike` of shape `(n_sentences,)`):
            Document id (e.g. PMID) of each sentence.
        threshold (`float` or `npt.ArrayLike` of shape `(num_labels,)`, *optional*, defaults to 0.5):
            Decision threshold, global or one per label.

    Returns:
        `dict[str, float]`: `micro_f1`, `micro_precision`, `micro_recall`, `macro_f1` (mean over labels of the
        document-level per-label F1) and `n_documents` (number of scored documents, an `int`).
    """
    probs_arr, gold, mask = _prepare_multilabel(sentence_probs_or_preds, labels)
    groups_arr = np.asarray(groups)
    if groups_arr.ndim != 1:
        raise ValueError(f"`groups` must be 1-D (one document id per sentence), got shape {groups_arr.shape}.")
    _check_same_length(probs_arr, "sentence_probs_or_preds", groups_arr, "groups")
    preds = (probs_arr >= _threshold_vector(threshold, probs_arr.shape[1])) & mask

    _, doc_preds = aggregate_by_group(preds, groups_arr, reduce="any")
    _, doc_gold = aggregate_by_group(gold & mask, groups_arr, reduce="any")
    _, doc_mask = aggregate_by_group(mask, groups_arr, reduce="any")

    tp, fp, fn = _counts(doc_preds, doc_gold, doc_mask, axis=0)
    tp_all, fp_all, fn_all = tp.sum(), fp.sum(), fn.sum()
    return {
        "micro_f1": float(_f1_from_counts(tp_all, fp_all, fn_all)),
        "micro_precision": float(_safe_divide(tp_all, tp_all + fp_all)),
        "micro_recall": float(_safe_divide(tp_all, tp_all + fn_all)),
        "macro_f1": float(_f1_from_counts(tp, fp, fn).mean()),
        "n_documents": int(doc_mask.any(axis=1).sum()),
    }


# ----------------------------------------------------------------------------------------------------
# Single-label and binary metrics
# ----------------------------------------------------------------------------------------------------


def _prepare_class_labels(labels: npt.ArrayLike, n_examples: int, num_classes: int, scores_name: str) -> np.ndarray:
    labels_arr = _to_array(labels, "labels")
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


def single_label_metrics(logits_or_probs: npt.ArrayLike, labels: npt.ArrayLike) -> dict[str, float]:
    """
    Accuracy and macro-F1 of a single-label (multi-class) classifier, predicting the argmax class.

    Examples labeled `-100` are ignored. As in scikit-learn's `f1_score(average="macro")`, the macro average runs
    over the classes present in the gold labels or the predictions of the scored examples.

    Args:
        logits_or_probs (`npt.ArrayLike` of shape `(n_examples, num_classes)`):
            Logits or probabilities (the argmax is the same).
        labels (`npt.ArrayLike` of shape `(n_examples,)`):
            Gold class ids in `[0, num_classes)`, or `-100` for ignored examples.

    Returns:
        `dict[str, float]`: `accuracy` and `macro_f1`.
    """
    scores = _to_array(logits_or_probs, "logits_or_probs")
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(
            f"`logits_or_probs` must have shape (n_examples, num_classes) with num_classes >= 2, got {scores.shape}."
        )
    labels_arr = _prepare_class_labels(labels, scores.shape[0], scores.shape[1], "logits_or_probs")
    keep = labels_arr != IGNORE_INDEX
    if not keep.any():
        raise ValueError("`labels` has no labeled example (all are -100 or the input is empty).")
    preds = scores[keep].argmax(axis=-1)
    gold = labels_arr[keep]
    return {
        "accuracy": float(np.mean(preds == gold)),
        "macro_f1": float(f1_score(gold, preds, average="macro", zero_division=0)),
    }


def _positive_scores(scores: npt.ArrayLike, name: str) -> np.ndarray:
    scores_arr = _to_probs(scores, name)
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
    Ranking, calibration and thresholded metrics of a binary classifier.

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
        `f1`, `precision`, `recall` (positive class, at `threshold`) and `threshold`.
    """
    threshold = _check_threshold_value(threshold)
    scores_arr = _positive_scores(scores, "scores")
    labels_arr = _to_array(labels, "labels")
    if labels_arr.ndim == 2 and labels_arr.shape[1] == 1:
        labels_arr = labels_arr[:, 0]
    _check_same_shape(scores_arr, "scores", labels_arr, "labels")
    mask = _binary_label_mask(labels_arr, "labels")
    if not mask.any():
        raise ValueError("`labels` has no labeled example (all are -100 or the input is empty).")
    scores_arr, gold = scores_arr[mask], labels_arr[mask] == 1

    if gold.all() or not gold.any():
        auroc = auprc = math.nan
    else:
        auroc = float(roc_auc_score(gold, scores_arr))
        auprc = float(average_precision_score(gold, scores_arr))
    tp, fp, fn = _counts(scores_arr >= threshold, gold, np.ones_like(gold), axis=None)
    return {
        "auroc": auroc,
        "auprc": auprc,
        "brier": float(np.mean((scores_arr - gold) ** 2)),
        "f1": float(_f1_from_counts(tp, fp, fn)),
        "precision": float(_safe_divide(tp, tp + fp)),
        "recall": float(_safe_divide(tp, tp + fn)),
        "threshold": threshold,
    }


def positive_rate_threshold(train_labels: npt.ArrayLike) -> float:
    """
    Decision threshold equal to the fraction of positives in the training labels (the DSG-KD rule).

    Entries labeled `-100` are ignored. For multi-label `(n, num_labels)` labels the fraction is taken over all
    labeled cells.

    Args:
        train_labels (`npt.ArrayLike` of shape `(n_examples,)` or `(n_examples, num_labels)`):
            Training gold labels in `{0, 1}`, or `-100` for ignored entries.

    Returns:
        `float`: The positive rate, strictly between 0 and 1.

    Raises:
        `ValueError`: If there is no labeled entry, or only one class (the threshold would be 0 or 1, which
            makes every prediction positive, resp. almost none).
    """
    labels_arr = _to_array(train_labels, "train_labels")
    mask = _binary_label_mask(labels_arr, "train_labels")
    if not mask.any():
        raise ValueError("`train_labels` has no labeled entry (all are -100 or the input is empty).")
    rate = float(np.mean(labels_arr[mask] == 1))
    if rate in (0.0, 1.0):
        raise ValueError(f"`train_labels` contains a single class (positive rate {rate}); no usable threshold.")
    return rate


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
    if problem_type == "single_label_classification":
        student = _to_array(student_probs, "student_probs")
        teacher = _to_array(teacher_probs, "teacher_probs")
    elif problem_type in ("multi_label_classification", "binary"):
        student = _to_probs(student_probs, "student_probs")
        teacher = _to_probs(teacher_probs, "teacher_probs")
    else:
        raise ValueError(
            f"`problem_type` must be 'single_label_classification', 'multi_label_classification' or 'binary', got "
            f"{problem_type!r}."
        )
    _check_same_shape(student, "student_probs", teacher, "teacher_probs")
    if student.size == 0:
        raise ValueError("`student_probs` is empty.")
    if problem_type == "single_label_classification":
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
    probs_arr = _to_probs(probs, "probs")
    labels_arr = _to_array(labels, "labels")

    if probs_arr.ndim == 2 and labels_arr.ndim == 1 and probs_arr.shape[1] >= 2:
        labels_arr = _prepare_class_labels(labels_arr, probs_arr.shape[0], probs_arr.shape[1], "probs")
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
        _check_same_shape(probs_arr, "probs", labels_arr, "labels")
        keep = _binary_label_mask(labels_arr, "labels")
        confidence = np.maximum(probs_arr[keep], 1.0 - probs_arr[keep])
        correct = (probs_arr[keep] >= 0.5) == (labels_arr[keep] == 1)
    if confidence.size == 0:
        raise ValueError("`labels` has no labeled entry (all are -100 or the input is empty).")

    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], confidence, side="left")
    confidence_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(bins, weights=correct.astype(np.float64), minlength=n_bins)
    return float(np.abs(correct_sum - confidence_sum).sum() / confidence.size)


# ----------------------------------------------------------------------------------------------------
# Trainer integration
# ----------------------------------------------------------------------------------------------------


def _first(x: Any) -> Any:
    """First element of a tuple/list of model outputs (e.g. logits followed by hidden states)."""
    while isinstance(x, tuple | list):
        if not x:
            raise ValueError("`EvalPrediction.predictions` is an empty tuple.")
        x = x[0]
    return x


def make_compute_metrics(
    problem_type: str,
    threshold: float | npt.ArrayLike | Literal["tune"] = 0.5,
    label_names: Sequence[str] | None = None,
) -> Callable[[EvalPrediction], dict[str, float]]:
    """
    Builds a `compute_metrics` function for `transformers.Trainer`.

    The returned callable takes an `EvalPrediction` (or a `(predictions, label_ids)` pair). When `predictions` is a
    tuple (logits followed by other outputs), its first element is used. Logits are turned into probabilities and
    passed to the metric functions of this module:

    - `"single_label_classification"`: softmax over `(n, num_classes)` logits, then [`single_label_metrics`].
    - `"multi_label_classification"`: sigmoid over `(n, num_labels)` logits, then [`multilabel_metrics`] (with
      `threshold` and `label_names`).
    - `"binary"`: a one-logit head (`(n,)` or `(n, 1)` logits, sigmoid) or a two-logit head (`(n, 2)`, softmax,
      positive class 1), then [`binary_metrics`].
    - `"regression"`: `mse` and `mae` between the (squeezed) predictions and labels.

    Args:
        problem_type (`str`):
            One of `"single_label_classification"`, `"multi_label_classification"`, `"binary"` or `"regression"`.
        threshold (`float`, `npt.ArrayLike` of shape `(num_labels,)` or `"tune"`, *optional*, defaults to 0.5):
            Decision threshold for `"multi_label_classification"` (global or per label) and `"binary"` (a float).
            `"tune"` (multi-label only): the global threshold maximizing micro-F1 on the evaluated predictions
            themselves ([`tune_thresholds`]), reported as `threshold`; evaluated on the dev split, these are the
            dev metrics `hf-kd` reports, e.g. as a search objective that does not depend on an arbitrary 0.5.
            Unused otherwise.
        label_names (`Sequence[str]`, *optional*):
            Label names for the per-label `f1_<name>` keys of `"multi_label_classification"`. Unused otherwise.

    Returns:
        `Callable[[EvalPrediction], dict[str, float]]`: The metric function.
    """
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"`problem_type` must be one of {list(PROBLEM_TYPES)}, got {problem_type!r}.")
    tune = isinstance(threshold, str)
    if tune:
        if threshold != "tune" or problem_type != "multi_label_classification":
            raise ValueError(
                f"`threshold` may be the string 'tune' only for problem_type 'multi_label_classification', got "
                f"{threshold!r} for {problem_type!r}."
            )
    elif problem_type == "binary" or np.ndim(threshold) == 0:
        _check_threshold_value(threshold)
    else:
        _threshold_vector(threshold, int(np.size(threshold)))
    names = list(label_names) if label_names is not None else None

    def compute_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
        if hasattr(eval_pred, "predictions"):
            predictions, label_ids = eval_pred.predictions, eval_pred.label_ids
        else:
            predictions, label_ids = eval_pred[0], eval_pred[1]
        logits = _to_array(_first(predictions), "predictions")
        labels = _to_array(_first(label_ids), "label_ids")

        if problem_type == "regression":
            preds = logits[:, 0] if logits.ndim == 2 and logits.shape[1] == 1 else logits
            targets = labels[:, 0] if labels.ndim == 2 and labels.shape[1] == 1 else labels
            _check_same_shape(preds, "predictions", targets, "label_ids")
            if preds.size == 0:
                raise ValueError("`predictions` is empty.")
            errors = preds.astype(np.float64) - targets.astype(np.float64)
            return {"mse": float(np.mean(errors**2)), "mae": float(np.mean(np.abs(errors)))}
        if problem_type == "single_label_classification":
            return single_label_metrics(softmax(logits, axis=-1), labels)
        if problem_type == "multi_label_classification":
            probs = sigmoid(logits)
            if tune:
                tuned = float(tune_thresholds(probs, labels))
                return {
                    **multilabel_metrics(probs, labels, threshold=tuned, label_names=names),
                    "threshold": tuned,
                }
            return multilabel_metrics(probs, labels, threshold=threshold, label_names=names)
        # binary
        if logits.ndim == 2 and logits.shape[1] == 2:
            scores = softmax(logits, axis=-1)[:, 1]
        elif logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1):
            scores = sigmoid(logits.reshape(-1))
        else:
            raise ValueError(
                f"`predictions` for problem_type 'binary' must have shape (n,), (n, 1) or (n, 2), got {logits.shape}."
            )
        return binary_metrics(scores, labels.reshape(-1), threshold=_check_threshold_value(threshold))

    return compute_metrics
