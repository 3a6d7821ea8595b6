"""Run the teacher once and keep its logits as a dataset column.

`cache_teacher_logits` adds a `teacher_logits` column to a tokenized dataset, keyed on a fingerprint of the teacher
(its weights and its config), its tokenizer when given, the columns it reads, the label order and the data, so that a
cache file is reused for the same teacher and recomputed for a changed one. With K processes the pass is shared: each
process runs the teacher over its 1/K of the examples, the logits are gathered in order, and the main process writes
the one cache file the others then read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import datasets
import torch
from accelerate.utils import extract_model_from_parallel
from torch import nn

from ..constants import STUDENT_INPUT_COLUMNS, TEACHER_INPUT_COLUMNS, TEACHER_LOGITS_COLUMN

__all__ = ["cache_teacher_logits", "teacher_fingerprint"]


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


def cache_teacher_logits(
    teacher_model: nn.Module,
    dataset: datasets.Dataset | datasets.DatasetDict,
    batch_size: int = 32,
    label_order: Sequence[int] | torch.Tensor | None = None,
    cache_dir: str | os.PathLike | None = None,
    accelerator: Any = None,
    map_batch_size: int = 1024,
    teacher_tokenizer: Any = None,
) -> datasets.Dataset | datasets.DatasetDict:
    """Add the teacher's logits to a tokenized dataset as a `teacher_logits` column.

    The teacher reads `teacher_input_ids`/`teacher_attention_mask`/`teacher_token_type_ids` when present, else the
    student's `input_ids`/`attention_mask`/`token_type_ids` (only valid when both share a vocabulary; see
    `hf_kd.tokenize_for_distillation`). Examples are run in batches, without gradients, sorted by length within each
    chunk of `map_batch_size` examples so that little padding is computed.

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
            Folder for the cache files. Defaults to the datasets cache of `dataset` (none for in-memory datasets, in
            which case every call recomputes).
        accelerator (`accelerate.Accelerator` or `accelerate.PartialState`, *optional*):
            In a multi-process run, each process computes the logits of its contiguous 1/K of the examples (padded to
            equal lengths, so that a sharded teacher runs the same number of forward passes everywhere), the shards
            are gathered in order, and the main process writes the cache file before the others read it.
        map_batch_size (`int`, *optional*, defaults to 1024):
            Examples per chunk; they are sorted by length inside it.
        teacher_tokenizer (`PreTrainedTokenizerBase`, *optional*):
            The teacher's tokenizer, added to the fingerprint (the token ids in the data already depend on it).

    Returns:
        The dataset with a `teacher_logits` column (float32, one list per example).
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size!r}.")
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
    device = next(teacher.parameters()).device
    vocab_size = getattr(getattr(teacher, "config", None), "vocab_size", None)
    pad_id = getattr(getattr(teacher, "config", None), "pad_token_id", None) or 0

    fingerprint = hashlib.sha256(
        "|".join(
            [
                teacher_fingerprint(teacher),
                dataset._fingerprint,
                ",".join(columns),
                "" if order is None else ",".join(map(str, order.tolist())),
                str(batch_size),
                "" if teacher_tokenizer is None else _tokenizer_state(teacher_tokenizer),
            ]
        ).encode()
    ).hexdigest()[:32]

    def run_teacher(batch: dict[str, list]) -> dict[str, list]:
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
        return {TEACHER_LOGITS_COLUMN: [t.tolist() for t in logits]}

    features = dataset.features.copy()
    features["teacher_logits"] = datasets.Sequence(datasets.Value("float32"))
    cache_file_name = None
    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)
        cache_file_name = os.path.join(str(cache_dir), f"teacher_logits-{fingerprint}.arrow")
    processes = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    cached = cache_file_name is not None and os.path.isfile(cache_file_name)
    if processes > 1:
        cached = _gather(cached, processes)[0]  # the main process's view decides, the same on every process

    logits: list[list[float]] | None = None
    if not cached:
        n = len(dataset)
        per = -(-n // processes)
        indices = list(range(min(rank * per, n), min((rank + 1) * per, n)))
        padding = per - len(indices)
        shard = dataset.select(indices + [max(n - 1, 0)] * padding) if n else dataset
        part = shard.map(
            run_teacher, batched=True, batch_size=map_batch_size, keep_in_memory=True, desc="Caching teacher logits"
        )[TEACHER_LOGITS_COLUMN]
        part = list(part)[: len(indices)]
        logits = [row for piece in _gather(part, processes) for row in piece] if processes > 1 else part

    def assign(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        if logits is None:  # pragma: no cover - a cache file was expected
            raise RuntimeError(f"The teacher-logit cache file {cache_file_name!r} disappeared while it was read.")
        return {TEACHER_LOGITS_COLUMN: [logits[i] for i in indices]}

    def write() -> datasets.Dataset:
        return dataset.map(
            assign,
            batched=True,
            with_indices=True,
            features=features,
            new_fingerprint=fingerprint,
            cache_file_name=cache_file_name,
            load_from_cache_file=True,
            desc="Writing teacher logits",
        )

    if processes > 1:
        with accelerator.main_process_first():
            return write()
    return write()


def _gather(value: Any, processes: int) -> list[Any]:
    import torch.distributed as dist

    out: list[Any] = [None] * processes
    dist.all_gather_object(out, value)
    return out


def _tokenizer_state(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return hashlib.sha256(backend.to_str().encode()).hexdigest()
    return hashlib.sha256(repr(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()
