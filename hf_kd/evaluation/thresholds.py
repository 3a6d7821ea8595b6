"""Decision thresholds: fixed, tuned for F1 on held-out data, at the positive rate, or for a target sensitivity.

A probability `p` is predicted positive when `p >= threshold`; labels equal to `-100` are ignored. A *threshold rule*
(the `evaluation.threshold` of a recipe) is one of:

- a number in [0, 1]: that threshold;
- `"f1"`: the grid threshold maximizing (micro-)F1 on the given labels ([`tune_thresholds`]);
- `"prevalence"`: the positive rate of the given labels, DSG-KD's rule ([`positive_rate_threshold`]);
- `{"sensitivity": s}`: the highest threshold whose sensitivity (recall of the positive class) is at least `s`
  ([`sensitivity_threshold`]), e.g. to miss few emergencies in triage.

[`choose_threshold`] applies a rule; the rule is chosen on the validation split and the threshold it gives is then
used on every split. The threshold travels with the model: [`save_threshold`] records it in the model's config
(`config.json`'s `hf_kd_threshold`) and [`saved_threshold`] reads it back, for `hf-kd evaluate`, the export and
`hf-kd predict`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..constants import THRESHOLD_KEY
from .numeric import (
    as_numeric,
    as_probabilities,
    check_threshold,
    confusion_counts,
    f1_from_counts,
    labeled_mask,
    prepare_multilabel,
)
from .tasks import task_type

__all__ = [
    "DEFAULT_THRESHOLD_GRID",
    "check_threshold_rule",
    "choose_threshold",
    "decided_labels",
    "positive_rate_threshold",
    "predicted_labels",
    "save_threshold",
    "saved_threshold",
    "sensitivity_threshold",
    "tune_thresholds",
]

DEFAULT_THRESHOLD_GRID: np.ndarray = np.round(np.arange(1, 20) * 0.05, 2)
"""Default grid of [`tune_thresholds`]: 0.05, 0.10, ..., 0.95."""


def _check_grid(grid: npt.ArrayLike | None) -> np.ndarray:
    if grid is None:
        return DEFAULT_THRESHOLD_GRID.copy()
    values = as_numeric(grid, "grid").astype(np.float64)
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
    probs_arr, gold, mask = prepare_multilabel(probs, labels)
    candidates = _check_grid(grid)
    if per_label:
        scores = np.empty((candidates.size, probs_arr.shape[1]))
        for i, value in enumerate(candidates):
            scores[i] = f1_from_counts(*confusion_counts(probs_arr >= value, gold, mask, axis=0))
        return np.array([_best_threshold(candidates, scores[:, j]) for j in range(probs_arr.shape[1])])
    scores = np.array(
        [f1_from_counts(*confusion_counts(probs_arr >= value, gold, mask, axis=None)) for value in candidates]
    )
    return _best_threshold(candidates, scores)


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
    labels_arr = as_numeric(train_labels, "train_labels")
    mask = labeled_mask(labels_arr, "train_labels")
    if not mask.any():
        raise ValueError("`train_labels` has no labeled entry (all are -100 or the input is empty).")
    rate = float(np.mean(labels_arr[mask] == 1))
    if rate in (0.0, 1.0):
        raise ValueError(f"`train_labels` contains a single class (positive rate {rate}); no usable threshold.")
    return rate


def sensitivity_threshold(scores: npt.ArrayLike, labels: npt.ArrayLike, target: float) -> float:
    """
    The highest threshold whose sensitivity (true-positive rate) on `labels` is at least `target`.

    With `P` positives, at least `ceil(target · P)` of them must score `>= threshold`: the threshold is the score of
    the positive ranked `ceil(target · P)`-th from the top. Any higher threshold misses more positives.

    Args:
        scores (`npt.ArrayLike` of shape `(n_examples,)`):
            Positive-class probabilities.
        labels (`npt.ArrayLike` of shape `(n_examples,)`):
            Gold labels in `{0, 1}`, or `-100` for ignored examples.
        target (`float`):
            The sensitivity wanted, in (0, 1].

    Returns:
        `float`: The threshold.

    Raises:
        `ValueError`: On a target outside (0, 1] or labels without a positive.
    """
    if not isinstance(target, int | float) or isinstance(target, bool) or not 0 < target <= 1:
        raise ValueError(f"The target sensitivity must be a number in (0, 1], got {target!r}.")
    scores_arr = as_probabilities(scores, "scores").reshape(-1)
    labels_arr = as_numeric(labels, "labels").reshape(-1)
    mask = labeled_mask(labels_arr, "labels")
    positives = np.sort(scores_arr[mask & (labels_arr == 1)])[::-1]
    if positives.size == 0:
        raise ValueError("`labels` has no positive example, so no threshold reaches a sensitivity.")
    needed = int(np.ceil(target * positives.size - 1e-9))
    return float(positives[max(needed, 1) - 1])


def check_threshold_rule(rule: object) -> float | str | tuple[str, float]:
    """
    Validate a threshold rule (see the module docstring) and return it in normal form.

    Args:
        rule (`float`, `str` or `dict`):
            A number in [0, 1], `"f1"`, `"prevalence"` or `{"sensitivity": s}`.

    Returns:
        `float`, `str` or `tuple[str, float]`: The number, the name, or `("sensitivity", s)`.

    Raises:
        `ValueError`: Quoting the rule when it is none of these.
    """
    if isinstance(rule, int | float) and not isinstance(rule, bool):
        if not 0.0 <= float(rule) <= 1.0:
            raise ValueError(f"A fixed threshold must be in [0, 1], got {rule!r}.")
        return float(rule)
    if rule in ("f1", "prevalence"):
        return str(rule)
    if isinstance(rule, dict) and set(rule) == {"sensitivity"}:
        target = rule["sensitivity"]
        if not isinstance(target, int | float) or isinstance(target, bool) or not 0 < target <= 1:
            raise ValueError(f"`sensitivity` must be a number in (0, 1], got {target!r}.")
        return ("sensitivity", float(target))
    raise ValueError(
        f"A threshold rule is a number in [0, 1], 'f1', 'prevalence' or {{'sensitivity': s}}, got {rule!r}."
    )


def choose_threshold(rule: object, probs: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """
    The threshold a rule gives on held-out probabilities and labels.

    Args:
        rule (`float`, `str` or `dict`):
            The rule (see [`check_threshold_rule`]).
        probs (`npt.ArrayLike`):
            Positive-class probabilities: shape `(n,)` for a binary task, `(n, num_labels)` for multi-label (one
            global threshold).
        labels (`npt.ArrayLike`):
            Gold labels of the same shape, `-100` ignored.

    Returns:
        `float`: The threshold.
    """
    normal = check_threshold_rule(rule)
    if isinstance(normal, float):
        return normal
    if normal == "f1":
        return float(tune_thresholds(probs, labels))
    if normal == "prevalence":
        return positive_rate_threshold(labels)
    return sensitivity_threshold(probs, labels, normal[1])


def predicted_labels(
    logits: npt.ArrayLike, task: str, label_names: Sequence[str], threshold: float | None = None
) -> list[Any]:
    """
    The label names a classifier's logits predict: one per row (single-label; binary: the second, positive name when
    its probability reaches `threshold`), a list per row (multi-label, each label at `threshold`), or a float
    (regression). The task type decides ([`~hf_kd.evaluation.tasks.TaskType.predicted_labels`]).

    Args:
        logits (`npt.ArrayLike` of shape `(n, num_labels)`):
            The logits.
        task (`str`):
            `single_label_classification`, `multi_label_classification`, `binary` or `regression`.
        label_names (`Sequence[str]`):
            The label names in id order.
        threshold (`float`, *optional*):
            The operating threshold of a multi-label or binary task (0.5 when None).

    Returns:
        `list`: The predictions.
    """
    return task_type(task).predicted_labels(logits, label_names, threshold)


def decided_labels(
    logits: npt.ArrayLike, labels: npt.ArrayLike, problem_type: str, threshold: Any = 0.5
) -> tuple[list, list]:
    """
    The predicted labels and the labels of the labelled rows, as an `evaluate` metric takes them: class ids
    (single-label), 0/1 per label at `threshold` (multi-label), 0/1 at `threshold` (binary), values (regression).
    The task type decides ([`~hf_kd.evaluation.tasks.TaskType.decided_labels`]).

    Args:
        logits (`npt.ArrayLike`):
            The model's logits, one row per example.
        labels (`npt.ArrayLike`):
            The labels (`-100`: unlabeled, left out).
        problem_type (`str`):
            One of `hf_kd.constants.TASK_TYPES`.
        threshold (`float`, *optional*, defaults to 0.5):
            The decision threshold of a multi-label or binary task.

    Returns:
        `tuple[list, list]`: The predictions and the references.
    """
    return task_type(problem_type).decided_labels(logits, labels, threshold)


def save_threshold(config: Any, threshold: float) -> None:
    """
    Record a model's operating threshold in its config (`hf_kd_threshold`, saved with `config.json`).

    Args:
        config (`PretrainedConfig`):
            The model's config (saved afterwards with `save_pretrained`).
        threshold (`float`):
            The threshold chosen on the validation split, in [0, 1].

    Raises:
        `ValueError`: Quoting the threshold when it is not a number in [0, 1] (NaN included).
    """
    config.update({THRESHOLD_KEY: check_threshold(threshold, "the operating threshold")})


def saved_threshold(source: Any) -> float | None:
    """
    The operating threshold recorded with a model ([`save_threshold`]), if any.

    Args:
        source (`PretrainedConfig`, `str` or `Path`):
            The model's config, or its folder (its `config.json` is read; a Hub id or a folder without one: None).

    Returns:
        `float` or `None`: The threshold.
    """
    if isinstance(source, str | Path):
        path = Path(source) / "config.json"
        value = json.loads(path.read_text(encoding="utf-8")).get(THRESHOLD_KEY) if path.is_file() else None
    else:
        value = getattr(source, THRESHOLD_KEY, None)
    return None if value is None else float(value)
