"""Checks on a label column, in Arrow: missing values, free text, and an encoded column against a model.

[`labels.encode_labels`] uses the helpers here to look at raw label values before it infers their format;
[`check_label_column`] is run by [`DistillationTrainer`] on the encoded `labels` column before training. Nothing here
builds a Python list of a column, and no message shows a label value that might be patient text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..constants import IGNORE_INDEX, LABELS_COLUMN, MULTI_LABEL, REGRESSION, SINGLE_LABEL
from .mapped import PageRelease

__all__ = [
    "FREE_TEXT_MAX_CHARS",
    "FREE_TEXT_MAX_DISTINCT",
    "check_label_column",
    "first_non_integer",
    "first_true",
    "is_list_type",
    "missing_label_row",
    "refuse_free_text",
    "scalar_kind",
]

# A string label column with values longer than this, or with more distinct values than a classifier could use, is
# taken for free text (e.g. the text column given as the label column) and refused without showing any value.
FREE_TEXT_MAX_CHARS = 100
FREE_TEXT_MAX_DISTINCT = 1000


def scalar_kind(arrow_type: pa.DataType) -> str:
    """The kind of a scalar Arrow type: `"str"`, `"int"` (booleans included), `"float"`, `"empty"` or a reason."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "str"
    if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_null(arrow_type):
        return "empty"
    return f"unsupported label type {arrow_type}"


def is_list_type(arrow_type: pa.DataType) -> bool:
    """Whether an Arrow type is a list (plain, large or fixed-size)."""
    types = pa.types
    return types.is_list(arrow_type) or types.is_large_list(arrow_type) or types.is_fixed_size_list(arrow_type)


def first_true(mask: pa.Array) -> int | None:
    """Index of the first true entry of a boolean array, or None."""
    if len(mask) == 0 or not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py())


def missing_label_row(arr: pa.Array) -> tuple[int, str] | None:
    """The first row whose label is missing (null, NaN, or a list holding one) or a blank string (a blank cell of
    delimited multi-label names too: it would otherwise read as "negative for every label")."""
    nan = pc.is_nan(arr) if pa.types.is_floating(arr.type) else None
    missing = pc.is_null(arr) if nan is None else pc.or_(pc.is_null(arr), pc.fill_null(nan, True))
    found = first_true(missing)
    if is_list_type(arr.type):
        flat = pc.list_flatten(arr)
        inner = pc.is_null(flat)
        if pa.types.is_floating(flat.type):
            inner = pc.or_(inner, pc.fill_null(pc.is_nan(flat), True))
        bad = first_true(inner)
        if bad is not None:
            row = int(pc.list_parent_indices(arr)[bad].as_py())
            found = row if found is None else min(found, row)
    empty = None
    if scalar_kind(arr.type) == "str":
        empty = first_true(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(arr), ""), False))
    if found is not None and (empty is None or found <= empty):
        return found, "Missing"
    if empty is not None:
        return empty, "Empty"
    return None


def first_non_integer(values: Mapping[str, pa.Array]) -> tuple[str, int, float] | None:
    """The first `(split, row, value)` whose float label is not a whole number, or None."""
    for split, arr in values.items():
        if pa.types.is_floating(arr.type):
            numbers = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
            bad = np.flatnonzero(numbers != np.round(numbers))
            if bad.size:
                return split, int(bad[0]), float(numbers[bad[0]])
    return None


def refuse_free_text(values: Mapping[str, pa.Array], column: str) -> None:
    """Refuse a string label column that looks like free text, without printing any of its values."""
    for split, arr in values.items():
        flat = pc.list_flatten(arr) if is_list_type(arr.type) else arr
        if scalar_kind(flat.type) != "str" or len(flat) == 0:
            continue
        longest = pc.max(pc.utf8_length(flat)).as_py() or 0
        distinct = len(pc.unique(flat))
        many = distinct > FREE_TEXT_MAX_DISTINCT or (distinct > 50 and distinct > 0.5 * len(flat))
        if longest > FREE_TEXT_MAX_CHARS or many:
            raise ValueError(
                f"Label column '{column}' of split '{split}' looks like free text ({distinct} distinct values in "
                f"{len(flat)} labels, the longest {longest} characters), not like labels; choose the column that "
                "holds the labels (`label_column`, `data.label_column` in a recipe). No value is shown, since it may "
                "be patient text."
            )


def check_label_column(
    dataset: datasets.Dataset, config: Any, name: str = "training", chunk_rows: int = 100_000
) -> None:
    """
    Check an encoded `labels` column against a model before training on it, in Arrow (no Python list of it), a chunk
    of rows at a time so that its memory does not grow with the set (a transfer set of millions of rows).

    Args:
        dataset (`datasets.Dataset`):
            The data, with a `labels` column.
        config (`PretrainedConfig`):
            The model's config: its `num_labels`, and its `problem_type` (when unset, inferred from the column as
            transformers infers it from a batch: lists are multi-label, one output is regression).
        name (`str`, *optional*, defaults to `"training"`):
            The set's name, for the messages.
        chunk_rows (`int`, *optional*, defaults to 100000):
            Rows checked at a time.

    Raises:
        `ValueError`: Naming the first row at fault: an id out of range, a negative id other than -100, a multi-hot
            row for a single-label model (or class ids for a multi-label one), a row of the wrong width, a value
            outside [0, 1], or a missing label.
    """
    if LABELS_COLUMN not in (dataset.column_names or []) or len(dataset) == 0:
        return
    arrow_type = dataset.features.arrow_schema.field(LABELS_COLUMN).type
    num_labels = int(config.num_labels)
    problem_type = config.problem_type
    if problem_type is None:
        problem_type = REGRESSION if num_labels == 1 else MULTI_LABEL if is_list_type(arrow_type) else SINGLE_LABEL
        if problem_type == SINGLE_LABEL and pa.types.is_floating(arrow_type):
            return  # float scalars: transformers would take them for multi-label targets and fail on the shape
    if problem_type == REGRESSION:
        return
    if problem_type == SINGLE_LABEL and is_list_type(arrow_type):
        raise ValueError(
            f"The labels of the {name} set are lists (multi-hot) but the model is a single-label classifier with "
            f"{num_labels} classes; set `problem_type='multi_label_classification'` or give one class id per row."
        )
    if problem_type != SINGLE_LABEL and not is_list_type(arrow_type):
        raise ValueError(
            f"The labels of the {name} set are class ids but the model is a multi-label classifier: each row needs "
            f"{num_labels} values (multi-hot)."
        )
    labels = dataset.select_columns([LABELS_COLUMN]).with_format("arrow")
    release = PageRelease([labels])
    for offset in range(0, len(labels), chunk_rows):
        column = labels[offset : offset + chunk_rows][LABELS_COLUMN]
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        release.read(arr.nbytes)
        _check_label_chunk(arr, offset, problem_type, num_labels, f"row {{}} of the {name} set")


def _check_label_chunk(arr: pa.Array, offset: int, problem_type: str, num_labels: int, where: str) -> None:
    """[`check_label_column`] on the rows `offset, offset + 1, ...` of the column: `arr`."""
    missing = missing_label_row(arr)
    if missing is not None:
        raise ValueError(f"Missing label at {where.format(offset + missing[0])}.")
    if problem_type == SINGLE_LABEL:
        ids = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
        bad = np.flatnonzero((ids != np.round(ids)) | ((ids < 0) & (ids != IGNORE_INDEX)) | (ids >= num_labels))
        if bad.size:
            value = ids[bad[0]]
            shown = int(value) if value == round(value) else value
            raise ValueError(
                f"Label {shown} at {where.format(offset + int(bad[0]))} is not a class id of the model: ids run from "
                f"0 to {num_labels - 1}, and -100 marks an unlabeled example."
            )
        return
    lengths = np.asarray(pc.list_value_length(arr).to_numpy(zero_copy_only=False))
    wrong = np.flatnonzero(lengths != num_labels)
    if wrong.size:
        raise ValueError(
            f"The label row at {where.format(offset + int(wrong[0]))} has {int(lengths[wrong[0]])} values; the model "
            f"has {num_labels} labels."
        )
    flat = np.asarray(pc.list_flatten(arr).to_numpy(zero_copy_only=False), dtype=np.float64)
    bad = np.flatnonzero(((flat < 0) | (flat > 1)) & (flat != IGNORE_INDEX))
    if bad.size:
        raise ValueError(
            f"Multi-hot label value {float(flat[bad[0]])} at {where.format(offset + int(bad[0]) // num_labels)} is "
            "outside [0, 1]; -100 marks an unlabeled entry."
        )
