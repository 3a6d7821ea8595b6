"""Run the teacher once and keep its logits beside the token ids: a compact, memory-mapped store.

`cache_teacher_logits` adds a `teacher_logits` column to a tokenized dataset, keyed on a fingerprint of the teacher
(its weights and its config), its tokenizer when given, the columns it reads, the label order and the data, so that a
store is reused for the same teacher and recomputed for a changed one.

The pass streams: the rows are read from Arrow a chunk at a time, run through the teacher and written at once, so that
memory stays flat however many rows there are. With K processes each process runs the teacher over its contiguous 1/K
of the rows and writes its own shard file; the shards are joined on disk, as one dataset of K Arrow files (the layout
of `Dataset.save_to_disk`), which every process then memory-maps. The store holds one copy of each row: its token ids
in the smallest integer type that holds them (`uint16` for a 30,522-token vocabulary), attention masks as `uint8`,
token type ids only when they are not all zeros (a single text's are, and a model reads none as zeros), its labels,
and the logits as float32 (or float16, `logits_dtype`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import torch
from accelerate.utils import extract_model_from_parallel
from datasets.arrow_writer import ArrowWriter
from torch import nn
from tqdm.auto import tqdm

from ..constants import (
    STUDENT_INPUT_COLUMNS,
    TEACHER_INPUT_COLUMNS,
    TEACHER_LOGITS_COLUMN,
    TEACHER_LOGITS_DTYPES,
    WORD_ID_COLUMNS,
)
from ..data.mapped import PageRelease, release_pages_of

__all__ = ["cache_teacher_logits", "teacher_fingerprint"]

_STATE_FILE = "state.json"  # `Dataset.save_to_disk`'s state: written last, it marks a complete store
_INFO_FILE = "dataset_info.json"
_SCAN_ROWS = 16_384  # rows per Arrow slice of the columns' range scan (zero-copy slices of a memory-mapped table)


def teacher_fingerprint(teacher_model: nn.Module) -> str:
    """A SHA-256 digest of the teacher's config and its parameters and buffers (names, dtypes, shapes and values).

    Args:
        teacher_model (`nn.Module`):
            The teacher.

    Returns:
        `str`: a hex digest that changes whenever any weight or config field changes.
    """
    digest = hashlib.sha256()
    model = extract_model_from_parallel(teacher_model)
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        digest.update(config.to_json_string(use_diff=False).encode())
    for name, tensor in model.state_dict().items():
        if hasattr(tensor, "full_tensor"):  # a sharded (FSDP2) parameter: every process hashes the whole of it
            tensor = tensor.full_tensor()
        tensor = tensor.detach().contiguous().cpu().reshape(-1)
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _input_columns(dataset: datasets.Dataset) -> list[str]:
    names = dataset.column_names
    if "teacher_input_ids" in names:
        return [c for c in TEACHER_INPUT_COLUMNS if c in names]
    if "input_ids" not in names:
        raise ValueError(
            "The dataset has neither `teacher_input_ids` nor `input_ids` columns; tokenize it first with "
            "`hf_kd.tokenize_for_distillation`."
        )
    return [c for c in STUDENT_INPUT_COLUMNS if c in names]


def _smallest_int(low: int, high: int) -> str:
    for name, lo, hi in (("uint8", 0, 255), ("uint16", 0, 65_535), ("int16", -32_768, 32_767)):
        if lo <= low and high <= hi:
            return name
    return "int32" if -(2**31) <= low and high < 2**31 else "int64"


def _store_features(dataset: datasets.Dataset, logits_dtype: str) -> tuple[datasets.Features, list[str]]:
    """The store's features (compact integer sequences, the logits column) and the columns it leaves out: token type
    ids that are all zeros (a model reads none as zeros). One vectorised pass over Arrow."""
    integer_lists = [
        name
        for name, feature in dataset.features.items()
        if isinstance(feature, datasets.Sequence | datasets.List)
        and isinstance(getattr(feature, "feature", None), datasets.Value)
        and "int" in feature.feature.dtype
        and (name.removeprefix("teacher_") in STUDENT_INPUT_COLUMNS or name in WORD_ID_COLUMNS)
    ]
    low: dict[str, int | None] = dict.fromkeys(integer_lists)
    high: dict[str, int | None] = dict.fromkeys(integer_lists)
    release = PageRelease([dataset])  # the scan reads every token id: its pages leave the resident memory as it goes
    for table in dataset.select_columns(integer_lists).with_format("arrow").iter(batch_size=_SCAN_ROWS):
        release.read(table.nbytes)
        for name in integer_lists:
            values = pc.list_flatten(table.column(name))
            if len(values):
                bounds = pc.min_max(values).as_py()
                low[name] = bounds["min"] if low[name] is None else min(low[name], bounds["min"])
                high[name] = bounds["max"] if high[name] is None else max(high[name], bounds["max"])
    features = dataset.features.copy()
    dropped = []
    for name in integer_lists:
        base = name.removeprefix("teacher_")
        if base == "token_type_ids" and low[name] in (0, None) and high[name] in (0, None):
            dropped.append(name)
            del features[name]
        else:
            features[name] = datasets.Sequence(datasets.Value(_smallest_int(low[name] or 0, high[name] or 0)))
    features[TEACHER_LOGITS_COLUMN] = datasets.Sequence(datasets.Value(logits_dtype))
    return features, dropped


def _chunks(dataset: datasets.Dataset, start: int, stop: int, padding: int, size: int) -> Iterator[tuple[dict, int]]:
    """Rows `start..stop` of `dataset`, then `padding` copies of its last row, in chunks of `size`: (chunk as Python
    lists, how many of its rows are real)."""
    last = dataset[len(dataset) - 1 : len(dataset)] if padding else None
    total = stop - start + padding
    for offset in range(0, total, size):
        real_stop = min(start + offset + size, stop)
        real = max(real_stop - (start + offset), 0)
        chunk = dataset[start + offset : real_stop] if real else {k: [] for k in dataset.column_names}
        extra = min(offset + size, total) - offset - real
        if extra:
            chunk = {k: list(v) + last[k] * extra for k, v in chunk.items()}
        yield chunk, real


def cache_teacher_logits(
    teacher_model: nn.Module,
    dataset: datasets.Dataset | datasets.DatasetDict,
    batch_size: int = 32,
    label_order: Sequence[int] | torch.Tensor | None = None,
    cache_dir: str | os.PathLike | None = None,
    accelerator: Any = None,
    map_batch_size: int = 1024,
    teacher_tokenizer: Any = None,
    logits_dtype: str = "float32",
) -> datasets.Dataset | datasets.DatasetDict:
    """Add the teacher's logits to a tokenized dataset as a `teacher_logits` column, in a compact on-disk store.

    The teacher reads `teacher_input_ids`/`teacher_attention_mask`/`teacher_token_type_ids` when present, else the
    student's `input_ids`/`attention_mask`/`token_type_ids` (only valid when both share a vocabulary; see
    `hf_kd.tokenize_for_distillation`). Rows are read from Arrow a chunk of `map_batch_size` at a time, sorted by
    length inside the chunk, run in batches of `batch_size` without gradients, and written at once: memory does not
    grow with the number of rows.

    Args:
        teacher_model (`nn.Module`):
            A sequence-classification teacher; it is put in eval mode and run on its own device.
        dataset (`datasets.Dataset` or `datasets.DatasetDict`):
            Tokenized examples. A `DatasetDict` is processed split by split.
        batch_size (`int`, *optional*, defaults to 32):
            Examples per teacher forward pass.
        label_order (`Sequence[int]` or `torch.Tensor`, *optional*):
            Teacher label index for each student label, when the two order their labels differently; the cached
            logits are then in the student's order.
        cache_dir (`str` or `os.PathLike`, *optional*):
            Folder of the stores (`teacher_logits-<fingerprint>/`, one per teacher and data). Defaults to the datasets
            cache folder of `dataset`; for an in-memory dataset, a temporary folder whose store is read into memory.
        accelerator (`accelerate.Accelerator` or `accelerate.PartialState`, *optional*):
            In a multi-process run, each process computes the logits of its contiguous 1/K of the examples (padded to
            equal lengths, so that a sharded teacher runs the same number of forward passes everywhere) and writes
            them to its own shard file; the main process then writes the store's index, and every process reads it.
            The folder must be one that all processes see.
        map_batch_size (`int`, *optional*, defaults to 1024):
            Examples per chunk; they are sorted by length inside it.
        teacher_tokenizer (`PreTrainedTokenizerBase`, *optional*):
            The teacher's tokenizer, added to the fingerprint (the token ids in the data already depend on it).
        logits_dtype (`str`, *optional*, defaults to `"float32"`):
            How the store keeps the logits, one of `hf_kd.constants.TEACHER_LOGITS_DTYPES`; `"float16"` halves
            that column (the collator hands them to the loss as float32 either way).

    Returns:
        The dataset with a `teacher_logits` column, memory-mapped from the store, its rows in their order.

    Raises:
        `ValueError`: For a `batch_size` below 1, an unknown `logits_dtype`, a dataset without token ids, or token
            ids outside the teacher's vocabulary.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size!r}.")
    if logits_dtype not in TEACHER_LOGITS_DTYPES:
        raise ValueError(f"`logits_dtype` must be one of {list(TEACHER_LOGITS_DTYPES)}, got {logits_dtype!r}.")
    if isinstance(dataset, datasets.DatasetDict):
        return datasets.DatasetDict(
            {
                split: cache_teacher_logits(
                    teacher_model,
                    ds,
                    batch_size,
                    label_order,
                    cache_dir,
                    accelerator,
                    map_batch_size,
                    teacher_tokenizer,
                    logits_dtype,
                )
                for split, ds in dataset.items()
            }
        )
    if TEACHER_LOGITS_COLUMN in dataset.column_names:
        dataset = dataset.remove_columns(TEACHER_LOGITS_COLUMN)
    columns = _input_columns(dataset)
    order = None if label_order is None else torch.as_tensor(list(map(int, label_order)), dtype=torch.long)
    teacher = extract_model_from_parallel(teacher_model)
    teacher.eval()
    fingerprint = _store_fingerprint(teacher, dataset, columns, order, batch_size, teacher_tokenizer, logits_dtype)
    processes = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    temporary = None
    if cache_dir is None:
        files = [f["filename"] for f in dataset.cache_files]
        if files:
            cache_dir = os.path.dirname(files[0])
        else:  # an in-memory dataset: a folder of the main process's, read back into memory, then removed
            temporary = cache_dir = _shared_temporary_folder(rank, processes)
    # The main process's name for the store: a dataset's fingerprint can differ between processes (a transform that
    # `datasets` cannot hash gets a random one), and all of them must write to, and read, the same store.
    store = Path(_from_main_process(str(Path(cache_dir) / f"teacher_logits-{fingerprint}"), processes))
    try:
        # The main process's view decides, the same on every process (and every process has heard it before any
        # writes to the store).
        complete = _from_main_process("1" if (store / _STATE_FILE).is_file() else "", processes) == "1"
        if not complete:
            features, dropped = _store_features(dataset, logits_dtype)
            inputs = [c for c in columns if c not in dropped]
            run = _teacher_runner(teacher, inputs, batch_size, order)
            _write_shard(dataset, run, inputs, features, store, rank, processes, map_batch_size)
            _barrier(processes)
            if rank == 0:
                _write_index(store, features, fingerprint, processes)
            _barrier(processes)
        cached = datasets.load_from_disk(str(store), keep_in_memory=temporary is not None)  # else memory-mapped
        release_pages_of([cached])  # what loading mapped in
    finally:
        if temporary is not None:
            _barrier(processes)
            if rank == 0:
                shutil.rmtree(temporary, ignore_errors=True)
    return cached


def _store_fingerprint(
    teacher: nn.Module,
    dataset: datasets.Dataset,
    columns: list[str],
    order: torch.Tensor | None,
    batch_size: int,
    teacher_tokenizer: Any,
    logits_dtype: str,
) -> str:
    """The store's key: the teacher's weights, the dataset, the columns it reads, the label order, the batch size,
    the teacher's tokenizer and (when not float32) the logits' dtype."""
    parts = [
        teacher_fingerprint(teacher),
        dataset._fingerprint,
        ",".join(columns),
        "" if order is None else ",".join(map(str, order.tolist())),
        str(batch_size),
        "" if teacher_tokenizer is None else _tokenizer_state(teacher_tokenizer),
    ]
    if logits_dtype != "float32":
        parts.append(logits_dtype)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _shared_temporary_folder(rank: int, processes: int) -> str:
    """A temporary folder made by the main process, whose path every process receives."""
    return _from_main_process(tempfile.mkdtemp(prefix="hf_kd_teacher_logits_") if rank == 0 else "", processes)


def _from_main_process(value: str, processes: int) -> str:
    """The main process's `value` (a path), on every process."""
    if processes == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return str(box[0])


def _teacher_runner(teacher: nn.Module, columns: list[str], batch_size: int, order: torch.Tensor | None) -> Any:
    """A function from a chunk of rows (a dict of lists) to the teacher's logits of each row, in the chunk's order."""
    device = next(teacher.parameters()).device
    vocab_size = getattr(getattr(teacher, "config", None), "vocab_size", None)
    pad_id = getattr(getattr(teacher, "config", None), "pad_token_id", None) or 0

    def run(batch: dict[str, list]) -> torch.Tensor | None:
        n = len(batch[columns[0]])
        lengths = [len(x) for x in batch[columns[0]]]
        logits: list[torch.Tensor | None] = [None] * n
        by_length = sorted(range(n), key=lambda i: lengths[i])
        for start in range(0, n, batch_size):
            idx = by_length[start : start + batch_size]
            width = max(lengths[i] for i in idx)
            inputs = {}
            for col in columns:
                pad = pad_id if col.endswith("input_ids") else 0
                rows = [list(batch[col][i]) + [pad] * (width - lengths[i]) for i in idx]
                inputs[col.removeprefix("teacher_")] = torch.tensor(rows, dtype=torch.long, device=device)
            if vocab_size is not None and int(inputs["input_ids"].max()) >= vocab_size:
                raise ValueError(
                    f"Token id {int(inputs['input_ids'].max())} is outside the teacher's vocabulary of {vocab_size}: "
                    "the teacher needs its own `teacher_input_ids` (see `hf_kd.tokenize_for_distillation`)."
                )
            if "attention_mask" not in inputs:
                inputs["attention_mask"] = torch.tensor(
                    [[1] * lengths[i] + [0] * (width - lengths[i]) for i in idx], device=device
                )
            with torch.no_grad():
                out = teacher(**inputs).logits.float().cpu()
            if order is not None:
                out = out[:, order]
            for row, i in enumerate(idx):
                logits[i] = out[row]
        return torch.stack(logits) if n else None  # type: ignore[arg-type]

    return run


def _shard_name(rank: int, processes: int) -> str:
    return f"data-{rank:05d}-of-{processes:05d}.arrow"


def _write_shard(
    dataset: datasets.Dataset,
    run: Any,
    inputs: list[str],
    features: datasets.Features,
    store: Path,
    rank: int,
    processes: int,
    chunk_size: int,
) -> None:
    """This process's contiguous 1/K of the rows, with their logits, to its own Arrow file, a chunk at a time. The
    teacher reads its `inputs` columns as Python lists; the rows are written from Arrow, cast to the store's types."""
    n = len(dataset)
    per = -(-n // processes)
    start, stop = min(rank * per, n), min((rank + 1) * per, n)
    padding = (per - (stop - start)) if n else 0
    store.mkdir(parents=True, exist_ok=True)
    path = store / _shard_name(rank, processes)
    partial = path.with_suffix(".arrow.partial")
    schema = features.arrow_schema
    kept = [c for c in features if c != TEACHER_LOGITS_COLUMN]
    rows = dataset.select_columns(kept).with_format("arrow")
    writer = ArrowWriter(features=features, path=str(partial))
    release = PageRelease([dataset])  # the pages read so far leave the resident memory as the pass goes
    progress = tqdm(
        total=stop - start + padding,
        unit=" rows",
        unit_scale=True,
        desc="Caching teacher logits",
        disable=rank != 0,
        smoothing=0.1,
    )
    pending: list[pa.Table] = []  # written in record batches of about 2 MiB (see `_RECORD_BATCH_BYTES`)
    try:
        with progress:
            first = start
            for chunk, real in _chunks(dataset.select_columns(inputs), start, stop, padding, chunk_size):
                logits = run(chunk)
                if real:
                    table = rows[first : first + real].cast(pa.schema([schema.field(c) for c in kept]))
                    values = pa.array(logits[:real].reshape(-1).numpy()).cast(
                        schema.field(TEACHER_LOGITS_COLUMN).type.value_type
                    )
                    table = table.append_column(
                        schema.field(TEACHER_LOGITS_COLUMN),
                        pa.ListArray.from_arrays(
                            pa.array(range(0, (real + 1) * logits.shape[1], logits.shape[1]), pa.int32()), values
                        ),
                    )
                    pending.append(table)
                    if sum(t.nbytes for t in pending) >= _RECORD_BATCH_BYTES:
                        _write_record_batch(writer, pending)
                    release.read(table.nbytes)
                    first += real
                progress.update(len(chunk[inputs[0]]))
        _write_record_batch(writer, pending)
        writer.finalize()
    finally:
        writer.close()
    os.replace(partial, path)


_RECORD_BATCH_BYTES = 2 << 20
"""The store's record batches hold about this much: loading an Arrow file reads every record batch's header, and the
kernel maps in the pages around each read, so that a file of small batches would be resident in full once loaded.
(Larger batches cost more memory to gather: 8 MiB added about 150 MB of resident memory to the pass, 2 MiB 20 MB.)"""


def _write_record_batch(writer: ArrowWriter, tables: list[pa.Table]) -> None:
    """`tables` (chunks of rows, in order) as one record batch, and `tables` emptied."""
    if tables:
        table = pa.concat_tables(tables)
        writer.write_table(table, writer_batch_size=table.num_rows)
        tables.clear()


def _write_index(store: Path, features: datasets.Features, fingerprint: str, processes: int) -> None:
    """The store's `dataset_info.json`, then `state.json` (last: a store with it is complete)."""
    info = datasets.DatasetInfo(features=features)
    with open(store / _INFO_FILE, "w", encoding="utf-8") as handle:
        json.dump(asdict(info), handle, indent=2)
    state = {
        "_data_files": [{"filename": _shard_name(rank, processes)} for rank in range(processes)],
        "_fingerprint": fingerprint,
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    }
    partial = store / (_STATE_FILE + ".partial")
    partial.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(partial, store / _STATE_FILE)


def _barrier(processes: int) -> None:
    if processes > 1:
        import torch.distributed as dist

        dist.barrier()


def _tokenizer_state(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return hashlib.sha256(backend.to_str().encode()).hexdigest()
    return hashlib.sha256(repr(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()
