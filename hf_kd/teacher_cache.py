"""Run the teacher once and keep its logits as a dataset column.

`cache_teacher_logits` adds a `teacher_logits` column to a tokenized dataset. The work goes through `datasets.map`
with a fingerprint made of the teacher's weights, the columns it reads, the label order and the data, so that the
datasets cache reuses the result for the same teacher and recomputes it for a changed one. In a multi-process run the
main process computes and writes the cache, and the others read it.
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

__all__ = ["cache_teacher_logits", "teacher_fingerprint"]

_TEACHER_COLUMNS = ("teacher_input_ids", "teacher_attention_mask", "teacher_token_type_ids")
_STUDENT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


def teacher_fingerprint(teacher_model: nn.Module) -> str:
    """A SHA-256 digest of the teacher's parameters and buffers (names, dtypes, shapes and values).

    Args:
        teacher_model (`nn.Module`):
            The teacher.

    Returns:
        `str`: a hex digest that changes whenever any weight changes.
    """
    digest = hashlib.sha256()
    for name, tensor in extract_model_from_parallel(teacher_model).state_dict().items():
        tensor = tensor.detach().contiguous().cpu().reshape(-1)
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _input_columns(dataset: datasets.Dataset) -> list[str]:
    names = dataset.column_names
    if "teacher_input_ids" in names:
        return [c for c in _TEACHER_COLUMNS if c in names]
    if "input_ids" not in names:
        raise ValueError(
            "The dataset has neither `teacher_input_ids` nor `input_ids` columns; tokenize it first with "
            "`hf_kd.tokenize_for_distillation`."
        )
    return [c for c in _STUDENT_COLUMNS if c in names]


def cache_teacher_logits(
    teacher_model: nn.Module,
    dataset: datasets.Dataset | datasets.DatasetDict,
    batch_size: int = 32,
    label_order: Sequence[int] | torch.Tensor | None = None,
    cache_dir: str | os.PathLike | None = None,
    accelerator: Any = None,
    map_batch_size: int = 1024,
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
        accelerator (`accelerate.Accelerator`, *optional*):
            In a multi-process run, the main process computes first and the others then read its cache file.
        map_batch_size (`int`, *optional*, defaults to 1024):
            Examples per `datasets.map` call; they are sorted by length inside it.

    Returns:
        The dataset with a `teacher_logits` column (float32, one list per example).
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size!r}.")
    if isinstance(dataset, datasets.DatasetDict):
        return datasets.DatasetDict(
            {
                split: cache_teacher_logits(
                    teacher_model, ds, batch_size, label_order, cache_dir, accelerator, map_batch_size
                )
                for split, ds in dataset.items()
            }
        )
    if "teacher_logits" in dataset.column_names:
        dataset = dataset.remove_columns("teacher_logits")
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
        return {"teacher_logits": [t.tolist() for t in logits]}

    features = dataset.features.copy()
    features["teacher_logits"] = datasets.Sequence(datasets.Value("float32"))
    cache_file_name = None
    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)
        cache_file_name = os.path.join(str(cache_dir), f"teacher_logits-{fingerprint}.arrow")

    def compute() -> datasets.Dataset:
        return dataset.map(
            run_teacher,
            batched=True,
            batch_size=map_batch_size,
            features=features,
            new_fingerprint=fingerprint,
            cache_file_name=cache_file_name,
            desc="Caching teacher logits",
        )

    if accelerator is not None and accelerator.num_processes > 1:
        with accelerator.main_process_first():
            return compute()
    return compute()
