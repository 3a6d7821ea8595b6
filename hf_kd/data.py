"""Loading, tokenizing and collating text-classification data for knowledge distillation.

Column convention
-----------------
Every dataset this module produces, and every batch the collator returns, follows one naming scheme:

- `input_ids`, `attention_mask` (and `token_type_ids`): the student's inputs.
- `teacher_input_ids`, `teacher_attention_mask` (and `teacher_token_type_ids`): the teacher's inputs. They are only
  present when the teacher cannot share the student's inputs (different tokenization, different text column, or a
  different maximum length); otherwise the teacher reads the student's columns.
- `teacher_logits`: precomputed teacher outputs (a list of floats per example) that replace the teacher model.
- `word_ids` / `teacher_word_ids`: the canonical word index of every token (`-1` for special tokens, padding and words
  cut by truncation, see `hf_kd.alignment`). Present only when the two tokenizers differ and both read the same text;
  used to align hidden states word by word.
- `labels`: an `int` per example for single-label classification (`-100` = unlabeled), a multi-hot list of floats for
  multi-label classification (all `-100` = unlabeled), or a `float` for regression.

Text columns must be removed before collation (`tokenize_for_distillation(..., remove_text=True)` or
`Dataset.remove_columns`): the collator refuses string columns rather than silently dropping them.

Privacy: error messages and logs name columns, splits, row indices and label values, never the text of an example.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import pyarrow.compute as pc
import torch
from datasets import Dataset, DatasetDict, load_dataset
from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

__all__ = [
    "DistillationDataCollator",
    "IGNORE_INDEX",
    "load_classification_dataset",
    "load_codiesp",
    "load_hoc",
    "same_tokenization",
    "tokenize_for_distillation",
]

IGNORE_INDEX = -100
"""Label value of unlabeled examples (every entry of the multi-hot vector for multi-label data)."""

PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")

# Extension -> (datasets packaged builder, builder kwargs). CSV/TSV are read with `keep_default_na=False` so that a
# text such as "NA" or "null" stays text and an empty cell stays an empty string (caught below as a missing label)
# rather than becoming a NaN. TSV has no quoting (one record per line, no tab inside a field): with pandas' default
# quoting a field that starts with `"` would swallow the following lines, which happens in the HoC files.
_FILE_BUILDERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {"keep_default_na": False}),
    ".tsv": ("csv", {"sep": "\t", "quoting": csv.QUOTE_NONE, "keep_default_na": False}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}

_MAX_NAMES_SHOWN = 20
_MAX_LABEL_CHARS = 60
# Tokenizers without a real limit report a huge sentinel `model_max_length`; below this we truncate to it.
_MAX_REAL_MODEL_LENGTH = 1_000_000
_SEQUENCE_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask", "word_ids")


# ---------------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------------


def _label_repr(label: Any) -> str:
    """`repr` of a label value for messages, cut short (labels are category names, but stay bounded anyway)."""
    text = repr(label)
    return text if len(text) <= _MAX_LABEL_CHARS else text[: _MAX_LABEL_CHARS - 3] + "..."


def _shown(names: Sequence[Any]) -> str:
    """A bounded, printable list of label names for error messages."""
    names = list(names)
    shown = ", ".join(_label_repr(n) for n in names[:_MAX_NAMES_SHOWN])
    return f"[{shown}]" if len(names) <= _MAX_NAMES_SHOWN else f"[{shown}, ... ({len(names)} in all)]"


def _builder_for(path: Path) -> tuple[str, dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix not in _FILE_BUILDERS:
        raise ValueError(
            f"Unsupported file extension {path.suffix!r} for {str(path)!r}: expected one of {sorted(_FILE_BUILDERS)}."
        )
    return _FILE_BUILDERS[suffix]


def _load_split_files(split: str, paths: Sequence[str | os.PathLike]) -> Dataset:
    """Load the files of one split with the `datasets` packaged loader matching their extension."""
    files = [Path(p) for p in paths]
    if not files:
        raise ValueError(f"Split '{split}' has no data files.")
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"Data file of split '{split}' not found: {str(path)!r}.")
    builders = {_builder_for(path)[0] + repr(sorted(_builder_for(path)[1].items())) for path in files}
    if len(builders) > 1:
        raise ValueError(
            f"Split '{split}' mixes file types ({sorted({p.suffix for p in files})}); use one format per split."
        )
    builder, kwargs = _builder_for(files[0])
    try:
        return load_dataset(builder, data_files={split: [str(p) for p in files]}, split=split, **kwargs)
    except ValueError as error:
        # `datasets` refuses to build a split without rows ('Instruction "x" corresponds to no data!').
        if "corresponds to no data" in str(error):
            raise ValueError(f"Split '{split}' is empty.") from None
        raise


def _load_raw(source: Any, splits: Sequence[str] | None) -> DatasetDict:
    """Load `source` (a split -> file(s) mapping, a directory, a single file or a Hub id) as a `DatasetDict`."""
    if isinstance(source, Mapping):
        loaded = {}
        for split, paths in source.items():
            paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
            loaded[str(split)] = _load_split_files(str(split), paths)
        raw = DatasetDict(loaded)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            # Split names come from `datasets`' own file-name patterns (train/validation(dev)/test...).
            from datasets.data_files import DataFilesDict, get_data_patterns

            patterns = get_data_patterns(str(path))
            data_files = DataFilesDict.from_patterns(patterns, base_path=str(path))
            files = {
                str(split): [f for f in found if Path(f).suffix.lower() in _FILE_BUILDERS]
                for split, found in data_files.items()
            }
            files = {split: found for split, found in files.items() if found}
            if not files:
                raise ValueError(f"No {sorted(_FILE_BUILDERS)} data files found in directory {str(path)!r}.")
            raw = DatasetDict({split: _load_split_files(split, found) for split, found in files.items()})
        elif path.is_file():
            raw = DatasetDict({"train": _load_split_files("train", [path])})
        elif path.suffix.lower() in _FILE_BUILDERS or path.is_absolute() or str(source).startswith("."):
            raise FileNotFoundError(f"No such file or directory: {str(source)!r}.")
        else:
            raw = load_dataset(str(source))
            if not isinstance(raw, DatasetDict):
                raise ValueError(f"Expected a dataset with splits from {str(source)!r}, got {type(raw).__name__}.")
    else:
        raise ValueError(
            f"`source` must be a Hub id, a directory, a file path or a mapping split -> file path, got "
            f"{type(source).__name__}."
        )
    if splits is not None:
        missing = [s for s in splits if s not in raw]
        if missing:
            raise ValueError(f"Split(s) {missing} not found; available splits: {list(raw)}.")
        raw = DatasetDict({s: raw[s] for s in splits})
    if not raw:
        raise ValueError("The dataset has no splits.")
    for split, ds in raw.items():
        if len(ds) == 0:
            raise ValueError(f"Split '{split}' is empty.")
    return raw


def _check_column(dataset: Dataset, column: str, split: str) -> None:
    if column not in dataset.column_names:
        raise ValueError(f"Column '{column}' not found in split '{split}'. Available columns: {dataset.column_names}.")


def _check_text_column(dataset: Dataset, column: str, split: str) -> None:
    """Check that `column` exists, holds strings and has no missing value (by Arrow type and null count)."""
    _check_column(dataset, column, split)
    feature = dataset.features[column]
    if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
        raise ValueError(f"Text column '{column}' of split '{split}' must hold strings, found {feature}.")
    table = dataset.with_format("arrow")[column]
    if table.null_count:
        row = pc.index(pc.is_null(table), True).as_py()
        raise ValueError(f"Missing text in column '{column}' of split '{split}' at row {row}.")


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_int(value: Any) -> bool:
    return isinstance(value, int)  # bool is an int


def _scalar_type(value: Any) -> str:
    if isinstance(value, str):
        return "str"
    if _is_int(value):
        return "int"
    if isinstance(value, float):
        return "float"
    raise ValueError(f"unsupported label type {type(value).__name__}")


def _label_kind(
    values: Mapping[str, list[Any]], column: str, label_delimiter: str | None, label_names: Sequence[str] | None
) -> str:
    """Classify the raw label values: names, delimited, ids, float, multi_names, multi_ids or multi_hot."""
    outer: set[str] = set()
    inner: set[str] = set()
    lengths: set[int] = set()
    binary = True
    for split, rows in values.items():
        for row, value in enumerate(rows):
            if isinstance(value, list | tuple):
                outer.add("list")
                lengths.add(len(value))
                try:
                    inner.update(_scalar_type(v) for v in value)
                except ValueError as err:
                    raise ValueError(f"Label column '{column}' of split '{split}', row {row}: {err}.") from None
                if not (all(v in (0, 1) for v in value) or all(v == IGNORE_INDEX for v in value)):
                    binary = False
            else:
                try:
                    outer.add(_scalar_type(value))
                except ValueError as err:
                    raise ValueError(f"Label column '{column}' of split '{split}', row {row}: {err}.") from None
    if "list" in outer:
        if len(outer) > 1:
            raise ValueError(f"Label column '{column}' mixes lists and scalars.")
        if "str" in inner:
            if len(inner) > 1:
                raise ValueError(f"Label column '{column}' mixes label names and numbers inside its lists.")
            return "multi_names"
        if "float" in inner:
            return "multi_hot"
        if not inner:  # only empty lists
            return "multi_ids"
        constant = len(lengths) == 1 and next(iter(lengths)) >= 2
        if constant and binary and (label_names is None or len(label_names) == next(iter(lengths))):
            return "multi_hot"
        return "multi_ids"
    if outer == {"str"}:
        return "delimited" if label_delimiter is not None else "names"
    if "str" in outer:
        raise ValueError(f"Label column '{column}' mixes label names and numbers.")
    if outer == {"int"}:
        return "ids"
    all_integral = all(float(v).is_integer() for rows in values.values() for v in rows)
    return "ids" if all_integral else "float"


def _first_non_integer(values: Mapping[str, list[Any]]) -> tuple[str, int, Any]:
    for split, rows in values.items():
        for row, value in enumerate(rows):
            if not float(value).is_integer():
                return split, row, value
    raise AssertionError("unreachable")


def _train_rows(values: Mapping[str, list[Any]], column: str, what: str) -> list[Any]:
    if "train" not in values:
        raise ValueError(
            f"Cannot collect the {what} of column '{column}': there is no 'train' split. Pass `label_names`."
        )
    return values["train"]


def _vocabulary(
    values: Mapping[str, list[list[Any]]],
    column: str,
    label_names: Sequence[Any] | None,
    default_order: Sequence[Any] | None = None,
) -> list[Any]:
    """Label vocabulary: `label_names`, else `default_order`, else the sorted labels of the train split."""
    if label_names is not None:
        return list(label_names)
    if default_order is not None:
        return list(default_order)
    seen = {label for labels in _train_rows(values, column, "label names") for label in labels if label is not None}
    try:
        vocabulary = sorted(seen)
    except TypeError:
        raise ValueError(f"Labels of column '{column}' cannot be sorted (mixed types).") from None
    if not vocabulary:
        raise ValueError(f"The 'train' split has no label in column '{column}'.")
    return vocabulary


def _multi_hot(
    values: dict[str, list[Any]], width: int, position: Callable[[Any, str, int], int]
) -> dict[str, list[list[float]]]:
    """Multi-hot vectors per split; a missing row (`None`) becomes all `IGNORE_INDEX` (unlabeled)."""
    encoded: dict[str, list[list[float]]] = {}
    for split, rows in values.items():
        out = []
        for row, value in enumerate(rows):
            if value is None:
                out.append([float(IGNORE_INDEX)] * width)
                continue
            vector = [0.0] * width
            for v in value:
                vector[position(v, split, row)] = 1.0
            out.append(vector)
        encoded[split] = out
    return encoded


def _unknown_label(vocabulary: Sequence[Any], label: Any, split: str, row: int, column: str) -> ValueError:
    return ValueError(
        f"Unknown label {_label_repr(label)} in column '{column}' of split '{split}' (row {row}); known labels: "
        f"{_shown(vocabulary)}."
    )


def _encode_labels(
    dataset: DatasetDict,
    column: str,
    problem_type: str | None,
    label_names: Sequence[Any] | None,
    label_delimiter: str | None,
    label_format: str | None = None,
) -> tuple[dict[str, list[Any]], list[Any], str]:
    """Normalize a label column into `labels` values.

    `label_format` forces the interpretation of the raw values (`"multi_hot"`, or `"multi_values"`: lists whose items
    are label values sorted in their natural order, e.g. ICD chapter numbers); `None` infers it.

    Returns:
        The encoded values per split, the label vocabulary (names, or raw values for `"multi_values"`) and the problem
        type.
    """
    if problem_type is not None and problem_type not in PROBLEM_TYPES:
        raise ValueError(f"`problem_type` must be one of {PROBLEM_TYPES} or None, got {problem_type!r}.")
    if label_names is not None:
        label_names = list(label_names)
        duplicates = sorted({n for n in label_names if label_names.count(n) > 1}, key=str)
        if duplicates:
            raise ValueError(f"`label_names` has duplicates: {duplicates}.")

    values: dict[str, list[Any]] = {split: list(ds[column]) for split, ds in dataset.items()}
    for split, rows in values.items():
        for row, value in enumerate(rows):
            if _is_missing(value) or (isinstance(value, list | tuple) and any(_is_missing(v) for v in value)):
                raise ValueError(f"Missing label in column '{column}' of split '{split}' at row {row}.")
            if label_delimiter is None and isinstance(value, str) and not value.strip():
                raise ValueError(f"Empty label in column '{column}' of split '{split}' at row {row}.")

    # `ClassLabel` columns (Hub datasets) carry their names; -1 marks an unlabeled example there.
    feature = next(iter(dataset.values())).features[column]
    default_order: list[str] | None = None
    if isinstance(feature, datasets.ClassLabel):
        default_order = list(feature.names)
        values = {s: [None if v == -1 else feature.int2str(int(v)) for v in rows] for s, rows in values.items()}
        kind = "names"
    elif isinstance(getattr(feature, "feature", None), datasets.ClassLabel):
        inner_feature = feature.feature
        default_order = list(inner_feature.names)
        values = {s: [[inner_feature.int2str(int(v)) for v in r] for r in rows] for s, rows in values.items()}
        kind = "multi_names"
    elif label_format is not None:
        kind = label_format
    else:
        kind = _label_kind(values, column, label_delimiter, label_names)

    # Problem type.
    multi_kinds = ("multi_names", "multi_ids", "multi_hot", "delimited", "multi_values")
    if kind in multi_kinds:
        inferred = "multi_label_classification"
    elif kind == "float":
        inferred = "regression"
    else:
        inferred = "single_label_classification"
    if problem_type is None:
        problem_type = inferred
    elif problem_type != inferred:
        if inferred == "multi_label_classification":
            raise ValueError(
                f"Label column '{column}' holds label lists (multi-label), incompatible with "
                f"problem_type={problem_type!r}."
            )
        if inferred == "regression":
            split, row, value = _first_non_integer(values)
            raise ValueError(
                f"Label {value!r} in column '{column}' of split '{split}' (row {row}) is not an integer class id, "
                f"incompatible with problem_type={problem_type!r}."
            )
        if problem_type == "multi_label_classification":
            # One label per example, encoded as a one-hot vector.
            values = {s: [None if v is None or v == IGNORE_INDEX else [v] for v in rows] for s, rows in values.items()}
            kind = "multi_names" if kind == "names" else "multi_ids"
        elif kind == "names":
            raise ValueError(
                f"Label column '{column}' holds label names, incompatible with problem_type='regression'."
            )
        else:
            kind = "float"

    encoded: dict[str, list[Any]] = {}
    vocabulary: list[Any]
    if kind == "float":
        vocabulary = list(label_names) if label_names is not None else []
        encoded = {s: [float(v) for v in rows] for s, rows in values.items()}
        if problem_type == "regression" and any(v == IGNORE_INDEX for rows in encoded.values() for v in rows):
            logger.warning("Regression labels of column '%s' contain -100; it is treated as a value.", column)
        return encoded, vocabulary, problem_type

    if kind == "delimited":
        values = {
            s: [[piece.strip() for piece in v.split(label_delimiter) if piece.strip()] for v in rows]
            for s, rows in values.items()
        }
        kind = "multi_names"

    if kind == "ids":
        int_values = {s: [int(v) for v in rows] for s, rows in values.items()}
        for split, rows in int_values.items():
            for row, value in enumerate(rows):
                if value < 0 and value != IGNORE_INDEX:
                    raise ValueError(
                        f"Negative label {value} in column '{column}' of split '{split}' (row {row}); use -100 for "
                        "unlabeled examples."
                    )
        if label_names is not None:
            vocabulary = list(label_names)
        else:
            train = [v for v in _train_rows(int_values, column, "number of labels") if v != IGNORE_INDEX]
            if not train:
                raise ValueError(f"The 'train' split has no label in column '{column}'.")
            vocabulary = [str(i) for i in range(max(train) + 1)]
        for split, rows in int_values.items():
            for row, value in enumerate(rows):
                if value >= len(vocabulary):
                    raise ValueError(
                        f"Unknown label {value} in column '{column}' of split '{split}' (row {row}): ids must be "
                        f"below {len(vocabulary)}."
                    )
        return int_values, vocabulary, problem_type

    if kind == "names":
        vocabulary = _vocabulary(
            {s: [[v] for v in rows] for s, rows in values.items()}, column, label_names, default_order
        )
        index = {name: i for i, name in enumerate(vocabulary)}
        for split, rows in values.items():
            out = []
            for row, value in enumerate(rows):
                if value is None:
                    out.append(IGNORE_INDEX)
                elif value in index:
                    out.append(index[value])
                else:
                    raise _unknown_label(vocabulary, value, split, row, column)
            encoded[split] = out
        return encoded, vocabulary, problem_type

    if kind == "multi_hot":
        lengths = {len(v) for rows in values.values() for v in rows}
        if len(lengths) != 1:
            raise ValueError(f"Multi-hot labels of column '{column}' have different lengths: {sorted(lengths)}.")
        (width,) = lengths
        if label_names is not None and len(label_names) != width:
            raise ValueError(
                f"Multi-hot labels of column '{column}' have {width} entries but {len(label_names)} label names were "
                "given."
            )
        vocabulary = list(label_names) if label_names is not None else [str(i) for i in range(width)]
        for split, rows in values.items():
            out = []
            for row, value in enumerate(rows):
                if all(v == IGNORE_INDEX for v in value) and value:
                    out.append([float(IGNORE_INDEX)] * width)
                    continue
                if any(not 0 <= v <= 1 for v in value):
                    bad = next(v for v in value if not 0 <= v <= 1)
                    raise ValueError(
                        f"Multi-hot label value {bad!r} in column '{column}' of split '{split}' (row {row}) is "
                        "outside [0, 1] (an unlabeled example has all entries -100)."
                    )
                out.append([float(v) for v in value])
            encoded[split] = out
        return encoded, vocabulary, problem_type

    if kind == "multi_ids":
        for split, rows in values.items():
            for row, value in enumerate(rows):
                for v in value:
                    if not _is_int(v) and not float(v).is_integer():
                        raise ValueError(
                            f"Label id {v!r} in column '{column}' of split '{split}' (row {row}) is not an integer."
                        )
                    if v < 0:
                        raise ValueError(f"Negative label id {v} in column '{column}' of split '{split}' (row {row}).")
        values = {s: [[int(v) for v in r] for r in rows] for s, rows in values.items()}
        if label_names is not None:
            vocabulary = list(label_names)
        else:
            train = [v for r in _train_rows(values, column, "number of labels") for v in r]
            if not train:
                raise ValueError(f"The 'train' split has no label in column '{column}'.")
            vocabulary = [str(i) for i in range(max(train) + 1)]
        width = len(vocabulary)

        def position(v: int, split: str, row: int) -> int:
            if v >= width:
                raise ValueError(
                    f"Unknown label {v} in column '{column}' of split '{split}' (row {row}): ids must be below "
                    f"{width}."
                )
            return v

        return _multi_hot(values, width, position), vocabulary, problem_type

    if kind in ("multi_names", "multi_values"):
        vocabulary = _vocabulary(values, column, label_names, default_order)
        index = {name: i for i, name in enumerate(vocabulary)}

        def position(v: Any, split: str, row: int) -> int:
            if v not in index:
                raise _unknown_label(vocabulary, v, split, row, column)
            return index[v]

        return _multi_hot(values, len(vocabulary), position), vocabulary, problem_type

    raise ValueError(f"Unknown label format {kind!r}.")


def _label_feature(problem_type: str) -> Any:
    if problem_type == "multi_label_classification":
        return datasets.List(datasets.Value("float32"))
    if problem_type == "regression":
        return datasets.Value("float32")
    return datasets.Value("int64")


def _replace_labels(
    dataset: DatasetDict, column: str, encoded: Mapping[str, list[Any]], problem_type: str
) -> DatasetDict:
    """Replace `column` by a `labels` column holding `encoded`, row for row."""
    out = {}
    for split, ds in dataset.items():
        if column != "labels" and "labels" in ds.column_names:
            raise ValueError(
                f"Split '{split}' already has a 'labels' column besides the label column '{column}'; remove or rename "
                "one of them."
            )
        if len(encoded[split]) != len(ds):  # pragma: no cover - defensive
            raise AssertionError("label count mismatch")
        ds = ds.remove_columns(column)
        out[split] = ds.add_column("labels", encoded[split], feature=_label_feature(problem_type))
    return DatasetDict(out)


def _normalize(
    raw: DatasetDict,
    text_column: str | None,
    label_column: str,
    problem_type: str | None,
    label_names: Sequence[Any] | None,
    label_delimiter: str | None,
    teacher_text_column: str | None,
    label_format: str | None = None,
) -> tuple[DatasetDict, list[Any], str]:
    if label_column in (text_column, teacher_text_column):
        raise ValueError(f"The label column '{label_column}' is also a text column.")
    for split, ds in raw.items():
        for column in (text_column, teacher_text_column):
            if column is not None:
                _check_text_column(ds, column, split)
        _check_column(ds, label_column, split)
    encoded, vocabulary, problem_type = _encode_labels(
        raw, label_column, problem_type, label_names, label_delimiter, label_format
    )
    return _replace_labels(raw, label_column, encoded, problem_type), vocabulary, problem_type


def load_classification_dataset(
    source: str | os.PathLike | Mapping[str, str | os.PathLike | Sequence[str | os.PathLike]],
    text_column: str = "text",
    label_column: str = "labels",
    problem_type: str | None = None,
    label_names: Sequence[str] | None = None,
    label_delimiter: str | None = None,
    splits: Sequence[str] | None = None,
    teacher_text_column: str | None = None,
) -> tuple[DatasetDict, list[str]]:
    """Load a text-classification dataset and normalize its labels into a `labels` column.

    Files are read with the packaged `datasets` loaders chosen by extension: `.csv`, `.tsv` (tab-separated, no
    quoting), `.json`/`.jsonl` and `.parquet`. In CSV/TSV files empty cells and strings such as `"NA"` are kept as
    strings (so text is never turned into a missing value, and an empty label cell is reported as missing).

    Accepted label formats (the problem type is inferred when `problem_type` is None):

    - single-label: integer ids (`-100` = unlabeled), integral floats, or label names (strings); a `ClassLabel`
      column uses its own names (and `-1` = unlabeled);
    - multi-label: multi-hot vectors (floats in [0, 1], or 0/1 integers when every vector has the same length >= 2,
      matching `label_names` if given; all `-100` = unlabeled), lists of names, lists of integer ids, or strings
      delimited by `label_delimiter` (an empty string = no label);
    - regression: non-integral floats.

    Single-label labels become `int64` ids, multi-label labels `float32` multi-hot lists, regression targets `float32`.
    Label names are `label_names` when given, else the names of a `ClassLabel` column, else the sorted labels of the
    train split (integer ids `0..max` become `"0"`, `"1"`, ...). All other columns are kept unchanged.

    Args:
        source (`str`, `os.PathLike` or `Mapping[str, str | os.PathLike | Sequence]`):
            A mapping split name -> file path(s); a directory (split names from file names, with `datasets`'
            patterns: `dev` files become the `validation` split); a single file (loaded as the `train` split); or a
            Hugging Face Hub dataset id.
        text_column (`str`, *optional*, defaults to `"text"`):
            Column holding the text; must exist in every split and have no missing value.
        label_column (`str`, *optional*, defaults to `"labels"`):
            Column holding the labels; it is replaced by the normalized `labels` column.
        problem_type (`str`, *optional*):
            `"single_label_classification"`, `"multi_label_classification"` or `"regression"`. Inferred when None
            (list-valued or delimited labels -> multi-label; non-integral float scalars -> regression; otherwise
            single-label). Scalar labels with `"multi_label_classification"` become one-hot vectors.
        label_names (`Sequence[str]`, *optional*):
            The label names, in id order. Required when there is no train split to collect them from (except for
            multi-hot vectors).
        label_delimiter (`str`, *optional*):
            Separator of the label names in string labels, e.g. `";"` for `"fever;cough"` (multi-label).
        splits (`Sequence[str]`, *optional*):
            Splits to keep; every one must exist. All splits when None.
        teacher_text_column (`str`, *optional*):
            A second text column the teacher reads (e.g. an English machine translation); validated like
            `text_column`.

    Returns:
        `tuple[datasets.DatasetDict, list[str]]`: The dataset with its normalized `labels` column and the label names.

    Raises:
        `ValueError`: On a missing column (naming it and listing the available ones), an empty split, a missing
            label (naming column, split and row), a label of another split that is not among the label names (naming
            label and split), inconsistent label formats, or labels incompatible with `problem_type`.
        `FileNotFoundError`: If a local path does not exist.
    """
    raw = _load_raw(source, splits)
    dataset, vocabulary, _ = _normalize(
        raw, text_column, label_column, problem_type, label_names, label_delimiter, teacher_text_column
    )
    return dataset, [str(name) for name in vocabulary]


# ---------------------------------------------------------------------------------------------------------------------
# HoC and CodiEsp
# ---------------------------------------------------------------------------------------------------------------------

_HOC_SPLITS = {"train": "train", "validation": "dev", "test": "test"}
_HOC_NUM_LABELS = 10
_HOC_LABEL_RE = re.compile(r"^(\d+)_([01])$")
_HOC_INDEX_RE = re.compile(r"^([1-9]\d*)_s(\d+)$")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"File not found: {str(path)!r}.")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _hoc_label_names(data_dir: Path) -> list[str]:
    names = _read_json(data_dir / "labels.json")
    if isinstance(names, Mapping):
        names = [names[str(i)] for i in range(len(names))]
    if len(names) != _HOC_NUM_LABELS:
        raise ValueError(f"HoC labels.json must list {_HOC_NUM_LABELS} names, found {len(names)}.")
    return [str(n) for n in names]


def _parse_hoc_labels(value: str, split: str, row: int) -> list[float]:
    vector: list[float | None] = [None] * _HOC_NUM_LABELS
    for piece in value.split(","):
        match = _HOC_LABEL_RE.match(piece.strip())
        index = int(match.group(1)) if match else -1
        if not 0 <= index < _HOC_NUM_LABELS or vector[index] is not None:
            raise ValueError(
                f"Malformed HoC label in column 'labels' of split '{split}' (row {row}): expected "
                f"'0_x,1_x,...,9_x' with x in {{0, 1}}."
            )
        vector[index] = float(match.group(2))
    if any(v is None for v in vector):
        raise ValueError(
            f"Malformed HoC label in column 'labels' of split '{split}' (row {row}): expected all "
            f"{_HOC_NUM_LABELS} hallmarks."
        )
    return vector  # type: ignore[return-value]


def _parse_hoc_index(value: str, split: str, row: int) -> tuple[int, int]:
    match = _HOC_INDEX_RE.match(value)
    if not match:
        raise ValueError(
            f"Malformed HoC sentence index in column 'index' of split '{split}' (row {row}): expected '<PMID>_s<k>'."
        )
    return int(match.group(1)), int(match.group(2))


def load_hoc(
    data_dir: str | os.PathLike, level: Literal["abstract", "sentence"] = "abstract"
) -> tuple[DatasetDict, list[str]]:
    """Load the Hallmarks of Cancer corpus (BLURB split) as a 10-label multi-label dataset.

    Splits are `train`, `validation` (BLURB `dev`) and `test`. Columns:

    - `level="sentence"` (`blurb_split/{split}.tsv`, one row per sentence, file order kept): `text` (the sentence),
      `labels` (10-dim `float32` multi-hot, parsed from `0_x,1_x,...,9_x`), `group` (the PMID as `int64`, parsed from
      `index` = `<PMID>_s<k>`) and `sentence_index` (`k`). BLURB evaluates per abstract: take the union of the
      sentence predictions of each `group`.
    - `level="abstract"` (`abstract_level_{split}.jsonl`): `text` (the abstract), `labels` (10-dim multi-hot, the union
      of its sentence labels) and `group` (the PMID as `int64`). The derived fields `label_names`, `sentence_labels`
      and `n_sentences` of the files are not loaded.

    Args:
        data_dir (`str` or `os.PathLike`):
            The HoC directory (holding `labels.json`, `blurb_split/` and `abstract_level_*.jsonl`).
        level (`str`, *optional*, defaults to `"abstract"`):
            `"abstract"` or `"sentence"`.

    Returns:
        `tuple[datasets.DatasetDict, list[str]]`: The dataset and the 10 hallmark names from `labels.json`.

    Raises:
        `ValueError`: On an unknown `level`, a malformed label string or sentence index (naming split and row), or
            an empty split.
        `FileNotFoundError`: If a file is missing.
    """
    data_dir = Path(data_dir)
    names = _hoc_label_names(data_dir)
    if level == "sentence":
        raw = _load_raw({split: data_dir / "blurb_split" / f"{name}.tsv" for split, name in _HOC_SPLITS.items()}, None)
        out = {}
        for split, ds in raw.items():
            for column in ("labels", "index"):
                _check_column(ds, column, split)
            _check_text_column(ds, "sentence", split)
            label_strings = list(ds["labels"])
            indices = list(ds["index"])
            vectors = [_parse_hoc_labels(v, split, row) for row, v in enumerate(label_strings)]
            parsed = [_parse_hoc_index(v, split, row) for row, v in enumerate(indices)]
            ds = ds.remove_columns(["labels", "index"]).rename_column("sentence", "text")
            ds = ds.add_column("labels", vectors, feature=_label_feature("multi_label_classification"))
            ds = ds.add_column("group", [g for g, _ in parsed], feature=datasets.Value("int64"))
            out[split] = ds.add_column("sentence_index", [k for _, k in parsed], feature=datasets.Value("int64"))
        return DatasetDict(out), names
    if level == "abstract":
        files = {split: data_dir / f"abstract_level_{name}.jsonl" for split, name in _HOC_SPLITS.items()}
        raw = _load_raw(files, None)
        for split, ds in raw.items():
            for column in ("text", "labels", "pmid"):
                _check_column(ds, column, split)
        raw = DatasetDict({split: ds.select_columns(["text", "labels", "pmid"]) for split, ds in raw.items()})
        dataset, _, _ = _normalize(
            raw, "text", "labels", "multi_label_classification", names, None, None, label_format="multi_hot"
        )
        out = {}
        for split, ds in dataset.items():
            pmids = list(ds["pmid"])
            groups = []
            for row, pmid in enumerate(pmids):
                if _is_missing(pmid) or not re.fullmatch(r"[1-9]\d*", str(pmid)):
                    raise ValueError(f"Malformed PMID in column 'pmid' of split '{split}' (row {row}).")
                groups.append(int(pmid))
            ds = ds.remove_columns("pmid")
            out[split] = ds.add_column("group", groups, feature=datasets.Value("int64"))
        return DatasetDict(out), names
    raise ValueError(f"`level` must be 'abstract' or 'sentence', got {level!r}.")


_CODIESP_SPLITS = {"train": "train", "validation": "dev", "test": "test"}
_CODIESP_TEXT_COLUMNS = ("text_es", "text_en_mt")


def load_codiesp(
    data_dir: str | os.PathLike, level: Literal["chapter"] = "chapter", include_unlabeled: bool = False
) -> tuple[DatasetDict, list[str]]:
    """Load CodiEsp (CLEF eHealth 2020, Spanish clinical cases) as multi-label ICD-10-CM chapter classification.

    Splits are `train`, `validation` (CodiEsp `dev`) and `test`, plus `unlabeled` (the 2,751 background cases of
    `codiesp_background_unlabeled.jsonl`, labels all `-100`) when `include_unlabeled=True`. Columns: `id`, `text_es`
    (Spanish original), `text_en_mt` (English machine translation) and `labels`, a `float32` multi-hot vector over the
    chapters that occur in the train split, in chapter order. The code columns of the files (`icd10_diagnosis`,
    `icd10_procedure`, `diag_cat3`, `diag_chapters`) are not kept. Remove `id` and the text columns before collation.

    Args:
        data_dir (`str` or `os.PathLike`):
            The CodiEsp directory (holding `codiesp_{train,dev,test}.jsonl`, `icd10cm_chapters.json` and, for
            `include_unlabeled`, `codiesp_background_unlabeled.jsonl`).
        level (`str`, *optional*, defaults to `"chapter"`):
            Label granularity; only `"chapter"` (ICD-10-CM chapters, from `diag_chapters`) is supported: finer levels
            have codes in the dev/test splits that never occur in train.
        include_unlabeled (`bool`, *optional*, defaults to `False`):
            Whether to add the `unlabeled` split.

    Returns:
        `tuple[datasets.DatasetDict, list[str]]`: The dataset and the chapter names (from `icd10cm_chapters.json`).

    Raises:
        `ValueError`: On an unsupported `level`, a missing column or label, or a chapter of the validation/test
            split that does not occur in train (naming chapter and split).
        `FileNotFoundError`: If a file is missing.
    """
    if level != "chapter":
        raise ValueError(f"`level` must be 'chapter', got {level!r}.")
    data_dir = Path(data_dir)
    chapter_names = _read_json(data_dir / "icd10cm_chapters.json")
    raw = _load_raw({split: data_dir / f"codiesp_{name}.jsonl" for split, name in _CODIESP_SPLITS.items()}, None)
    for split, ds in raw.items():
        for column in _CODIESP_TEXT_COLUMNS:
            _check_text_column(ds, column, split)
        _check_column(ds, "id", split)
        _check_column(ds, "diag_chapters", split)
    raw = DatasetDict({s: ds.select_columns(["id", *_CODIESP_TEXT_COLUMNS, "diag_chapters"]) for s, ds in raw.items()})
    dataset, chapters, _ = _normalize(
        raw, None, "diag_chapters", "multi_label_classification", None, None, None, label_format="multi_values"
    )
    names = []
    for chapter in chapters:
        if str(chapter) not in chapter_names:
            raise ValueError(f"Chapter {chapter!r} is not in icd10cm_chapters.json.")
        names.append(str(chapter_names[str(chapter)]))
    if include_unlabeled:
        unlabeled = _load_raw({"unlabeled": data_dir / "codiesp_background_unlabeled.jsonl"}, None)["unlabeled"]
        for column in _CODIESP_TEXT_COLUMNS:
            _check_text_column(unlabeled, column, "unlabeled")
        _check_column(unlabeled, "id", "unlabeled")
        unlabeled = unlabeled.select_columns(["id", *_CODIESP_TEXT_COLUMNS])
        unlabeled = unlabeled.add_column(
            "labels",
            [[float(IGNORE_INDEX)] * len(names)] * len(unlabeled),
            feature=_label_feature("multi_label_classification"),
        )
        dataset["unlabeled"] = unlabeled
    return dataset, names


# ---------------------------------------------------------------------------------------------------------------------
# Tokenization
# ---------------------------------------------------------------------------------------------------------------------

_ENCODING_SETTINGS = (
    "do_lower_case",
    "do_basic_tokenize",
    "never_split",
    "strip_accents",
    "tokenize_chinese_chars",
    "add_prefix_space",
    "add_bos_token",
    "add_eos_token",
    "truncation_side",
)


def _backend_state(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """The backend tokenizer's JSON minus the run-time truncation/padding settings and the decoder."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    for key in ("truncation", "padding", "decoder"):
        state.pop(key, None)
    return state


def same_tokenization(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase) -> bool:
    """Whether two tokenizers turn any text into the same token ids.

    True when both have the same class, the same vocabulary (`get_vocab()`), the same special and added tokens, the
    same truncation side and the same normalization: for fast tokenizers the whole backend pipeline (normalizer,
    pre-tokenizer, model, post-processor, added tokens) must be identical; for slow ones the settings that change
    encoding (`do_lower_case`, `strip_accents`, ...) must be equal. The comparison is conservative: False means "not
    provably identical", in which case the teacher gets its own input columns.

    Args:
        a (`PreTrainedTokenizerBase`):
            The first tokenizer.
        b (`PreTrainedTokenizerBase`):
            The second tokenizer.

    Returns:
        `bool`: Whether the tokenizations are identical.
    """
    if a is b:
        return True
    if type(a) is not type(b) or bool(getattr(a, "is_fast", False)) != bool(getattr(b, "is_fast", False)):
        return False
    if a.get_vocab() != b.get_vocab():
        return False
    if str(a.special_tokens_map) != str(b.special_tokens_map):
        return False
    for name in _ENCODING_SETTINGS:
        if getattr(a, name, None) != getattr(b, name, None):
            return False
    if getattr(a, "is_fast", False):
        return _backend_state(a) == _backend_state(b)
    return str(a.added_tokens_decoder) == str(b.added_tokens_decoder)


def _truncation_length(tokenizer: PreTrainedTokenizerBase, max_length: int | None) -> int | None:
    """The length sequences are truncated to: `max_length`, else the tokenizer's real limit, else None."""
    if max_length is not None:
        if max_length < 1:
            raise ValueError(f"Maximum lengths must be positive, got {max_length}.")
        return int(max_length)
    model_max_length = getattr(tokenizer, "model_max_length", None)
    if model_max_length is not None and model_max_length <= _MAX_REAL_MODEL_LENGTH:
        return int(model_max_length)
    return None


def _tokenizer_name(tokenizer: PreTrainedTokenizerBase) -> str:
    name = getattr(tokenizer, "name_or_path", "") or ""
    return f"{type(tokenizer).__name__}({name!r})" if name else type(tokenizer).__name__


def _encode(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int | None, with_word_ids: bool
) -> dict[str, list[list[int]]]:
    encoding = tokenizer(
        texts,
        truncation=max_length is not None,
        max_length=max_length,
        return_offsets_mapping=with_word_ids,
    )
    out = {key: encoding[key] for key in encoding if key != "offset_mapping"}
    if with_word_ids:
        from .alignment import word_ids_for_encoding

        out["word_ids"] = word_ids_for_encoding(texts, encoding)
    return out


def _tokenize_batch(
    batch: dict[str, list[Any]],
    tokenizer: PreTrainedTokenizerBase,
    teacher_tokenizer: PreTrainedTokenizerBase | None,
    text_column: str,
    teacher_text_column: str,
    max_length: int | None,
    teacher_max_length: int | None,
    with_word_ids: bool,
) -> dict[str, list[Any]]:
    out = _encode(tokenizer, batch[text_column], max_length, with_word_ids)
    if teacher_tokenizer is not None:
        teacher = _encode(teacher_tokenizer, batch[teacher_text_column], teacher_max_length, with_word_ids)
        out.update({f"teacher_{key}": value for key, value in teacher.items()})
    return out


def tokenize_for_distillation(
    dataset: Dataset | DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    teacher_tokenizer: PreTrainedTokenizerBase | None = None,
    text_column: str = "text",
    teacher_text_column: str | None = None,
    max_length: int | None = None,
    teacher_max_length: int | None = None,
    word_alignment: bool | Literal["auto"] = "auto",
    num_proc: int | None = None,
    remove_text: bool = False,
) -> Dataset | DatasetDict:
    """Tokenize a dataset for the student and, when needed, for the teacher (batched `map`, no padding).

    The student columns (`input_ids`, `attention_mask`, `token_type_ids` when the tokenizer makes them) are always
    added. The teacher shares them when `teacher_tokenizer` is None or `same_tokenization(tokenizer,
    teacher_tokenizer)`, it reads `text_column`, and its truncation length is the student's. Otherwise `teacher_*`
    columns are added. When the two tokenizers differ and both read the same column, `word_ids` and
    `teacher_word_ids` (see `hf_kd.alignment`) are added too, according to `word_alignment`.

    Sequences are truncated to `max_length` (resp. `teacher_max_length`), or to the tokenizer's `model_max_length`
    when that is a real limit. Label and other columns are kept.

    Args:
        dataset (`datasets.Dataset` or `datasets.DatasetDict`):
            The data, with a text column.
        tokenizer (`PreTrainedTokenizerBase`):
            The student's tokenizer.
        teacher_tokenizer (`PreTrainedTokenizerBase`, *optional*):
            The teacher's tokenizer; None means the student's.
        text_column (`str`, *optional*, defaults to `"text"`):
            Column the student reads.
        teacher_text_column (`str`, *optional*):
            Column the teacher reads (e.g. an English machine translation); defaults to `text_column`.
        max_length (`int`, *optional*):
            Student truncation length.
        teacher_max_length (`int`, *optional*):
            Teacher truncation length; defaults to `max_length`.
        word_alignment (`bool` or `"auto"`, *optional*, defaults to `"auto"`):
            Whether to add `word_ids`/`teacher_word_ids` when the tokenizers differ on the same text. `"auto"` adds
            them when both tokenizers are fast (and logs a warning otherwise); `True` requires fast tokenizers;
            `False` never adds them.
        num_proc (`int`, *optional*):
            Number of processes for `Dataset.map`.
        remove_text (`bool`, *optional*, defaults to `False`):
            Whether to remove the text column(s) read by the tokenizers. They must be removed before collation; the
            default keeps them so that nothing is dropped without being asked.

    Returns:
        `datasets.Dataset` or `datasets.DatasetDict`: The tokenized data, of the same type as `dataset`.

    Raises:
        `ValueError`: If a text column is missing (naming it) or has missing values, a produced column already
            exists, `word_alignment=True` with a slow tokenizer, or an invalid `word_alignment`.
    """
    if word_alignment not in ("auto", True, False):
        raise ValueError(f"`word_alignment` must be 'auto', True or False, got {word_alignment!r}.")
    teacher_text_column = teacher_text_column or text_column
    same_text = teacher_text_column == text_column
    same_tokens = teacher_tokenizer is None or same_tokenization(tokenizer, teacher_tokenizer)
    teacher = teacher_tokenizer if teacher_tokenizer is not None else tokenizer
    student_length = _truncation_length(tokenizer, max_length)
    teacher_length = _truncation_length(teacher, teacher_max_length if teacher_max_length is not None else max_length)
    separate_teacher = not (same_text and same_tokens and student_length == teacher_length)

    with_word_ids = False
    if separate_teacher and same_text and not same_tokens and word_alignment is not False:
        slow = [t for t in (tokenizer, teacher) if not getattr(t, "is_fast", False)]
        if not slow:
            with_word_ids = True
        elif word_alignment is True:
            raise ValueError(
                f"word_alignment=True needs fast tokenizers (character offsets); {_tokenizer_name(slow[0])} is slow."
            )
        else:
            logger.warning(
                "Tokenizers differ but %s is slow: no word_ids/teacher_word_ids are added, so hidden states cannot "
                "be aligned word by word.",
                _tokenizer_name(slow[0]),
            )

    splits = dataset.items() if isinstance(dataset, DatasetDict) else [("<dataset>", dataset)]
    produced = ["input_ids", "attention_mask", "token_type_ids"] + (["word_ids"] if with_word_ids else [])
    if separate_teacher:
        produced += [f"teacher_{c}" for c in produced]
    for split, ds in splits:
        _check_text_column(ds, text_column, split)
        if not same_text:
            _check_text_column(ds, teacher_text_column, split)
        clashes = [c for c in produced if c in ds.column_names]
        if clashes:
            raise ValueError(f"Split '{split}' already has column(s) {clashes}; remove them before tokenizing again.")

    remove_columns = sorted({text_column, teacher_text_column}) if remove_text else None
    return dataset.map(
        _tokenize_batch,
        batched=True,
        remove_columns=remove_columns,
        num_proc=num_proc,
        fn_kwargs={
            "tokenizer": tokenizer,
            "teacher_tokenizer": teacher if separate_teacher else None,
            "text_column": text_column,
            "teacher_text_column": teacher_text_column,
            "max_length": student_length,
            "teacher_max_length": teacher_length,
            "with_word_ids": with_word_ids,
        },
        desc="Tokenizing",
    )


# ---------------------------------------------------------------------------------------------------------------------
# Collation
# ---------------------------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Tensors and arrays to Python values."""
    return value.tolist() if hasattr(value, "tolist") else value


@dataclass
class DistillationDataCollator:
    """Collate examples for distillation, padding the student's and the teacher's inputs separately.

    Each side is padded to its own longest sequence in the batch (rounded up to `pad_to_multiple_of`), on its
    tokenizer's `padding_side`: `input_ids` with the tokenizer's `pad_token_id`, `attention_mask` with 0 (created when
    absent), `token_type_ids` with the tokenizer's `pad_token_type_id`, `special_tokens_mask` with 1 and `word_ids`
    with -1; the `teacher_*` columns likewise with the teacher's tokenizer. `labels` become `int64` (integer labels) or
    `float32` (multi-hot lists, regression targets), `teacher_logits` `float32`; any other numeric column is stacked
    as a tensor. A string column (text, ids) raises a `ValueError` naming it: remove it before collation.

    Args:
        tokenizer (`PreTrainedTokenizerBase`):
            The student's tokenizer (pad token and padding side).
        teacher_tokenizer (`PreTrainedTokenizerBase`, *optional*):
            The teacher's tokenizer. Needed for `teacher_*` columns whose lengths differ within a batch; without it
            they are stacked as they are (and `pad_to_multiple_of` does not apply to them).
        pad_to_multiple_of (`int`, *optional*):
            Round padded lengths up to a multiple of this (e.g. 8 for tensor cores).
    """

    tokenizer: PreTrainedTokenizerBase
    teacher_tokenizer: PreTrainedTokenizerBase | None = None
    pad_to_multiple_of: int | None = None

    def __post_init__(self) -> None:
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ValueError(f"`pad_to_multiple_of` must be a positive integer, got {self.pad_to_multiple_of}.")

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Collate a list of examples into a batch of tensors.

        Args:
            features (`Sequence[Mapping[str, Any]]`):
                The examples, all with the same columns.

        Returns:
            `dict[str, torch.Tensor]`: The batch.
        """
        if not features:
            raise ValueError("Cannot collate an empty list of examples.")
        keys = list(features[0].keys())
        for position, feature in enumerate(features):
            if set(feature.keys()) != set(keys):
                missing = sorted(set(keys) ^ set(feature.keys()))
                raise ValueError(f"Example {position} of the batch differs in column(s) {missing} from example 0.")
        columns = {key: [_plain(f[key]) for f in features] for key in keys}
        for key, values in columns.items():
            for position, value in enumerate(values):
                if isinstance(value, str | bytes):
                    raise ValueError(
                        f"Column '{key}' holds strings and cannot be collated; remove it (e.g. "
                        "`dataset.remove_columns`) before collation."
                    )
                if value is None:
                    raise ValueError(f"Column '{key}' has a missing value at position {position} of the batch.")

        batch: dict[str, torch.Tensor] = {}
        batch.update(self._pad_side(columns, "", self.tokenizer, "tokenizer"))
        batch.update(self._pad_side(columns, "teacher_", self.teacher_tokenizer, "teacher_tokenizer"))
        for key, values in columns.items():
            if key in batch:
                continue
            if key == "labels":
                if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                    batch[key] = torch.tensor(values, dtype=torch.long)
                else:
                    batch[key] = self._stack(key, values, torch.float32)
            elif key == "teacher_logits":
                batch[key] = self._stack(key, values, torch.float32)
            else:
                batch[key] = self._stack(key, values, None)
        return batch

    @staticmethod
    def _stack(key: str, values: list[Any], dtype: torch.dtype | None) -> torch.Tensor:
        try:
            tensor = torch.tensor(values, dtype=dtype)
        except (ValueError, TypeError, RuntimeError):
            raise ValueError(
                f"Column '{key}' cannot be stacked into a tensor (ragged lists or non-numeric values); pad or remove "
                "it before collation."
            ) from None
        if dtype is None and tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
        return tensor

    def _pad_side(
        self,
        columns: dict[str, list[Any]],
        prefix: str,
        tokenizer: PreTrainedTokenizerBase | None,
        tokenizer_field: str,
    ) -> dict[str, torch.Tensor]:
        """Pad the sequence columns of one side (`prefix` "" for the student, "teacher_" for the teacher)."""
        present = [prefix + name for name in _SEQUENCE_COLUMNS if prefix + name in columns]
        ids_key = prefix + "input_ids"
        if not present:
            return {}
        if ids_key not in columns:
            raise ValueError(f"Column(s) {present} are present without '{ids_key}'.")
        lengths = [len(ids) for ids in columns[ids_key]]
        for key in present:
            for position, (value, length) in enumerate(zip(columns[key], lengths)):
                if not isinstance(value, list) or len(value) != length:
                    raise ValueError(
                        f"Column '{key}' at position {position} of the batch does not have the length of '{ids_key}'."
                    )
        target = max(lengths)
        if tokenizer is None:
            if len(set(lengths)) > 1:
                raise ValueError(
                    f"Column '{ids_key}' has sequences of different lengths in this batch and no `{tokenizer_field}` "
                    f"was given to pad them: pass DistillationDataCollator({tokenizer_field}=...)."
                )
            pad_values: dict[str, int] = {}
            side = "right"
        else:
            if tokenizer.pad_token_id is None:
                raise ValueError(
                    f"The `{tokenizer_field}` {_tokenizer_name(tokenizer)} has no pad token; set `pad_token` first."
                )
            if self.pad_to_multiple_of:
                target = -(-target // self.pad_to_multiple_of) * self.pad_to_multiple_of
            pad_values = {
                "input_ids": int(tokenizer.pad_token_id),
                "attention_mask": 0,
                "token_type_ids": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
                "special_tokens_mask": 1,
                "word_ids": -1,
            }
            side = tokenizer.padding_side
        if side not in ("right", "left"):
            raise ValueError(f"Unknown padding side {side!r} of `{tokenizer_field}`.")

        def pad(values: list[list[int]], pad_value: int) -> list[list[int]]:
            if side == "right":
                return [v + [pad_value] * (target - len(v)) for v in values]
            return [[pad_value] * (target - len(v)) + v for v in values]

        out = {}
        for key in present:
            name = key[len(prefix) :]
            padded = pad(columns[key], pad_values.get(name, 0)) if pad_values else columns[key]
            out[key] = self._stack(key, padded, torch.long)
        mask_key = prefix + "attention_mask"
        if mask_key not in out:
            out[mask_key] = self._stack(mask_key, pad([[1] * n for n in lengths], 0), torch.long)
        return out
