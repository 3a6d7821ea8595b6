"""Label columns read into one `labels` column: the format is inferred from the Arrow types, then encoded by `map`.

[`encode_labels`] looks at a `DatasetDict`'s label column once, in Arrow (types, nulls, unique values, lengths: no
Python list of the column is built), decides what the values are (class names, class ids, multi-hot vectors, lists of
names or ids, delimited strings, regression targets), and encodes every split with a batched `Dataset.map`, so that it
scales to corpora larger than memory. Errors name the column, split and row; label values are printed only after the
column was checked not to hold free text, and example text never is. The checks of raw values it runs first (missing
values, free text, scalar kinds) are here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import DatasetDict

from ..constants import IGNORE_INDEX, LABELS_COLUMN, MULTI_LABEL, PROBLEM_TYPES, REGRESSION, SINGLE_LABEL

__all__ = [
    "FREE_TEXT_MAX_CHARS",
    "FREE_TEXT_MAX_DISTINCT",
    "encode_labels",
    "first_non_integer",
    "first_true",
    "is_list_type",
    "label_feature",
    "missing_label_row",
    "refuse_free_text",
    "scalar_kind",
]

logger = logging.getLogger(__name__)

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


_MAX_NAMES_SHOWN = 20
_MAX_LABEL_CHARS = 60
_MULTI_KINDS = ("multi_names", "multi_ids", "multi_hot", "delimited", "multi_values")


def label_feature(problem_type: str) -> Any:
    """
    The `datasets` feature of an encoded `labels` column.

    Args:
        problem_type (`str`):
            One of `"single_label_classification"`, `"multi_label_classification"`, `"regression"`.

    Returns:
        `datasets.Value` or `datasets.List`: `int64` ids, `float32` multi-hot lists or `float32` targets.
    """
    if problem_type == MULTI_LABEL:
        return datasets.List(datasets.Value("float32"))
    if problem_type == REGRESSION:
        return datasets.Value("float32")
    return datasets.Value("int64")


def _label_repr(label: Any) -> str:
    """`repr` of a label value for messages, cut short."""
    text = repr(label)
    return text if len(text) <= _MAX_LABEL_CHARS else text[: _MAX_LABEL_CHARS - 3] + "..."


def _shown(names: Sequence[Any]) -> str:
    """A bounded, printable list of label names for error messages."""
    names = list(names)
    shown = ", ".join(_label_repr(n) for n in names[:_MAX_NAMES_SHOWN])
    return f"[{shown}]" if len(names) <= _MAX_NAMES_SHOWN else f"[{shown}, ... ({len(names)} in all)]"


def _quotable(label: Any) -> bool:
    """Whether a value read from the data may be quoted in a message: a number, or one short token (no space)."""
    if isinstance(label, bool):
        return False
    if isinstance(label, int | float):
        return True
    return isinstance(label, str) and 0 < len(label) <= 40 and not any(c.isspace() for c in label)


def _unknown_label(
    vocabulary: Sequence[Any], label: Any, split: str, row: int, column: str, declared: bool = False
) -> ValueError:
    # A value from the data is quoted only when it cannot be a piece of note text: a number, or one short token. The
    # known labels likewise, unless the recipe declared them (`label_names`): otherwise their count only.
    shown = _label_repr(label) if _quotable(label) else "(not shown: it may be patient text)"
    if declared or all(_quotable(name) for name in vocabulary):
        known = _shown(vocabulary)
    else:
        known = f"{len(vocabulary)} read from the training split (not shown: some may be patient text)"
    return ValueError(
        f"Unknown label {shown} in column '{column}' of split '{split}' (row {row}); known labels: {known}."
    )


def _infer_kind(
    values: Mapping[str, pa.Array], column: str, label_delimiter: str | None, label_names: Sequence[Any] | None
) -> str:
    """Classify the raw label values: names, delimited, ids, float, multi_names, multi_ids or multi_hot."""
    outer: dict[str, str] = {}
    inner: set[str] = set()
    for split, arr in values.items():
        if is_list_type(arr.type):
            outer[split] = "list"
            kind = scalar_kind(arr.type.value_type)
            if kind.startswith("unsupported"):
                raise ValueError(f"Label column '{column}' of split '{split}', row 0: {kind}.")
            if kind != "empty":
                inner.add(kind)
        else:
            kind = scalar_kind(arr.type)
            if kind.startswith("unsupported"):
                raise ValueError(f"Label column '{column}' of split '{split}', row 0: {kind}.")
            outer[split] = kind
    kinds = set(outer.values())
    if "list" in kinds:
        if len(kinds) > 1:
            raise ValueError(f"Label column '{column}' mixes lists and scalars.")
        if "str" in inner:
            if len(inner) > 1:
                raise ValueError(f"Label column '{column}' mixes label names and numbers inside its lists.")
            return "multi_names"
        if "float" in inner:
            return "multi_hot"
        if not inner:  # only empty lists
            return "multi_ids"
        lengths: set[int] = set()
        binary = True
        for arr in values.values():
            lengths.update(pc.unique(pc.list_value_length(arr)).to_pylist())
            flat = np.asarray(pc.list_flatten(arr).to_numpy(zero_copy_only=False))
            parents = np.asarray(pc.list_parent_indices(arr).to_numpy(zero_copy_only=False))
            not_01 = ~np.isin(flat, (0, 1))
            not_ignored = np.bincount(parents[flat != IGNORE_INDEX], minlength=len(arr)) > 0
            if (not_01 & not_ignored[parents]).any():
                binary = False
        width = next(iter(lengths)) if len(lengths) == 1 else 0
        if width >= 2 and binary and (label_names is None or len(label_names) == width):
            return "multi_hot"
        return "multi_ids"
    if kinds == {"str"}:
        return "delimited" if label_delimiter is not None else "names"
    if "str" in kinds:
        raise ValueError(f"Label column '{column}' mixes label names and numbers.")
    if kinds == {"int"}:
        return "ids"
    return "float" if first_non_integer(values) is not None else "ids"


def _train(values: Mapping[str, Any], column: str, what: str) -> Any:
    if "train" not in values:
        raise ValueError(
            f"Cannot collect the {what} of column '{column}': there is no 'train' split. Pass `label_names`."
        )
    return values["train"]


def _vocabulary(
    values: Mapping[str, pa.Array],
    column: str,
    label_names: Sequence[Any] | None,
    default_order: Sequence[Any] | None,
) -> list[Any]:
    """Label vocabulary: `label_names`, else `default_order`, else the sorted labels of the train split."""
    if label_names is not None:
        return list(label_names)
    if default_order is not None:
        return list(default_order)
    train = _train(values, column, "label names")
    flat = pc.list_flatten(train) if is_list_type(train.type) else train
    seen = [v for v in pc.unique(flat).to_pylist() if v is not None]
    try:
        vocabulary = sorted(seen)
    except TypeError:
        raise ValueError(f"Labels of column '{column}' cannot be sorted (mixed types).") from None
    if not vocabulary:
        raise ValueError(f"The 'train' split has no label in column '{column}'.")
    return vocabulary


def _id_vocabulary(
    values: Mapping[str, pa.Array], column: str, label_names: Sequence[Any] | None, gaps: bool = True
) -> list[Any]:
    """`label_names`, else `"0"` ... `"max"` for the integer ids of the train split (refusing gaps unless `gaps`)."""
    if label_names is not None:
        return list(label_names)
    train = _train(values, column, "number of labels")
    flat = pc.list_flatten(train) if is_list_type(train.type) else train
    ids = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float64)
    ids = ids[(ids != IGNORE_INDEX) & (ids >= 0)]
    if ids.size == 0:
        raise ValueError(f"The 'train' split has no label in column '{column}'.")
    width = int(ids.max()) + 1
    missing = sorted(set(range(width)) - set(ids.astype(np.int64).tolist()))
    if missing and not gaps:
        shown = ", ".join(map(str, missing[:_MAX_NAMES_SHOWN])) + (", ..." if len(missing) > _MAX_NAMES_SHOWN else "")
        raise ValueError(
            f"Integer labels of column '{column}' run up to {width - 1} in the 'train' split but ids {shown} never "
            f"occur there, so the label space is unclear (a stray id would add classes); pass the label names "
            "(`label_names`, `data.label_names` in a recipe)."
        )
    return [str(i) for i in range(width)]


# ---------------------------------------------------------------------------------------------------------------------
# Encoding (batched map)
# ---------------------------------------------------------------------------------------------------------------------


def _id_encoder(column: str, width: int, multi: bool) -> Callable[[Any, str, int], int]:
    def encode(value: Any, split: str, row: int) -> int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(
                f"Label id {value!r} in column '{column}' of split '{split}' (row {row}) is not an integer."
            )
        value = int(value)
        if multi and value < 0:
            raise ValueError(f"Negative label id {value} in column '{column}' of split '{split}' (row {row}).")
        if not multi and value < 0 and value != IGNORE_INDEX:
            raise ValueError(
                f"Negative label {value} in column '{column}' of split '{split}' (row {row}); use -100 for unlabeled "
                "examples."
            )
        if value >= width:
            raise ValueError(
                f"Unknown label {value} in column '{column}' of split '{split}' (row {row}): ids must be below "
                f"{width}."
            )
        return value

    return encode


def _name_encoder(column: str, vocabulary: Sequence[Any], declared: bool = False) -> Callable[[Any, str, int], int]:
    index = {name: i for i, name in enumerate(vocabulary)}

    def encode(value: Any, split: str, row: int) -> int:
        if value not in index:
            raise _unknown_label(vocabulary, value, split, row, column, declared)
        return index[value]

    return encode


def _multi_hot_row(width: int, column: str) -> Callable[[Any, str, int], list[float]]:
    def encode(value: Any, split: str, row: int) -> list[float]:
        if value and all(v == IGNORE_INDEX for v in value):
            return [float(IGNORE_INDEX)] * width
        for v in value:
            if not 0 <= v <= 1:
                raise ValueError(
                    f"Multi-hot label value {v!r} in column '{column}' of split '{split}' (row {row}) is outside "
                    "[0, 1] (an unlabeled example has all entries -100)."
                )
        return [float(v) for v in value]

    return encode


def _to_multi_hot(width: int, position: Callable[[Any, str, int], int]) -> Callable[[Any, str, int], list[float]]:
    """Multi-hot vectors from lists of labels (an empty list: no label applies); a missing row (`None`) becomes all
    `-100` (unlabeled)."""

    def encode(value: Any, split: str, row: int) -> list[float]:
        if value is None:
            return [float(IGNORE_INDEX)] * width
        vector = [0.0] * width
        for v in value:
            vector[position(v, split, row)] = 1.0
        return vector

    return encode


def _apply(
    dataset: DatasetDict,
    column: str,
    problem_type: str,
    encode: Callable[[Any, str, int], Any],
    prepare: Callable[[Any], Any] | None = None,
) -> DatasetDict:
    """Replace `column` by a `labels` column of `encode(value, split, row)`, row for row (batched `map`)."""
    out = {}
    for split, ds in dataset.items():
        if column != LABELS_COLUMN and LABELS_COLUMN in ds.column_names:
            raise ValueError(
                f"Split '{split}' already has a 'labels' column besides the label column '{column}'; remove or rename "
                "one of them."
            )

        def batch_fn(values: list[Any], indices: list[int], split: str = split) -> dict[str, list[Any]]:
            if prepare is not None:
                values = [prepare(v) for v in values]
            return {LABELS_COLUMN: [encode(v, split, i) for v, i in zip(values, indices)]}

        features = ds.features.copy()
        del features[column]
        features[LABELS_COLUMN] = label_feature(problem_type)
        out[split] = ds.map(
            batch_fn,
            batched=True,
            with_indices=True,
            input_columns=[column],
            remove_columns=[column],
            features=features,
            desc="Encoding labels",
        )
    return DatasetDict(out)


def encode_labels(
    dataset: DatasetDict,
    column: str,
    problem_type: str | None = None,
    label_names: Sequence[Any] | None = None,
    label_delimiter: str | None = None,
    label_format: str | None = None,
) -> tuple[DatasetDict, list[Any], str]:
    """
    Replace a label column by a normalized `labels` column (see `hf_kd.load_classification_dataset` for the formats).

    Args:
        dataset (`datasets.DatasetDict`):
            The splits, each with the label column.
        column (`str`):
            The label column; it is replaced by `labels` (the last column).
        problem_type (`str`, *optional*):
            One of `"single_label_classification"`, `"multi_label_classification"`, `"regression"`; inferred when
            None.
        label_names (`Sequence[Any]`, *optional*):
            The label names in id order (otherwise the sorted labels of the train split).
        label_delimiter (`str`, *optional*):
            Separator of the names in string labels (multi-label).
        label_format (`str`, *optional*):
            Forces the reading of the values: `"multi_hot"`, or `"multi_values"` (lists of label values sorted in
            their natural order, e.g. ICD chapter numbers). Inferred when None.

    Returns:
        `tuple[datasets.DatasetDict, list, str]`: The encoded splits, the label vocabulary (names, or the raw values
        for `"multi_values"`) and the problem type.

    Raises:
        `ValueError`: On a missing or empty label, an unknown label, inconsistent formats or labels that contradict
            `problem_type`, naming the column, split and row.
    """
    label_names = _checked_names(problem_type, label_names)
    values = _label_values(dataset, column, label_delimiter)
    feature = next(iter(dataset.values())).features[column]
    kind, prepare, default_order = _label_kind(feature, values, column, label_delimiter, label_names, label_format)
    problem_type, kind, prepare = _reconciled(problem_type, kind, prepare, values, column)
    if kind == "delimited":
        values, kind, prepare = (
            _split_delimited(values, label_delimiter),
            "multi_names",
            _name_splitter(label_delimiter),
        )
    vocabulary, encode = _encoder(kind, values, column, problem_type, label_names, default_order)
    return _apply(dataset, column, problem_type, encode, prepare), vocabulary, problem_type


def _checked_names(problem_type: str | None, label_names: Sequence[Any] | None) -> list[Any] | None:
    """`problem_type` is a problem type; the declared `label_names` are unique."""
    if problem_type is not None and problem_type not in PROBLEM_TYPES:
        raise ValueError(f"`problem_type` must be one of {PROBLEM_TYPES} or None, got {problem_type!r}.")
    if label_names is None:
        return None
    names = list(label_names)
    duplicates = sorted({n for n in names if names.count(n) > 1}, key=str)
    if duplicates:
        raise ValueError(f"`label_names` has duplicates: {duplicates}.")
    return names


def _label_values(dataset: DatasetDict, column: str, label_delimiter: str | None) -> dict[str, Any]:
    """Each split's label column as one Arrow array, refused when a label is missing or looks like free text."""
    values = {split: ds.data.column(column).combine_chunks() for split, ds in dataset.items()}
    for split, arr in values.items():
        problem = missing_label_row(arr)
        if problem is not None:
            row, what = problem
            hint = ""
            if what == "Empty" and label_delimiter is not None:
                hint = (
                    " A blank multi-label cell could mean 'no label applies' or 'not labelled': write the labels as a "
                    "JSON list ([] when none applies), or move an unlabeled row's text to `data.unlabeled_files`."
                )
            raise ValueError(f"{what} label in column '{column}' of split '{split}' at row {row}.{hint}")
    refuse_free_text(values, column)
    return values


def _label_kind(
    feature: Any,
    values: dict[str, Any],
    column: str,
    label_delimiter: str | None,
    label_names: list[Any] | None,
    label_format: str | None,
) -> tuple[str, Callable[[Any], Any] | None, list[str] | None]:
    """How the labels are written (`kind`), the per-value preparation it needs, and the names' default order.
    `ClassLabel` columns (Hub datasets) carry their names; -1 marks an unlabeled example there."""
    if isinstance(feature, datasets.ClassLabel):
        names = feature.names
        return "names", lambda v: None if v == -1 else names[int(v)], list(names)
    if isinstance(getattr(feature, "feature", None), datasets.ClassLabel):
        names = feature.feature.names
        return "multi_names", lambda r: [names[int(v)] for v in r], list(names)
    if label_format is not None:
        return label_format, None, None
    return _infer_kind(values, column, label_delimiter, label_names), None, None


def _reconciled(
    problem_type: str | None, kind: str, prepare: Callable[[Any], Any] | None, values: dict[str, Any], column: str
) -> tuple[str, str, Callable[[Any], Any] | None]:
    """The problem type (inferred from `kind` when not given), and `kind` / `prepare` read as that problem type
    (one label per example as a one-hot vector for multi-label, class ids as values for regression); a `ValueError`
    when the labels contradict it."""
    inferred = MULTI_LABEL if kind in _MULTI_KINDS else REGRESSION if kind == "float" else SINGLE_LABEL
    if problem_type is None or problem_type == inferred:
        return inferred, kind, prepare
    if inferred == MULTI_LABEL:
        raise ValueError(
            f"Label column '{column}' holds label lists (multi-label), incompatible with "
            f"problem_type={problem_type!r}."
        )
    if inferred == REGRESSION:
        split, row, value = first_non_integer(values)  # type: ignore[misc]
        raise ValueError(
            f"Label {value!r} in column '{column}' of split '{split}' (row {row}) is not an integer class id, "
            f"incompatible with problem_type={problem_type!r}."
        )
    if problem_type == MULTI_LABEL:  # one label per example, encoded as a one-hot vector
        base = prepare

        def one_hot(v: Any) -> Any:
            v = base(v) if base is not None else v
            return None if v is None or v == IGNORE_INDEX else [v]

        return problem_type, "multi_names" if kind == "names" else "multi_ids", one_hot
    if kind == "names":
        raise ValueError(f"Label column '{column}' holds label names, incompatible with problem_type='regression'.")
    return problem_type, "float", prepare


def _name_splitter(delimiter: str | None) -> Callable[[str], list[str]]:
    def split_names(value: str) -> list[str]:
        return [piece.strip() for piece in value.split(delimiter) if piece.strip()]

    return split_names


def _split_delimited(values: dict[str, Any], delimiter: str | None) -> dict[str, Any]:
    """Delimited names as one flat array of names per split (the vocabulary is read from it)."""
    pieces = {s: pc.utf8_trim_whitespace(pc.list_flatten(pc.split_pattern(a, delimiter))) for s, a in values.items()}
    return {s: pc.filter(a, pc.not_equal(a, "")) for s, a in pieces.items()}


def _encoder(
    kind: str,
    values: dict[str, Any],
    column: str,
    problem_type: str,
    label_names: list[Any] | None,
    default_order: list[str] | None,
) -> tuple[list[Any], Callable[[Any, str, int], Any]]:
    """The label vocabulary and the `(value, split, row) -> label` encoder of a `kind` of labels."""
    declared = label_names is not None
    if kind == "float":
        if problem_type == REGRESSION and any(
            pc.any(pc.equal(arr, IGNORE_INDEX)).as_py() for arr in values.values() if not is_list_type(arr.type)
        ):
            logger.warning("Regression labels of column '%s' contain -100; it is treated as a value.", column)
        return (list(label_names) if declared else []), lambda v, s, r: float(v)
    if kind == "ids":
        vocabulary = _id_vocabulary(values, column, label_names, gaps=False)
        encode_id = _id_encoder(column, len(vocabulary), multi=False)
        return vocabulary, lambda v, s, r: IGNORE_INDEX if v == IGNORE_INDEX else encode_id(v, s, r)
    if kind == "names":
        vocabulary = _vocabulary(values, column, label_names, default_order)
        encode_name = _name_encoder(column, vocabulary, declared=declared)
        return vocabulary, lambda v, s, r: IGNORE_INDEX if v is None else encode_name(v, s, r)
    if kind == "multi_hot":
        lengths = sorted({n for arr in values.values() for n in pc.unique(pc.list_value_length(arr)).to_pylist()})
        if len(lengths) != 1:
            raise ValueError(f"Multi-hot labels of column '{column}' have different lengths: {lengths}.")
        (width,) = lengths
        if declared and len(label_names) != width:
            raise ValueError(
                f"Multi-hot labels of column '{column}' have {width} entries but {len(label_names)} label names were "
                "given."
            )
        return (list(label_names) if declared else [str(i) for i in range(width)]), _multi_hot_row(width, column)
    if kind == "multi_ids":
        vocabulary = _id_vocabulary(values, column, label_names)
        return vocabulary, _to_multi_hot(len(vocabulary), _id_encoder(column, len(vocabulary), multi=True))
    if kind in ("multi_names", "multi_values"):
        vocabulary = _vocabulary(values, column, label_names, default_order)
        return vocabulary, _to_multi_hot(len(vocabulary), _name_encoder(column, vocabulary, declared=declared))
    raise ValueError(f"Unknown label format {kind!r}.")
