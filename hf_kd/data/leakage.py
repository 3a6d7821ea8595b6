"""The leakage guard: no validation or test row reaches the teacher's logits through the transfer set.

A transfer set (unlabeled notes, the corpus outside `data.train_size`) is often drawn from the same archive as the
evaluated splits, so some of its rows can be validation or test rows. The student would then learn the teacher's
outputs on the very rows it is scored on. [`drop_leaked_rows`] drops them before the teacher runs;
[`count_leaked_rows`] counts the training rows that equal an evaluated row (the split is the user's: they are warned
about, not dropped).

Rows are compared on their normalised text ([`normalize_text`]: Unicode NFKC, case folded, punctuation removed,
whitespace collapsed), through 16-byte digests: the guard never keeps, logs or reports a text, only counts.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from .mapped import PageRelease

__all__ = [
    "count_leaked_rows",
    "drop_leaked_rows",
    "guard_leakage",
    "leakage_message",
    "normalize_text",
    "text_digests",
]


@functools.cache
def _punctuation() -> dict[int, str]:
    """Every Unicode punctuation character (category P*) -> a space: `str.translate` folds them at C speed."""
    return {i: " " for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i)).startswith("P")}


_ROWS_PER_BATCH = 10_000


def normalize_text(text: str) -> str:
    """
    A text with case, whitespace and punctuation folded: NFKC, `str.casefold`, every Unicode punctuation character
    (category `P*`) replaced by a space, runs of whitespace collapsed to one space, ends stripped.

    Args:
        text (`str`):
            The text.

    Returns:
        `str`: The normalised text (`"The cough, at night."` and `"the  COUGH at night"` give the same one).
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().translate(_punctuation()).split())


def _digest(text: Any) -> bytes | None:
    if not isinstance(text, str):
        return None
    normalized = normalize_text(text)
    return hashlib.blake2b(normalized.encode(), digest_size=16).digest() if normalized else None


def _columns(dataset: Any, columns: Sequence[str]) -> list[str]:
    return [c for c in dict.fromkeys(columns) if c and c in dataset.column_names]


def text_digests(datasets: Iterable[Any], columns: Sequence[str]) -> dict[str, set[bytes]]:
    """
    The digests of the normalised texts of `datasets`, per column (empty texts and non-strings left out).

    Args:
        datasets (`Iterable[datasets.Dataset]`):
            The reference rows (validation and test splits).
        columns (`Sequence[str]`):
            The text columns compared (the student's text, and the teacher's when it reads another column).

    Returns:
        `dict[str, set[bytes]]`: Column -> the set of 16-byte digests of its normalised texts.
    """
    out: dict[str, set[bytes]] = {c: set() for c in dict.fromkeys(columns) if c}
    for dataset in datasets:
        for column in _columns(dataset, columns):
            for batch in dataset.select_columns([column]).iter(batch_size=_ROWS_PER_BATCH):
                out[column].update(d for d in map(_digest, batch[column]) if d is not None)
    return out


def _leaked_indices(dataset: Any, references: dict[str, set[bytes]]) -> list[int]:
    columns = [c for c in _columns(dataset, list(references)) if references[c]]
    if not columns or not len(dataset):
        return []
    leaked: list[int] = []
    start = 0
    release = PageRelease([dataset])
    for batch in dataset.select_columns(columns).iter(batch_size=_ROWS_PER_BATCH):
        n = len(batch[columns[0]])
        release.read(sum(len(t) for c in columns for t in batch[c] if isinstance(t, str)))
        for i in range(n):
            if any(_digest(batch[c][i]) in references[c] for c in columns):
                leaked.append(start + i)
        start += n
    return leaked


def count_leaked_rows(dataset: Any, references: dict[str, set[bytes]]) -> int:
    """
    How many rows of `dataset` equal a reference row once normalised, in any compared column.

    Args:
        dataset (`datasets.Dataset`):
            The rows to check (the training split).
        references (`dict[str, set[bytes]]`):
            The reference digests ([`text_digests`]).

    Returns:
        `int`: The number of such rows.
    """
    return len(_leaked_indices(dataset, references))


def drop_leaked_rows(dataset: Any, references: dict[str, set[bytes]]) -> tuple[Any, int]:
    """
    `dataset` without its rows equal to a reference row once normalised, in any compared column.

    The rows are read in batches of 10,000 (the memory held is the reference digests and the dropped indices). When
    nothing is dropped the dataset is returned as it is, fingerprint included; otherwise the kept rows get a
    fingerprint made of the original one and the dropped indices, so that caches built on it (the teacher's logits)
    change exactly when the kept rows change.

    Args:
        dataset (`datasets.Dataset`):
            The rows to guard (the transfer set).
        references (`dict[str, set[bytes]]`):
            The reference digests ([`text_digests`] of the validation and test splits).

    Returns:
        `tuple[datasets.Dataset, int]`: The kept rows, in their order, and the number dropped.
    """
    leaked = _leaked_indices(dataset, references)
    if not leaked:
        return dataset, 0
    dropped = set(leaked)
    fingerprint = hashlib.sha256(f"{dataset._fingerprint}|drop|{','.join(map(str, leaked))}".encode()).hexdigest()[:32]
    kept = dataset.filter(
        lambda _, indices: [i not in dropped for i in indices],
        with_indices=True,
        batched=True,
        batch_size=_ROWS_PER_BATCH,
        new_fingerprint=fingerprint,
        keep_in_memory=True,
        desc="Leakage guard",
    )
    return kept, len(leaked)


def guard_leakage(
    train: Any, transfer: Any, evaluated: list[Any], columns: Sequence[str | None]
) -> tuple[Any, dict[str, int]]:
    """
    The leakage guard of a run: transfer rows equal to a validation or test row (after folding case, whitespace
    and punctuation, `hf_kd.data.leakage.normalize_text`) are dropped before the teacher sees them; training rows
    equal to one are counted, not dropped (the split is the user's). [`leakage_message`] words the counts.

    Args:
        train (`datasets.Dataset`):
            The labelled training rows.
        transfer (`datasets.Dataset`):
            The transfer set.
        evaluated (`list[datasets.Dataset]`):
            The labelled splits evaluated (validation, and test when it has labels), whole.
        columns (`Sequence[str | None]`):
            The text columns compared (`data.text_column`, and `data.teacher_text_column` when set).

    Returns:
        `tuple[datasets.Dataset, dict[str, int]]`: The kept transfer rows and the counts `transfer_rows_dropped`
        and `train_rows_in_evaluation`.
    """
    references = text_digests(evaluated, [c for c in columns if c])
    transfer, dropped = drop_leaked_rows(transfer, references)
    in_train = count_leaked_rows(train, references)
    return transfer, {"transfer_rows_dropped": dropped, "train_rows_in_evaluation": in_train}


def leakage_message(counts: dict[str, int]) -> str:
    """
    The leakage guard's log line: its counts, and a warning when training rows equal evaluated ones.

    Args:
        counts (`dict[str, int]`):
            [`guard_leakage`]'s counts.

    Returns:
        `str`: One line, without any text of the data.
    """
    in_train = counts.get("train_rows_in_evaluation", 0)
    line = (
        f"leakage guard: {counts.get('transfer_rows_dropped', 0)} transfer-set row(s) equal to a validation or test "
        f"row dropped before the teacher's logits; {in_train} training row(s) equal to one"
    )
    if in_train:
        return f"{line} (warning: kept, the split is yours; their scores are not held out)."
    return f"{line}."
