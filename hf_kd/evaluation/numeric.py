"""Array checks and counts shared by the metric modules (`hf_kd.evaluation.metrics`, `hf_kd.evaluation.thresholds`,
BLURB scoring).

Conventions: label entries equal to `-100` are ignored (per cell for multi-label data); a probability `p` is predicted
positive when `p >= threshold`; precision, recall and F1 with an empty denominator are `0.0` (scikit-learn's
`zero_division=0`); invalid inputs raise a `ValueError` naming the argument at fault.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import multilabel_confusion_matrix

from ..constants import IGNORE_INDEX

__all__ = [
    "as_numeric",
    "as_probabilities",
    "check_no_nan",
    "check_same_length",
    "check_same_shape",
    "check_threshold",
    "confusion_counts",
    "f1_from_counts",
    "labeled_mask",
    "metric_keys",
    "positive_scores",
    "prepare_multilabel",
    "safe_divide",
    "sigmoid",
    "softmax",
    "threshold_vector",
]

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


def check_no_nan(array: np.ndarray, name: str) -> None:
    """Raise a `ValueError` naming `name` when a float array holds NaN."""
    if np.issubdtype(array.dtype, np.floating) and np.isnan(array).any():
        raise ValueError(f"`{name}` contains NaN values ({int(np.isnan(array).sum())} of {array.size}).")


def as_numeric(x: npt.ArrayLike, name: str) -> np.ndarray:
    """`x` as a numeric array without NaN; a `ValueError` naming `name` otherwise."""
    array = np.asarray(x)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"`{name}` must be numeric, got an array of dtype {array.dtype}.")
    check_no_nan(array, name)
    return array


def as_probabilities(x: npt.ArrayLike, name: str) -> np.ndarray:
    """`x` as a float64 array of probabilities in [0, 1]; a `ValueError` naming `name` otherwise."""
    array = as_numeric(x, name).astype(np.float64, copy=False)
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise ValueError(
            f"`{name}` must contain probabilities in [0, 1], got values in [{array.min():.4g}, {array.max():.4g}]; "
            "apply `sigmoid`/`softmax` to logits first."
        )
    return array


def check_same_shape(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    """Raise a `ValueError` naming both arguments when their shapes differ."""
    if a.shape != b.shape:
        raise ValueError(f"`{a_name}` has shape {a.shape} but `{b_name}` has shape {b.shape}; they must match.")


def check_same_length(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    """Raise a `ValueError` naming both arguments when their numbers of rows differ."""
    if a.ndim == 0 or b.ndim == 0 or a.shape[0] != b.shape[0]:
        raise ValueError(
            f"`{a_name}` has shape {a.shape} but `{b_name}` has shape {b.shape}; "
            "their first dimensions (number of examples) must match."
        )


def labeled_mask(labels: np.ndarray, name: str) -> np.ndarray:
    """The mask of labeled cells (not -100), after checking that every labeled cell is 0 or 1."""
    mask = labels != IGNORE_INDEX
    valid = labels[mask]
    bad = (valid != 0) & (valid != 1)
    if bad.any():
        raise ValueError(
            f"`{name}` must contain only 0, 1 or {IGNORE_INDEX} (ignored), got {np.unique(valid[bad])[:5].tolist()}."
        )
    return mask


def check_threshold(threshold: Any, name: str = "threshold") -> float:
    """A decision threshold in [0, 1] as a float; a `ValueError` naming `name` otherwise."""
    if isinstance(threshold, np.ndarray) and threshold.ndim == 0:
        threshold = threshold.item()
    if isinstance(threshold, bool | np.bool_) or not isinstance(threshold, int | float | np.integer | np.floating):
        raise ValueError(f"`{name}` must be a float in [0, 1], got {type(threshold).__name__}.")
    value = float(threshold)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"`{name}` must be in [0, 1], got {value}.")
    return value


def threshold_vector(threshold: float | npt.ArrayLike, num_labels: int) -> np.ndarray:
    """Broadcastable `(num_labels,)` thresholds from a scalar or a per-label array."""
    if np.ndim(threshold) == 0:
        return np.full(num_labels, check_threshold(threshold))
    values = as_numeric(threshold, "threshold").astype(np.float64)
    if values.shape != (num_labels,):
        raise ValueError(
            f"`threshold` must be a float or an array of shape ({num_labels},) (one per label), got shape "
            f"{values.shape}."
        )
    if (values < 0).any() or (values > 1).any():
        raise ValueError(f"`threshold` values must be in [0, 1], got values in [{values.min()}, {values.max()}].")
    return values


def prepare_multilabel(probs: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated `(probs, labels, mask)` as 2-D arrays (a 1-D input is one label)."""
    probs_arr = as_probabilities(probs, "probs")
    labels_arr = as_numeric(labels, "labels")
    check_same_shape(probs_arr, "probs", labels_arr, "labels")
    if probs_arr.ndim == 1:
        probs_arr, labels_arr = probs_arr[:, None], labels_arr[:, None]
    if probs_arr.ndim != 2:
        raise ValueError(f"`probs` must have shape (n_examples, num_labels), got shape {probs_arr.shape}.")
    mask = labeled_mask(labels_arr, "labels")
    if not mask.any():
        raise ValueError("`labels` has no labeled entry (all are -100 or the input is empty).")
    return probs_arr, labels_arr == 1, mask


def confusion_counts(
    preds: np.ndarray, gold: np.ndarray, mask: np.ndarray, axis: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True-positive, false-positive and false-negative counts over the labeled cells, from scikit-learn's
    `multilabel_confusion_matrix` (a masked cell is zeroed on both sides, so it counts as a true negative only)."""
    preds = (np.asarray(preds, dtype=bool) & mask).astype(np.int64)
    gold = (np.asarray(gold, dtype=bool) & mask).astype(np.int64)
    if preds.ndim == 1:
        preds, gold = preds[:, None], gold[:, None]
    if preds.shape[1] == 1:  # one column is a binary target to scikit-learn: count its positive class
        matrices = multilabel_confusion_matrix(gold[:, 0], preds[:, 0], labels=[1])
    else:
        matrices = multilabel_confusion_matrix(gold, preds, labels=list(range(preds.shape[1])))
    tp, fp, fn = matrices[:, 1, 1], matrices[:, 0, 1], matrices[:, 1, 0]
    if axis is None:
        return tp.sum(), fp.sum(), fn.sum()
    return tp, fp, fn


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """`numerator / denominator`, 0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 from true-positive, false-positive and false-negative counts (0 when all are 0)."""
    return safe_divide(2 * tp, 2 * tp + fp + fn)


def metric_keys(label_names: Sequence[str] | None, num_labels: int) -> list[str]:
    """
    The key of each label in per-label metric names (`f1_<key>`).

    Accents are stripped, the name is lower-cased, runs of characters outside `[a-z0-9_]` become one `_` and
    leading/trailing `_` are removed; a name left empty falls back to its index.

    Args:
        label_names (`Sequence[str]`, *optional*):
            One name per label; the indices `"0"`, `"1"`, ... when None.
        num_labels (`int`):
            The number of labels.

    Returns:
        `list[str]`: One key per label.

    Raises:
        `ValueError`: When the count differs from `num_labels` or two names give the same key.
    """
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


def positive_scores(logits: npt.ArrayLike) -> np.ndarray:
    """
    Positive-class probabilities of a binary head: sigmoid of a one-logit head, softmax column 1 of a two-logit one.

    Args:
        logits (`npt.ArrayLike` of shape `(n,)`, `(n, 1)` or `(n, 2)`):
            The head's logits.

    Returns:
        `np.ndarray` of shape `(n,)`: The probabilities.
    """
    logits = as_numeric(logits, "logits")
    if logits.ndim == 2 and logits.shape[1] == 2:
        return softmax(logits, axis=-1)[:, 1]
    if logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1):
        return sigmoid(logits.reshape(-1))
    raise ValueError(f"Binary logits must have shape (n,), (n, 1) or (n, 2), got {logits.shape}.")
