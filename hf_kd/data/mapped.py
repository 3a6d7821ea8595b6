"""Sequential passes over memory-mapped datasets without resident memory that grows with the data.

`datasets` memory-maps its Arrow files. A pass that reads every row (the leakage guard, the teacher-logit pass) maps
every page of them into the process: its resident memory (RSS) then grows with the data, although those pages are
clean copies of the files that the kernel may drop. [`PageRelease`] drops them as a pass goes: every
`every_bytes` read, it tells the kernel (`madvise(MADV_DONTNEED)`) that this process no longer needs the resident
pages of the dataset's read-only file mappings. A later read faults them in again from the page cache or the file, so
the data read is unchanged; only the resident memory stays flat. It does nothing off Linux.

The rest serves the same end: [`release_pages_of`] after `datasets` loads a file it wrote (loading reads every record
batch's header), [`ReleaseMappedPagesCallback`] during training, [`list_lengths`] for length-grouped batches, and
[`ShuffledIndexSampler`], a shuffled epoch's order without a Python list of every row.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch
from torch.utils.data import Sampler
from transformers import TrainerCallback

__all__ = [
    "PageRelease",
    "ReleaseMappedPagesCallback",
    "ShuffledIndexSampler",
    "cache_paths",
    "list_lengths",
    "release_mapped_pages",
    "release_pages_of",
]

_MADV_DONTNEED = 4


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to call
        return None


def cache_paths(datasets: Iterable[Any]) -> list[str]:
    """
    The Arrow files behind `datasets` (their `cache_files`; an in-memory dataset has none).

    Args:
        datasets (`Iterable[datasets.Dataset]`):
            The datasets.

    Returns:
        `list[str]`: The file paths, in order.
    """
    return [f["filename"] for dataset in datasets for f in getattr(dataset, "cache_files", [])]


def release_mapped_pages(paths: Iterable[str]) -> int:
    """
    Drop this process's resident pages of its read-only mappings of `paths` (Linux; elsewhere nothing happens).

    Args:
        paths (`Iterable[str]`):
            Files this process has memory-mapped (e.g. a dataset's `cache_files`).

    Returns:
        `int`: The bytes of mappings advised (0 off Linux or when none of the files is mapped).
    """
    libc = _libc()
    wanted = {os.path.realpath(p) for p in paths}
    if libc is None or not wanted:
        return 0
    advised = 0
    try:
        with open("/proc/self/maps", encoding="utf-8") as handle:
            lines = handle.readlines()
    except OSError:  # pragma: no cover - no procfs
        return 0
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or "w" in fields[1]:  # only read-only mappings: nothing of theirs can be lost
            continue
        if os.path.realpath(fields[5].strip()) not in wanted:
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED) == 0:
            advised += end - start
    return advised


def release_pages_of(datasets: Iterable[Any]) -> int:
    """
    [`release_mapped_pages`] on the Arrow files of `datasets`, e.g. right after `datasets` has loaded a file it wrote:
    reading an Arrow stream touches every record batch's header, and the kernel maps the pages around each touch
    (fault-around), so that a freshly loaded file of small record batches is resident in full.

    Args:
        datasets (`Iterable[datasets.Dataset]`):
            The datasets (in-memory datasets have no files, and are left alone).

    Returns:
        `int`: The number of mappings released.
    """
    return release_mapped_pages(cache_paths(datasets))


class PageRelease:
    """
    Calls [`release_mapped_pages`] on a dataset's Arrow files every `every_bytes` read by a sequential pass.

    Args:
        datasets (`Iterable[datasets.Dataset]`):
            The datasets the pass reads (their `cache_files`; in-memory datasets have none).
        every_bytes (`int`, *optional*, defaults to 64 MiB):
            How much is read between two releases.
        paths (`Iterable[str]`, *optional*):
            More files to release (e.g. a dataset's files, named in a worker process of `datasets.map`).
    """

    def __init__(self, datasets: Iterable[Any], every_bytes: int = 64 << 20, paths: Iterable[str] = ()) -> None:
        self.paths = cache_paths(datasets) + list(paths)
        self.every_bytes = every_bytes
        self._since = 0

    def read(self, nbytes: int) -> None:
        """
        Count `nbytes` more read, and release the pages when `every_bytes` have been read since the last release.

        Args:
            nbytes (`int`):
                Bytes just read.
        """
        self._since += nbytes
        if self.paths and self._since >= self.every_bytes:
            release_mapped_pages(self.paths)
            self._since = 0


class ReleaseMappedPagesCallback(TrainerCallback):
    """
    Releases the resident pages of a memory-mapped training set every `every_steps` optimizer steps.

    A sampler that draws rows from the whole set (shuffled epochs over a transfer set's cached logits) maps in a page
    of the file for each row it reads, so that without a release the resident memory grows towards the file's size.
    The rows read are unchanged; a later read faults the page in again from the page cache.

    Args:
        datasets (`Iterable[datasets.Dataset]`):
            The datasets the training reads (their `cache_files`; in-memory datasets have none, and then the
            callback does nothing).
        every_steps (`int`, *optional*, defaults to 5):
            Optimizer steps between two releases (each row read maps in about 64 KiB around it per column, so that
            the pages between two releases are bounded by the rows of `every_steps` steps, not by the set's size).
    """

    def __init__(self, datasets: Iterable[Any], every_steps: int = 5) -> None:
        if every_steps < 1:
            raise ValueError(f"`every_steps` must be at least 1; got {every_steps!r}.")
        self.paths = cache_paths(datasets)
        self.every_steps = every_steps

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.paths and state.global_step % self.every_steps == 0:
            release_mapped_pages(self.paths)


def list_lengths(dataset: Any, column: str, batch_size: int = 100_000) -> np.ndarray:
    """
    The length of each row's list in `column` (e.g. its token ids), read from Arrow a batch of rows at a time: the
    list offsets only, not the values, and no Python object per row.

    Args:
        dataset (`datasets.Dataset`):
            The rows.
        column (`str`):
            A list column.
        batch_size (`int`, *optional*, defaults to 100000):
            Rows read at a time.

    Returns:
        `np.ndarray`: One int64 length per row, in the dataset's order.
    """
    arrow = dataset.select_columns([column]).with_format("arrow")
    release = PageRelease([dataset])
    parts = []
    for table in arrow.iter(batch_size=batch_size):
        values = table.column(column)
        release.read(values.nbytes)
        parts.append(pc.list_value_length(values).to_numpy(zero_copy_only=False).astype(np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


class ShuffledIndexSampler(Sampler[int]):
    """
    The order of accelerate's `SeedableRandomSampler` (a `torch.randperm` of the rows, seeded with `seed + epoch`),
    yielded from the permutation tensor a chunk at a time. PyTorch's `RandomSampler` turns the whole permutation into
    a Python list (about 36 bytes per row, twice per epoch) and this keeps it as int64 (8 bytes per row): a transfer
    set of 10M rows needs 80 MB for its epoch's order instead of about 0.7 GB.

    Args:
        num_rows (`int`):
            The rows to draw from.
        seed (`int`):
            The seed of epoch 0 (`TrainingArguments.data_seed`, else the process' initial torch seed, as accelerate).
        chunk_rows (`int`, *optional*, defaults to 65536):
            Indices turned into Python ints at a time.
    """

    def __init__(self, num_rows: int, seed: int, chunk_rows: int = 1 << 16) -> None:
        if num_rows < 0 or chunk_rows < 1:
            raise ValueError(f"`num_rows` must be >= 0 and `chunk_rows` >= 1; got {num_rows!r} and {chunk_rows!r}.")
        self.num_rows = num_rows
        self.seed = seed
        self.chunk_rows = chunk_rows
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_rows

    def set_epoch(self, epoch: int) -> None:
        """
        Draw the order of `epoch` next (called by the trainer's loop and by accelerate's data loaders).

        Args:
            epoch (`int`):
                The epoch.
        """
        self.epoch = epoch

    def __iter__(self) -> Any:
        generator = torch.Generator(device=torch.get_default_device())
        generator.manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_rows, generator=generator)
        for start in range(0, self.num_rows, self.chunk_rows):
            yield from order[start : start + self.chunk_rows].tolist()
        self.set_epoch(self.epoch + 1)
