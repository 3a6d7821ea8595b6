"""BLURB's abstract-level scoring of sentence-level HoC: the sentences of one abstract (their `group`, the PMID) are
joined by the union of their predicted and gold labels, then micro-F1 is computed over abstracts."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from .numeric import (
    as_numeric,
    check_same_length,
    confusion_counts,
    f1_from_counts,
    prepare_multilabel,
    safe_divide,
    threshold_vector,
)

__all__ = ["aggregate_by_group", "blurb_hoc_f1"]

_AGGREGATIONS: tuple[str, ...] = ("max", "min", "mean", "sum", "any")


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
    values_arr = as_numeric(values, "values")
    groups_arr = np.asarray(groups)
    if groups_arr.ndim != 1:
        raise ValueError(f"`groups` must be 1-D (one id per row), got shape {groups_arr.shape}.")
    check_same_length(values_arr, "values", groups_arr, "groups")
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
    probs_arr, gold, mask = prepare_multilabel(sentence_probs_or_preds, labels)
    groups_arr = np.asarray(groups)
    if groups_arr.ndim != 1:
        raise ValueError(f"`groups` must be 1-D (one document id per sentence), got shape {groups_arr.shape}.")
    check_same_length(probs_arr, "sentence_probs_or_preds", groups_arr, "groups")
    preds = (probs_arr >= threshold_vector(threshold, probs_arr.shape[1])) & mask

    _, doc_preds = aggregate_by_group(preds, groups_arr, reduce="any")
    _, doc_gold = aggregate_by_group(gold & mask, groups_arr, reduce="any")
    _, doc_mask = aggregate_by_group(mask, groups_arr, reduce="any")

    tp, fp, fn = confusion_counts(doc_preds, doc_gold, doc_mask, axis=0)
    tp_all, fp_all, fn_all = tp.sum(), fp.sum(), fn.sum()
    return {
        "micro_f1": float(f1_from_counts(tp_all, fp_all, fn_all)),
        "micro_precision": float(safe_divide(tp_all, tp_all + fp_all)),
        "micro_recall": float(safe_divide(tp_all, tp_all + fn_all)),
        "macro_f1": float(f1_from_counts(tp, fp, fn).mean()),
        "n_documents": int(doc_mask.any(axis=1).sum()),
    }
