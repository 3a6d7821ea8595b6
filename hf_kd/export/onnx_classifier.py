"""Run an exported classifier (`hf-kd export`, `hf_kd.export.onnx.export_onnx`) with onnxruntime alone: predictions
from texts or tokenized splits, size on disk and latency. Nothing here reads PyTorch model code or logs example
text."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..constants import SHARED_CPU_ENV
from ..evaluation.model_stats import BYTES_PER_MB, time_batch
from ..evaluation.thresholds import predicted_labels

__all__ = ["EXPORT_FILE", "ONNX_FILE", "OnnxClassifier", "onnx_latency", "onnx_size_mb"]

ONNX_FILE = "model.onnx"
"""The exported model's file name."""
EXPORT_FILE = "hf_kd_export.json"
"""The export's description (task, labels, threshold, inputs, fused operators, versions)."""


class OnnxClassifier:
    """
    An exported classifier ([`~hf_kd.export.onnx.export_onnx`]) run with onnxruntime on CPU.

    Args:
        session (`onnxruntime.InferenceSession`):
            The session of `model.onnx`.
        tokenizer (`PreTrainedTokenizerBase`):
            The tokenizer saved beside it.
        info (`Mapping[str, Any]`):
            The content of `hf_kd_export.json`.
        config (`PretrainedConfig`, *optional*):
            The model's config (read by `hf_kd.evaluation.model_stats.measure_latency`).
    """

    def __init__(self, session: Any, tokenizer: Any, info: Mapping[str, Any], config: Any = None) -> None:
        self.session, self.tokenizer, self.info, self.config = session, tokenizer, dict(info), config
        self.input_names = [i.name for i in session.get_inputs()]

    @classmethod
    def from_pretrained(cls, folder: str | Path, num_threads: int | None = None) -> OnnxClassifier:
        """
        Load an export folder.

        Args:
            folder (`str` or `Path`):
                The folder [`~hf_kd.export.onnx.export_onnx`] wrote.
            num_threads (`int`, *optional*):
                onnxruntime's intra-op threads; defaults to its own choice (all cores).

        Returns:
            [`OnnxClassifier`]: The classifier.

        Raises:
            `ValueError`: When the folder lacks `model.onnx` or `hf_kd_export.json`.
        """
        import onnxruntime
        from transformers import AutoConfig, AutoTokenizer

        folder = Path(folder)
        for name in (ONNX_FILE, EXPORT_FILE):
            if not (folder / name).is_file():
                raise ValueError(f"{str(folder)!r} is not an hf-kd export: it has no {name!r} (see `hf-kd export`).")
        options = onnxruntime.SessionOptions()
        if os.environ.get(SHARED_CPU_ENV) == "1":  # `hf-kd --shared-cpu`: threads sleep instead of spinning
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
            num_threads = num_threads or int(os.environ.get("OMP_NUM_THREADS", "1"))
        if num_threads is not None:
            if num_threads < 1:
                raise ValueError(f"`num_threads` must be >= 1, got {num_threads}.")
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(folder / ONNX_FILE), sess_options=options, providers=["CPUExecutionProvider"]
        )
        info = json.loads((folder / EXPORT_FILE).read_text(encoding="utf-8"))
        return cls(session, AutoTokenizer.from_pretrained(folder), info, AutoConfig.from_pretrained(folder))

    @property
    def label_names(self) -> list[str]:
        """The label names, in id order."""
        return list(self.info["label_names"])

    @property
    def threshold(self) -> float:
        """The operating threshold of a multi-label or binary model (0.5 when none was saved)."""
        value = self.info.get("threshold")
        return 0.5 if value is None else float(value)

    def __call__(self, **inputs: Any) -> Any:
        """Logits (a `torch.Tensor`) of a batch of model inputs (tensors or arrays), like a transformers model."""
        feed = {}
        for name in self.input_names:
            value = inputs.get(name)
            if value is None:
                value = np.zeros_like(np.asarray(inputs["input_ids"]))
            feed[name] = np.asarray(value.cpu() if isinstance(value, torch.Tensor) else value, dtype=np.int64)
        return torch.from_numpy(self.session.run(["logits"], feed)[0])

    def logits(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """
        The logits of `texts`, tokenized like the model was trained (truncated to its maximum length).

        Args:
            texts (`Sequence[str]`):
                The texts.
            batch_size (`int`, *optional*, defaults to 32):
                Texts per run.

        Returns:
            `np.ndarray`: One row of logits per text.
        """
        if isinstance(texts, str):
            raise TypeError("`texts` must be a sequence of strings, not one string.")
        rows = []
        for start in range(0, len(texts), batch_size):
            encoded = self.tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=self.info.get("max_length"),
                return_tensors="np",
            )
            rows.append(self(**encoded).numpy())
        return np.concatenate(rows) if rows else np.zeros((0, len(self.label_names)), dtype=np.float32)

    def dataset_logits(self, dataset: Any, batch_size: int = 32) -> np.ndarray:
        """
        The logits of a tokenized split (`input_ids`, `attention_mask`, ... columns), padded per batch.

        Args:
            dataset (`datasets.Dataset`):
                The tokenized split.
            batch_size (`int`, *optional*, defaults to 32):
                Examples per run.

        Returns:
            `np.ndarray`: float64 logits, one row per example.
        """
        columns = [name for name in self.input_names if name in dataset.column_names]
        rows = []
        for start in range(0, len(dataset), batch_size):
            batch = dataset[start : start + batch_size]
            features = [{name: batch[name][i] for name in columns} for i in range(len(batch["input_ids"]))]
            padded = self.tokenizer.pad(features, padding=True, return_tensors="np")
            rows.append(self(**padded).numpy())
        return np.concatenate(rows).astype(np.float64)

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[Any]:
        """
        Label names of `texts`: one per text (single-label and binary; a binary model's positive label when its
        probability reaches the threshold), a list per text (multi-label, at the threshold), or a float (regression).

        Args:
            texts (`Sequence[str]`):
                The texts.
            batch_size (`int`, *optional*, defaults to 32):
                Texts per run.

        Returns:
            `list`: The predictions.
        """

        return predicted_labels(self.logits(texts, batch_size), self.info["task"], self.label_names, self.threshold)


def onnx_size_mb(folder: str | Path) -> float:
    """The size of an export's `model.onnx`, in MB of 10^6 bytes."""

    return Path(folder, ONNX_FILE).stat().st_size / BYTES_PER_MB


def onnx_latency(
    classifier: OnnxClassifier, batch_sizes: Sequence[int] = (1, 32), seq_len: int = 128, n_runs: int = 5
) -> dict[str, Any]:
    """
    Latency of an exported classifier on synthetic token ids, in the format of
    `hf_kd.evaluation.model_stats.measure_latency`.

    Args:
        classifier ([`OnnxClassifier`]):
            The exported classifier.
        batch_sizes (`Sequence[int]`, *optional*, defaults to `(1, 32)`):
            Batch sizes timed.
        seq_len (`int`, *optional*, defaults to 128):
            Tokens per sequence.
        n_runs (`int`, *optional*, defaults to 5):
            Timed runs per batch size (after 2 untimed ones); the median is reported.

    Returns:
        `dict[str, Any]`: `device`, `num_threads`, `seq_len`, `n_runs`, `inputs`, `runtime` and `per_batch_size`.
    """
    tokenizer = classifier.tokenizer
    generator = np.random.default_rng(0)
    low = max(tokenizer.all_special_ids) + 1
    length = min(seq_len, int(classifier.info.get("max_length") or seq_len))
    per_batch: dict[str, dict[str, Any]] = {}
    for size in batch_sizes:
        ids = generator.integers(low, len(tokenizer), size=(size, length), dtype=np.int64)
        if tokenizer.cls_token_id is not None:
            ids[:, 0] = tokenizer.cls_token_id
        if tokenizer.sep_token_id is not None:
            ids[:, -1] = tokenizer.sep_token_id
        batch = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        per_batch[str(size)] = time_batch(lambda batch=batch: classifier(**batch), size, n_warmup=2, n_runs=n_runs)
    threads = classifier.session.get_session_options().intra_op_num_threads
    return {
        "device": "cpu",
        "num_threads": threads or torch.get_num_threads(),
        "seq_len": length,
        "n_runs": n_runs,
        "inputs": "synthetic token ids",
        "runtime": "onnxruntime",
        "machine": platform.machine(),
        "per_batch_size": per_batch,
    }
