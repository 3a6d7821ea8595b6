"""Rows of a user's files read in bounded memory: CSV, TSV, JSON Lines, a JSON array or Parquet, a chunk at a time.

`hf-kd predict` reads the files it classifies through [`read_chunks`]: never a whole file in memory, only the columns
asked for, and one clear error naming the file and the column at fault.
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["INPUT_FORMATS", "file_columns", "read_chunks"]

INPUT_FORMATS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
"""The files read, by extension."""
_JSON_READ_BYTES = 1 << 20


# ---------------------------------------------------------------------------------------------------------------------


def _missing(path: Path, wanted: Sequence[str], columns: Sequence[str]) -> None:
    absent = [c for c in wanted if c not in columns]
    if absent:
        raise ValueError(f"{str(path)!r} has no column {absent[0]!r}; its columns are {list(columns)}.")


def _csv_rows(path: Path, delimiter: str) -> tuple[list[str], Iterator[dict[str, Any]]]:
    csv.field_size_limit(sys.maxsize)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    handle = open(path, newline="", encoding="utf-8")  # noqa: SIM115 - closed by the generator
    reader = csv.DictReader(handle, delimiter=delimiter, quoting=quoting)
    header = list(reader.fieldnames or [])

    def rows() -> Iterator[dict[str, Any]]:
        with handle:
            yield from reader

    return header, rows()


def _json_objects(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSON Lines file, or of a JSON array, decoded one at a time."""
    with open(path, encoding="utf-8") as handle:
        head = handle.read(1)
        while head and head.isspace():
            head = handle.read(1)
        if head != "[":
            for number, line in enumerate(itertools.chain([head + handle.readline()], handle), start=1):
                if line.strip():
                    try:
                        item = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise ValueError(f"{str(path)!r}: line {number} is not JSON ({error.msg}).") from None
                    yield _object(item, path, number)
            return
        decoder, buffer, done = json.JSONDecoder(), "", False
        while not done:
            chunk = handle.read(_JSON_READ_BYTES)
            done = not chunk
            buffer += chunk
            while True:
                buffer = buffer.lstrip().lstrip(",").lstrip()
                if not buffer or buffer.startswith("]"):
                    break
                try:
                    item, end = decoder.raw_decode(buffer)
                except json.JSONDecodeError:
                    if done:
                        raise ValueError(f"{str(path)!r} is not valid JSON (an object is cut off).") from None
                    break
                yield _object(item, path, None)
                buffer = buffer[end:]


def _json_rows(path: Path) -> tuple[list[str], Iterator[dict[str, Any]]]:
    objects = _json_objects(path)
    first = next(objects, None)
    if first is None:
        return [], iter(())
    return list(first), itertools.chain([first], objects)


def _object(item: Any, path: Path, number: int | None) -> dict[str, Any]:
    if not isinstance(item, dict):
        where = f"line {number}" if number else "an element"
        raise ValueError(f"{str(path)!r}: {where} is a {type(item).__name__}, not an object with columns.")
    return item


def _parquet_rows(path: Path, wanted: Sequence[str]) -> tuple[list[str], Iterator[dict[str, Any]]]:
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(path)
    header = list(handle.schema_arrow.names)
    present = [c for c in wanted if c in header]

    def rows() -> Iterator[dict[str, Any]]:
        for batch in handle.iter_batches(batch_size=4096, columns=present):
            yield from batch.to_pylist()

    return header, rows()


def file_columns(path: str | Path) -> list[str]:
    """
    The columns of a file (its header, its first object's keys, its schema), read without loading the file.

    Args:
        path (`str` or `Path`):
            A file of [`INPUT_FORMATS`].

    Returns:
        `list[str]`: The columns (empty for an empty file).
    """
    return _open(Path(path), ())[0]


def _open(path: Path, wanted: Sequence[str]) -> tuple[list[str], Iterator[dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix not in INPUT_FORMATS:
        raise ValueError(f"{str(path)!r}: `hf-kd predict` reads {', '.join(INPUT_FORMATS)} files, not {suffix!r}.")
    if not path.is_file():
        raise ValueError(f"{str(path)!r} does not exist.")
    if suffix in (".csv", ".tsv"):
        return _csv_rows(path, "\t" if suffix == ".tsv" else ",")
    if suffix == ".parquet":
        return _parquet_rows(path, wanted)
    return _json_rows(path)


def read_chunks(
    path: str | Path, columns: Sequence[str], chunk_rows: int, optional: Sequence[str] = ()
) -> Iterator[list[dict[str, Any]]]:
    """
    The rows of one file in chunks of `chunk_rows`, each row holding only `columns` (and `optional` ones it has).

    Only one chunk is held at a time: CSV and TSV are read row by row, JSON Lines line by line, a JSON array object
    by object, Parquet by record batch.

    Args:
        path (`str` or `Path`):
            A `.csv`, `.tsv`, `.jsonl`, `.json` or `.parquet` file.
        columns (`Sequence[str]`):
            The columns every row must have.
        chunk_rows (`int`):
            Rows per chunk.
        optional (`Sequence[str]`, *optional*):
            Columns read when the file has them.

    Yields:
        `list[dict[str, Any]]`: The next rows.

    Raises:
        `ValueError`: When the format is not one of [`INPUT_FORMATS`], the file has no rows, or a required column
            is missing (named, with the file's columns).
    """
    path = Path(path)
    wanted = list(dict.fromkeys([*columns, *optional]))
    header, rows = _open(path, wanted)
    if not header:
        raise ValueError(f"{str(path)!r} has no rows to predict.")
    _missing(path, columns, header)
    chunk: list[dict[str, Any]] = []
    count = 0
    for row in rows:
        for column in columns:
            if column not in row:
                raise ValueError(f"{str(path)!r}: row {count} has no column {column!r}.")
        chunk.append({c: row[c] for c in wanted if c in row})
        count += 1
        if len(chunk) == chunk_rows:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
    if count == 0:
        raise ValueError(f"{str(path)!r} has no rows to predict.")
