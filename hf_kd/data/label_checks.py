"""The check of an encoded label column against a model, in Arrow: [`check_label_column`] is run by
[`DistillationTrainer`] on the `labels` column before training. The checks of raw label values (missing values, free
text, kinds) are in `hf_kd.data.labels`, beside the encoding that uses them, and still import from here. Nothing here
builds a Python list of a column, and no message shows a label value that might be patient text.
"""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..constants import IGNORE_INDEX, LABELS_COLUMN, MULTI_LABEL, REGRESSION, SINGLE_LABEL
from .labels import (
    FREE_TEXT_MAX_CHARS,
    FREE_TEXT_MAX_DISTINCT,
    first_non_integer,
    first_true,
    is_list_type,
    missing_label_row,
    refuse_free_text,
    scalar_kind,
)
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
