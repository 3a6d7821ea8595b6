"""Loading text-classification data from files and tokenizing it for the student and the teacher.

[`load_classification_dataset`] reads CSV, TSV, JSON(L) or Parquet files (or a Hub dataset) with `datasets`' packaged
loaders and normalizes the label column into `labels` (`hf_kd.data.labels`). [`tokenize_for_distillation`] adds the
student's and, when needed, the teacher's token columns with a batched `map` (the column convention is in
`hf_kd.constants`; `word_ids`/`teacher_word_ids` come from `hf_kd.data.alignment`). Text columns must be removed before
collation (`remove_text=True` or `Dataset.remove_columns`): the collator refuses string columns rather than silently
dropping them.

Privacy: error messages and logs name columns, splits, row indices and label values, never the text of an example.
"""

from __future__ import annotations

import codecs
import csv
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import datasets
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, load_dataset
from datasets.exceptions import DatasetGenerationError
from transformers import PreTrainedTokenizerBase

from ..constants import STUDENT_INPUT_COLUMNS
from .alignment import word_ids_for_encoding
from .labels import encode_labels
from .mapped import PageRelease, cache_paths, release_pages_of
from .tokenizer_identity import same_tokenization, tokenizer_name

logger = logging.getLogger(__name__)

__all__ = [
    "load_classification_dataset",
    "load_data_files",
    "require_column",
    "require_text_column",
    "tokenize_for_distillation",
]

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

# Tokenizers without a real limit report a huge sentinel `model_max_length`; below this we truncate to it.
_MAX_REAL_MODEL_LENGTH = 1_000_000


# ---------------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------------


def _builder_for(path: Path) -> tuple[str, dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix not in _FILE_BUILDERS:
        raise ValueError(
            f"Unsupported file extension {path.suffix!r} for {str(path)!r}: expected one of {sorted(_FILE_BUILDERS)}."
        )
    return _FILE_BUILDERS[suffix]


_LOADED_BATCH_ROWS = 10_000
"""Rows per record batch of the Arrow copy `datasets` makes of a data file (its default is 1,000)."""


def _load_split_files(split: str, paths: Sequence[str | os.PathLike], cache_dir: Any = None) -> Dataset:
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
    for path in files:
        _check_readable(path, split, text=builder != "parquet")
    try:
        # `datasets` writes its Arrow copy in record batches of this many rows, then loads it: reading each batch's
        # header maps in the pages around it, which is a large part of a big file with small batches (released).
        dataset = load_dataset(
            builder,
            data_files={split: [str(p) for p in files]},
            split=split,
            cache_dir=cache_dir,
            writer_batch_size=_LOADED_BATCH_ROWS,
            **kwargs,
        )
        release_pages_of([dataset])
        return dataset
    except ValueError as error:
        # `datasets` refuses to build a split without rows ('Instruction "x" corresponds to no data!').
        if "corresponds to no data" in str(error):
            raise ValueError(f"Split '{split}' is empty.") from None
        raise
    except DatasetGenerationError as error:
        # The parser's own message can quote the file's content; only its kind is reported.
        cause = type(error.__cause__ or error).__name__
        names = ", ".join(repr(str(p)) for p in files)
        raise ValueError(
            f"Data file(s) {names} of split '{split}' cannot be read as {builder} ({cause}); check the format "
            "(header row, one record per line for JSON Lines, the separator of a TSV)."
        ) from None


def _check_readable(path: Path, split: str, text: bool) -> None:
    """Refuse an empty data file, or a text file that is not UTF-8, naming the file and the split."""
    if path.stat().st_size == 0 or (path.stat().st_size < 4096 and not path.read_bytes().strip()):
        raise ValueError(f"Data file {str(path)!r} of split '{split}' is empty.")
    if not text:
        return
    offset = 0
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"Data file {str(path)!r} of split '{split}' is not UTF-8 text (invalid byte at offset "
                    f"{offset + error.start}); save it as UTF-8."
                ) from None
            offset += len(chunk)


def load_data_files(source: Any, splits: Sequence[str] | None = None, cache_dir: Any = None) -> DatasetDict:
    """
    Load `source` as a `DatasetDict` with the packaged `datasets` loader of its file type.

    Args:
        source (`str`, `os.PathLike` or `Mapping`):
            A mapping split -> file path(s), a directory (split names from `datasets`' file-name patterns), a single
            file (the `train` split) or a Hub dataset id.
        splits (`Sequence[str]`, *optional*):
            Splits to keep; every one must exist.
        cache_dir (`str` or `os.PathLike`, *optional*):
            Where `datasets` writes its Arrow copies of the files (they hold the text); its default cache when None.

    Returns:
        `datasets.DatasetDict`: The splits, none of them empty.

    Raises:
        `ValueError`: On an unsupported extension, mixed file types in a split, a missing split or an empty split.
        `FileNotFoundError`: If a local path does not exist.
    """
    if isinstance(source, Mapping):
        loaded = {}
        for split, paths in source.items():
            paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
            loaded[str(split)] = _load_split_files(str(split), paths, cache_dir)
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
            raw = DatasetDict({split: _load_split_files(split, found, cache_dir) for split, found in files.items()})
        elif path.is_file():
            raw = DatasetDict({"train": _load_split_files("train", [path], cache_dir)})
        elif path.suffix.lower() in _FILE_BUILDERS or path.is_absolute() or str(source).startswith("."):
            raise FileNotFoundError(f"No such file or directory: {str(source)!r}.")
        else:
            raw = load_dataset(str(source), cache_dir=cache_dir)
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


def require_column(dataset: Dataset, column: str, split: str) -> None:
    """
    Raise a `ValueError` naming `column`, `split` and the available columns when `column` is missing.

    Args:
        dataset (`datasets.Dataset`):
            One split.
        column (`str`):
            The column needed.
        split (`str`):
            The split's name, for the message.
    """
    if column not in dataset.column_names:
        raise ValueError(f"Column '{column}' not found in split '{split}'. Available columns: {dataset.column_names}.")


def require_text_column(dataset: Dataset, column: str, split: str) -> None:
    """
    Check that `column` exists, holds strings and has no missing value (by Arrow type and null count).

    Args:
        dataset (`datasets.Dataset`):
            One split.
        column (`str`):
            The text column.
        split (`str`):
            The split's name, for the message.

    Raises:
        `ValueError`: Naming the column, the split and the first row without text (never the text itself).
    """
    require_column(dataset, column, split)
    feature = dataset.features[column]
    if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
        raise ValueError(f"Text column '{column}' of split '{split}' must hold strings, found {feature}.")
    start = 0
    release = PageRelease([dataset])  # nor kept resident once read
    for table in dataset.select_columns([column]).with_format("arrow").iter(batch_size=100_000):
        values = table.column(column)  # one slice at a time: a column of millions of notes is never copied whole
        release.read(values.nbytes)
        if values.null_count:
            row = start + pc.index(pc.is_null(values), True).as_py()
            raise ValueError(f"Missing text in column '{column}' of split '{split}' at row {row}.")
        start += len(values)


def load_classification_dataset(
    source: str | os.PathLike | Mapping[str, str | os.PathLike | Sequence[str | os.PathLike]],
    text_column: str = "text",
    label_column: str = "labels",
    problem_type: str | None = None,
    label_names: Sequence[str] | None = None,
    label_delimiter: str | None = None,
    splits: Sequence[str] | None = None,
    teacher_text_column: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    unlabeled_splits: bool = False,
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
        cache_dir (`str` or `os.PathLike`, *optional*):
            Where `datasets` writes its Arrow copies of the files and of their label encoding (they hold the text);
            its default cache (`~/.cache/huggingface/datasets`) when None.
        unlabeled_splits (`bool`, *optional*, defaults to `False`):
            Keep a split other than `train` without `label_column` (e.g. a shared task's test set), returned without
            a `labels` column; when False, such a split is an error naming the column and the split.

    Returns:
        `tuple[datasets.DatasetDict, list[str]]`: The dataset with its normalized `labels` column (none in an
        unlabeled split) and the label names.

    Raises:
        `ValueError`: On a missing column (naming it and listing the available ones), an empty split, a missing
            label (naming column, split and row), a label of another split that is not among the label names (naming
            label and split), inconsistent label formats, or labels incompatible with `problem_type`.
        `FileNotFoundError`: If a local path does not exist.
    """
    raw = load_data_files(source, splits, cache_dir=cache_dir)
    if label_column in (text_column, teacher_text_column):
        raise ValueError(f"The label column '{label_column}' is also a text column.")
    for split, ds in raw.items():
        for column in (text_column, teacher_text_column):
            if column is not None:
                require_text_column(ds, column, split)
        if not (unlabeled_splits and split != "train" and label_column not in ds.column_names):
            require_column(ds, label_column, split)
    labelled = DatasetDict({s: ds for s, ds in raw.items() if label_column in ds.column_names})
    encoded, vocabulary, _ = encode_labels(labelled, label_column, problem_type, label_names, label_delimiter)
    dataset = DatasetDict({s: encoded[s] if s in encoded else ds for s, ds in raw.items()})
    return dataset, [str(name) for name in vocabulary]


# ---------------------------------------------------------------------------------------------------------------------
# Tokenization
# ---------------------------------------------------------------------------------------------------------------------


def _word_ids_possible(tokenizer: Any, teacher: Any, word_alignment: bool | str) -> bool:
    """Whether the word ids that align two tokenizations can be added: both tokenizers fast (character offsets);
    `word_alignment=True` with a slow one is refused, `"auto"` warns and goes without."""
    if word_alignment is False:
        return False
    slow = [t for t in (tokenizer, teacher) if not getattr(t, "is_fast", False)]
    if not slow:
        return True
    if word_alignment is True:
        raise ValueError(
            f"word_alignment=True needs fast tokenizers (character offsets); {tokenizer_name(slow[0])} is slow."
        )
    logger.warning(
        "Tokenizers differ but %s is slow: no word_ids/teacher_word_ids are added, so hidden states cannot "
        "be aligned word by word.",
        tokenizer_name(slow[0]),
    )
    return False


def _check_tokenizable(splits: Any, text_column: str, teacher_text_column: str | None, produced: list[str]) -> None:
    """Every split has its text columns, and none of the columns tokenizing adds."""
    for split, ds in splits:
        require_text_column(ds, text_column, split)
        if teacher_text_column is not None:
            require_text_column(ds, teacher_text_column, split)
        clashes = [c for c in produced if c in ds.column_names]
        if clashes:
            raise ValueError(f"Split '{split}' already has column(s) {clashes}; remove them before tokenizing again.")


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
        out["word_ids"] = word_ids_for_encoding(texts, encoding)
    return out


_TOKENIZE_BATCH_ROWS = 4_000
"""Rows tokenized per call and written per Arrow record batch."""

# One page release per process and set of source files: in the workers of `datasets.map(num_proc=...)`, the text read
# so far leaves each worker's resident memory as it tokenizes, as it does in the main process.
_TEXT_RELEASES: dict[tuple[str, ...], PageRelease] = {}


def _release_text_pages(files: tuple[str, ...], texts: list[Any]) -> None:
    if files:
        release = _TEXT_RELEASES.setdefault(files, PageRelease([], paths=files))
        release.read(sum(len(t) for t in texts if isinstance(t, str)))


def _tokenize_batch(
    batch: dict[str, list[Any]],
    tokenizer: PreTrainedTokenizerBase,
    teacher_tokenizer: PreTrainedTokenizerBase | None,
    text_column: str,
    teacher_text_column: str,
    max_length: int | None,
    teacher_max_length: int | None,
    with_word_ids: bool,
    source_files: tuple[str, ...] = (),
) -> dict[str, list[Any]]:
    _release_text_pages(source_files, batch[text_column])
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
    `teacher_word_ids` (see `hf_kd.data.alignment`) are added too, according to `word_alignment`.

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

    with_word_ids = (
        separate_teacher and same_text and not same_tokens and _word_ids_possible(tokenizer, teacher, word_alignment)
    )
    splits = dataset.items() if isinstance(dataset, DatasetDict) else [("<dataset>", dataset)]
    produced = [*STUDENT_INPUT_COLUMNS] + (["word_ids"] if with_word_ids else [])
    if separate_teacher:
        produced += [f"teacher_{c}" for c in produced]
    _check_tokenizable(splits, text_column, None if same_text else teacher_text_column, produced)
    remove_columns = sorted({text_column, teacher_text_column}) if remove_text else None
    tokenized = dataset.map(
        _tokenize_batch,
        batched=True,
        # Record batches of 4,000 rows: loading the file reads each batch's header, and the kernel maps in the pages
        # around each (about 64 KiB), so that fewer, larger batches leave less of a large file resident.
        batch_size=_TOKENIZE_BATCH_ROWS,
        writer_batch_size=_TOKENIZE_BATCH_ROWS,
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
            "source_files": tuple(sorted(set(cache_paths(ds for _, ds in splits)))),
        },
        desc="Tokenizing",
    )
    release_pages_of(tokenized.values() if isinstance(tokenized, DatasetDict) else [tokenized])  # what loading read
    return tokenized
