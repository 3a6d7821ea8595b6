"""Size and speed of a model: parameter count, size on disk (safetensors) and CPU latency on synthetic token ids.

No function here reads example text: latency batches are random token ids framed by the tokenizer's special tokens.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..constants import STUDENT_INPUT_COLUMNS

__all__ = [
    "BYTES_PER_MB",
    "CPU_FEATURES",
    "cpu_description",
    "interleaved_latency",
    "measure_latency",
    "model_size",
    "time_batch",
    "usable_positions",
]

BYTES_PER_MB = 1_000_000
"""Sizes are reported in megabytes of 10^6 bytes, as the Hugging Face Hub displays file sizes."""

CPU_FEATURES: tuple[str, ...] = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
"""The instruction sets that decide CPU speed, int8 speed above all (VNNI, AMX), as `/proc/cpuinfo` names them."""


def cpu_description() -> dict[str, Any]:
    """
    The CPU that timings and exports ran on: its model name, logical CPU count and which of [`CPU_FEATURES`] it has.

    Returns:
        `dict[str, Any]`: `model` (`platform.processor()` where `/proc/cpuinfo` is absent), `cpus` and `features`
        (None where they cannot be read).
    """
    model, flags = None, None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if model is None and line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif flags is None and line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                if model is not None and flags is not None:
                    break
    except OSError:
        pass
    return {
        "model": model or platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "features": None if flags is None else [f for f in CPU_FEATURES if f in flags],
    }


# Models whose position ids start after the padding index, so that `max_position_embeddings - pad_token_id - 1`
# positions are usable (RoBERTa and its descendants).
_OFFSET_POSITION_MODELS = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm")


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def usable_positions(config: Any) -> int | None:
    """
    The longest input a model's position embeddings take, from its config.

    Args:
        config (`PretrainedConfig`):
            The model's config.

    Returns:
        `int` or `None`: The number of tokens, or None when the config does not say.
    """
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit <= 0:
        return None
    if getattr(config, "model_type", None) in _OFFSET_POSITION_MODELS:
        limit -= (getattr(config, "pad_token_id", None) or 0) + 1
    return limit


def _input_spec(model: nn.Module, source: Any) -> tuple[list[str], int, list[int], int | None, int | None]:
    """Input names, vocabulary size, special ids, and first/last token ids of the synthetic sequences.

    `source` is a tokenizer (only its vocabulary size, input names and special-token ids are read: it never encodes
    text), a mapping of example inputs (only its keys are read), or `None` (everything comes from the model config).
    """
    config = getattr(model, "config", None)
    vocab_size = getattr(config, "vocab_size", None)
    special: list[int] = []
    first = last = None
    if source is None:
        import inspect

        try:
            accepted = set(inspect.signature(model.forward).parameters)
        except (TypeError, ValueError):
            accepted = {"input_ids"}
        names = [name for name in STUDENT_INPUT_COLUMNS if name in accepted]
        if "token_type_ids" in names and not getattr(config, "type_vocab_size", 0):
            names.remove("token_type_ids")
        for attribute in ("pad_token_id", "bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id"):
            value = getattr(config, attribute, None)
            if isinstance(value, int):
                special.append(value)
    elif isinstance(source, Mapping):
        names = [name for name in STUDENT_INPUT_COLUMNS if name in source]
        if "input_ids" not in names:
            raise ValueError(
                f"`tokenizer_or_example_inputs` must have an `input_ids` entry, got keys {sorted(map(str, source))}."
            )
    elif hasattr(source, "model_input_names") and hasattr(source, "all_special_ids"):
        names = [name for name in source.model_input_names if name in STUDENT_INPUT_COLUMNS]
        tokenizer_vocab = len(source)
        vocab_size = min(vocab_size, tokenizer_vocab) if isinstance(vocab_size, int) else tokenizer_vocab
        special = [int(i) for i in source.all_special_ids if i is not None]
        first = source.cls_token_id if source.cls_token_id is not None else source.bos_token_id
        last = source.sep_token_id if source.sep_token_id is not None else source.eos_token_id
    else:
        raise TypeError(
            "`tokenizer_or_example_inputs` must be a tokenizer, a mapping of example inputs or None, got "
            f"{type(source).__name__}."
        )
    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError("Cannot tell the vocabulary size: the model has no `config.vocab_size` and no tokenizer.")
    if "input_ids" not in names:
        names.insert(0, "input_ids")
    return names, vocab_size, special, first, last


def _synthetic_batch(
    names: list[str],
    vocab_size: int,
    special: list[int],
    first: int | None,
    last: int | None,
    batch_size: int,
    seq_len: int,
    device: torch.device,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """A batch of random token ids that avoid the low special ids, framed by the tokenizer's first/last tokens."""
    low_special = [i for i in special if 0 <= i < vocab_size // 2]
    low = max(low_special) + 1 if low_special else 0
    low = min(low, vocab_size - 1)
    input_ids = torch.randint(low, vocab_size, (batch_size, seq_len), generator=generator)
    if first is not None and 0 <= first < vocab_size:
        input_ids[:, 0] = first
    if last is not None and 0 <= last < vocab_size and seq_len > 1:
        input_ids[:, -1] = last
    batch = {"input_ids": input_ids}
    if "attention_mask" in names:
        batch["attention_mask"] = torch.ones_like(input_ids)
    if "token_type_ids" in names:
        batch["token_type_ids"] = torch.zeros_like(input_ids)
    return {name: tensor.to(device) for name, tensor in batch.items()}


def time_batch(
    call: Callable[[], Any],
    batch_size: int,
    n_warmup: int = 2,
    n_runs: int = 5,
    synchronize: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """
    Time one batch: `n_warmup` untimed calls, then the median of `n_runs` timed ones.

    Args:
        call (`Callable[[], Any]`):
            Runs the model once on the batch.
        batch_size (`int`):
            Examples in the batch, to report per-example figures.
        n_warmup (`int`, *optional*, defaults to 2):
            Untimed calls first.
        n_runs (`int`, *optional*, defaults to 5):
            Timed calls; the median is reported.
        synchronize (`Callable[[], Any]`, *optional*):
            Called before and after each timed call (e.g. `torch.cuda.synchronize`), so that queued work is counted.

    Returns:
        `dict[str, Any]`: `batch_size`, `ms_per_batch`, `ms_per_example`, `examples_per_s` and `runs_ms`.
    """
    runs = []
    for index in range(n_warmup + n_runs):
        if synchronize is not None:
            synchronize()
        start = time.perf_counter()
        call()
        if synchronize is not None:
            synchronize()
        if index >= n_warmup:
            runs.append(time.perf_counter() - start)
    median = max(statistics.median(runs), 1e-9)
    return {
        "batch_size": batch_size,
        "ms_per_batch": median * 1000.0,
        "ms_per_example": median * 1000.0 / batch_size,
        "examples_per_s": batch_size / median,
        "runs_ms": [run * 1000.0 for run in runs],
    }


def measure_latency(
    model: nn.Module,
    tokenizer_or_example_inputs: Any = None,
    batch_sizes: Sequence[int] = (1, 32),
    seq_len: int = 128,
    n_warmup: int = 2,
    n_runs: int = 5,
    num_threads: int | None = None,
) -> dict[str, Any]:
    """
    Inference latency per example and throughput of `model` at each batch size, on synthetic token ids.

    The batches are random token ids of length `seq_len` (clipped to what the model's position embeddings accept),
    with a full attention mask, so no real text is ever read. The model runs in eval mode under
    `torch.inference_mode()` on the device it is on (meant for CPU; CUDA is synchronized around each run), and its
    training mode is restored afterwards. Each batch size gets `n_warmup` untimed runs, then `n_runs` timed runs whose
    median is reported.

    Args:
        model (`nn.Module`):
            The classifier, called as `model(input_ids=..., attention_mask=..., [token_type_ids=...])`.
        tokenizer_or_example_inputs (`PreTrainedTokenizerBase` or `Mapping[str, Any]`, *optional*):
            A tokenizer, of which only the vocabulary size, `model_input_names` and special-token ids are read (the
            sequences start with its CLS/BOS token and end with its SEP/EOS token); or a mapping of example inputs, of
            which only the keys are read, to know whether to pass `attention_mask` / `token_type_ids`. Defaults to
            the inputs accepted by `model.forward` and the vocabulary size of `model.config`.
        batch_sizes (`Sequence[int]`, *optional*, defaults to `(1, 32)`):
            Batch sizes to time.
        seq_len (`int`, *optional*, defaults to 128):
            Sequence length of the synthetic batches, in tokens.
        n_warmup (`int`, *optional*, defaults to 2):
            Untimed runs before timing each batch size.
        n_runs (`int`, *optional*, defaults to 5):
            Timed runs per batch size; the median is reported.
        num_threads (`int`, *optional*):
            Number of intra-op CPU threads to time with (`torch.set_num_threads`, restored afterwards). Defaults to
            the current setting.

    Returns:
        `dict[str, Any]`: `device`, `num_threads` (`torch.get_num_threads()` during the timing), `seq_len` (as run),
        `n_warmup`, `n_runs`, `inputs` (`"synthetic token ids"`), `torch_version`, `machine`, and `per_batch_size`, a
        dict keyed by the batch size as a string (`"1"`, `"32"`, ...) of `{"batch_size", "ms_per_batch",
        "ms_per_example", "examples_per_s", "runs_ms"}`.
    """
    sizes = list(batch_sizes)
    if not sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
        raise ValueError(f"`batch_sizes` must be a non-empty sequence of positive integers, got {batch_sizes!r}.")
    if seq_len < 1:
        raise ValueError(f"`seq_len` must be >= 1, got {seq_len}.")
    if n_runs < 1 or n_warmup < 0:
        raise ValueError(f"`n_runs` must be >= 1 and `n_warmup` >= 0, got n_runs={n_runs}, n_warmup={n_warmup}.")
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"`num_threads` must be >= 1 when set, got {num_threads}.")

    names, vocab_size, special, first, last = _input_spec(model, tokenizer_or_example_inputs)
    max_positions = usable_positions(getattr(model, "config", None))
    length = min(seq_len, max_positions) if max_positions is not None else seq_len
    device = _model_device(model)
    generator = torch.Generator().manual_seed(0)

    previous_threads = torch.get_num_threads()
    was_training = model.training
    per_batch_size: dict[str, dict[str, Any]] = {}
    try:
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        threads = torch.get_num_threads()
        model.eval()
        with torch.inference_mode():
            for batch_size in sizes:
                batch = _synthetic_batch(
                    names, vocab_size, special, first, last, batch_size, length, device, generator
                )
                sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
                per_batch_size[str(batch_size)] = time_batch(
                    lambda batch=batch: model(**batch), batch_size, n_warmup, n_runs, synchronize=sync
                )
    finally:
        model.train(was_training)
        torch.set_num_threads(previous_threads)
    return {
        "device": str(device),
        "num_threads": threads,
        "seq_len": length,
        "n_warmup": n_warmup,
        "n_runs": n_runs,
        "inputs": "synthetic token ids",
        "torch_version": torch.__version__,
        "machine": platform.machine(),
        "cpu": cpu_description(),
        "per_batch_size": per_batch_size,
    }


def interleaved_latency(
    timers: Mapping[Any, Callable[[], Mapping[str, Any]]], rounds: int = 5
) -> dict[Any, dict[str, Any]]:
    """
    Time several models in interleaved rounds (A, B, C, A, B, C, ...), so that a slow spell of the machine falls on
    each of them alike and their ratios can be read round by round.

    Args:
        timers (`Mapping[Any, Callable[[], Mapping[str, Any]]]`):
            Name -> a call that times the model once, in the format of [`measure_latency`] (e.g. a
            `functools.partial` of it, or of `hf_kd.export.onnx_classifier.onnx_latency`). They run in this order in
            each round.
        rounds (`int`, *optional*, defaults to 5):
            Rounds.

    Returns:
        `dict[Any, dict[str, Any]]`: Per name, the first round's result with `rounds` added and, per batch size,
        `ms_per_example` (and `ms_per_batch`, `examples_per_s`) the median over the rounds, `rounds_ms_per_example`
        (each round's median, in order) and `runs_ms` (every timed run).

    Raises:
        `ValueError`: When `rounds` is below 1.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"`rounds` must be an integer >= 1, got {rounds!r}.")
    results: dict[Any, list[Mapping[str, Any]]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            results[name].append(timer())
    combined = {}
    for name, parts in results.items():
        merged = dict(parts[0])
        per_batch_size = {}
        for size, first in parts[0]["per_batch_size"].items():
            values = [float(part["per_batch_size"][size]["ms_per_example"]) for part in parts]
            median = statistics.median(values)
            per_batch_size[size] = {
                **first,
                "ms_per_batch": median * first["batch_size"],
                "ms_per_example": median,
                "examples_per_s": 1000.0 / median if median > 0 else math.inf,
                "rounds_ms_per_example": values,
                "runs_ms": [run for part in parts for run in part["per_batch_size"][size]["runs_ms"]],
            }
        merged.update(per_batch_size=per_batch_size, rounds=rounds)
        combined[name] = merged
    return combined


def _safetensors_files(folder: Path) -> list[Path]:
    # The layer projections of intermediate distillation are saved in checkpoints but are not part of the student.
    return sorted(p for p in folder.glob("*.safetensors") if p.name != "hf_kd_projections.safetensors")


def _count_safetensors_elements(files: Iterable[Path]) -> int:
    from safetensors import safe_open

    total = 0
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                total += math.prod(handle.get_slice(key).get_shape())
    return total


def model_size(model_or_dir: nn.Module | str | Path) -> dict[str, Any]:
    """
    Parameter count and size on disk of a model, as saved with safetensors.

    Given a model, it is saved to a temporary folder (`save_pretrained` for a `PreTrainedModel`,
    `safetensors.torch.save_model` otherwise) and the `*.safetensors` files are measured; the parameter count is that
    of the model's unique parameters (tied weights counted once). Given a folder, the size is the sum of its top-level
    `*.safetensors` files (all shards; `hf_kd_projections.safetensors` excluded) and the parameter count the number of
    elements of the tensors they hold, read from their headers.

    Args:
        model_or_dir (`nn.Module`, `str` or `Path`):
            A model, or a folder written by `save_pretrained`.

    Returns:
        `dict[str, Any]`: `parameters` (`int`), `size_bytes` (`int`) and `size_mb` (`float`, in MB of 10^6 bytes).
    """
    if isinstance(model_or_dir, nn.Module):
        model = model_or_dir
        parameters = sum(p.numel() for p in model.parameters())
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            if hasattr(model, "save_pretrained"):
                model.save_pretrained(folder)
            else:
                from safetensors.torch import save_model

                save_model(model, str(folder / "model.safetensors"))
            size_bytes = sum(f.stat().st_size for f in _safetensors_files(folder))
    else:
        folder = Path(model_or_dir)
        if not folder.is_dir():
            raise ValueError(f"`model_or_dir` must be a model or an existing folder, got {str(model_or_dir)!r}.")
        files = _safetensors_files(folder)
        if not files:
            raise ValueError(f"No *.safetensors file in {folder}.")
        size_bytes = sum(f.stat().st_size for f in files)
        parameters = _count_safetensors_elements(files)
    return {"parameters": int(parameters), "size_bytes": int(size_bytes), "size_mb": size_bytes / BYTES_PER_MB}
