"""Unlabeled text: the rows of a transfer set (the teacher's logits and the student's distillation term only), read
from files or with their labels hidden."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasets import Dataset, Features, Value, concatenate_datasets

from ..constants import IGNORE_INDEX, LABELS_COLUMN
from .loading import load_data_files, require_text_column
from .mapped import release_pages_of

__all__ = ["UNLABELED_SPLIT", "hide_labels", "unlabeled_rows"]

UNLABELED_SPLIT = "unlabeled"
"""The split of unlabeled rows (`data.unlabeled_files`, a corpus' own unlabeled text)."""


def unlabeled_rows(
    files: Sequence[str], text_column: str, teacher_text_column: str | None = None, cache_dir: str | None = None
) -> Any:
    """
    The text columns of unlabeled files, one dataset (any other column, a label column among them, is left out).

    Args:
        files (`Sequence[str]`):
            CSV/TSV/JSON(L)/Parquet files.
        text_column (`str`):
            The column the student reads; every file must have it, without a missing value.
        teacher_text_column (`str`, *optional*):
            The column the teacher reads, checked likewise.
        cache_dir (`str`, *optional*):
            Where `datasets` keeps its cache files of the data.

    Returns:
        `datasets.Dataset`: The rows of every file, in order, with the text column(s) only.

    Raises:
        `ValueError`: Naming the file and the column when a file lacks a text column or a row lacks its text.
    """

    columns = [text_column] + ([teacher_text_column] if teacher_text_column not in (None, text_column) else [])
    parts = []
    for path in files:
        dataset = load_data_files({UNLABELED_SPLIT: path}, cache_dir=cache_dir)[UNLABELED_SPLIT]
        for column in columns:
            require_text_column(dataset, column, f"{UNLABELED_SPLIT} ({path})")
        parts.append(dataset.select_columns(columns))
    return concatenate_datasets(parts)


def hide_labels(dataset: Any, feature: Any, num_labels: int) -> Any:
    """
    `dataset` with a `labels` column of `-100` (an unlabeled row for the trainer: distillation term only).

    Args:
        dataset (`datasets.Dataset`):
            Rows whose labels are unknown or to be hidden (an existing `labels` column is replaced).
        feature (`datasets.Value` or `datasets.List`):
            The `labels` feature of the labelled splits (a scalar id, or a multi-hot vector).
        num_labels (`int`):
            The number of labels (the width of a multi-hot vector).

    Returns:
        `datasets.Dataset`: The rows, with their labels hidden.
    """
    if LABELS_COLUMN in dataset.column_names:
        dataset = dataset.remove_columns(LABELS_COLUMN)
    if len(dataset) == 0:  # `map` over no rows writes no column: an empty dataset with every column instead
        features = Features({**dataset.features, LABELS_COLUMN: feature})
        return Dataset.from_dict({name: [] for name in features}, features=features)
    if isinstance(feature, Value):
        value: Any = IGNORE_INDEX if feature.dtype.startswith("int") else float(IGNORE_INDEX)
    else:
        value = [float(IGNORE_INDEX)] * num_labels
    # The labels alone, written beside the data's own cache files (not held in memory as `add_column` would), then
    # joined column-wise: the text stays in its file, neither copied nor read. Record batches of 10k rows, so that
    # loading the file touches a small part of it, and whatever loading mapped in is released.
    labels = dataset.map(
        lambda indices: {LABELS_COLUMN: [value] * len(indices)},
        with_indices=True,
        input_columns=[],
        batched=True,
        batch_size=10_000,
        remove_columns=dataset.column_names,
        features=Features({LABELS_COLUMN: feature}),
        writer_batch_size=10_000,
        desc="Hiding labels",
    )
    release_pages_of([labels])
    return concatenate_datasets([dataset, labels], axis=1)
