"""Export a classifier for deployment: an ONNX model (optionally int8) with its tokenizer, labels and threshold.

[`export_onnx`] writes a folder that runs with onnxruntime alone (no PyTorch, no transformers model code):

- `model.onnx`: the classifier, traced with `torch.onnx.export(dynamo=True)`, dynamic batch size and sequence length,
  inputs `input_ids`, `attention_mask` (and `token_type_ids` when the model takes them), output `logits`; with
  `quantize="int8"`, its linear layers' weights are quantized to int8 (onnxruntime's dynamic quantization: int8
  weights, activations quantized on the fly), which is the usual CPU deployment of a BERT-family encoder;
- the tokenizer's files and `config.json` (label names in `id2label`, `problem_type`);
- `hf_kd_export.json`: the task (`single_label_classification`, `multi_label_classification`, `binary` or
  `regression`), the label names in id order, the operating threshold of a multi-label or binary model
  (`config.hf_kd_threshold`, saved by the pipeline), the tokenizer's maximum length, the inputs and the versions used.

[`OnnxClassifier`] loads such a folder and predicts label names from texts:

```python
from hf_kd.export import OnnxClassifier

classifier = OnnxClassifier.from_pretrained("student-onnx")
classifier.predict(["..."])          # label names (a list of them per text for a multi-label model)
```

The export needs the `export` extra (`pip install "hf_kd[export]"`: onnx, onnxruntime, onnxscript); nothing here
reads, logs or stores example text, and the model is loaded from safetensors without remote code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .constants import BINARY, MULTI_LABEL, REGRESSION, SINGLE_LABEL, STUDENT_INPUT_COLUMNS
from .evaluation import THRESHOLD_KEY
from .model_stats import time_batch

__all__ = ["EXPORT_FILE", "ONNX_FILE", "QUANTIZATIONS", "OnnxClassifier", "export_onnx", "export_student"]

ONNX_FILE = "model.onnx"
"""The exported model's file name."""
EXPORT_FILE = "hf_kd_export.json"
"""The export's description (task, labels, threshold, inputs, versions)."""
QUANTIZATIONS = (None, "int8")
"""The values of `quantize`: none (fp32) or int8 weights."""


def _require_onnx() -> None:
    missing = []
    for module in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ImportError(
            f"ONNX export needs {', '.join(missing)}: install the export extra (pip install 'hf_kd[export]')."
        )


def export_task(config: Any) -> str:
    """
    The task of a classifier, from its config: `binary` for a two-label single-label model with a saved threshold.

    Args:
        config (`PretrainedConfig`):
            The model's config.

    Returns:
        `str`: `single_label_classification`, `multi_label_classification`, `binary` or `regression`.
    """
    problem = getattr(config, "problem_type", None) or SINGLE_LABEL
    if problem == SINGLE_LABEL and int(config.num_labels) == 2 and getattr(config, THRESHOLD_KEY, None) is not None:
        return BINARY
    return problem


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's and the quantizer's advice (torchvision ops skipped, pre-processing hints)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class _Logits(torch.nn.Module):
    """The classifier with positional inputs and its logits as the single output (what ONNX tracing wants)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return self.model(**{k: v for k, v in inputs.items() if v is not None}, return_dict=True).logits


def export_onnx(
    model_dir: str | Path,
    output_dir: str | Path,
    quantize: str | None = None,
    opset: int = 18,
    tokenizer_dir: str | Path | None = None,
) -> dict[str, Any]:
    """
    Export the classifier saved in `model_dir` to an ONNX folder runnable with onnxruntime (see the module docstring).

    Args:
        model_dir (`str` or `Path`):
            A local folder with the classifier (safetensors) and, unless `tokenizer_dir` is given, its tokenizer.
        output_dir (`str` or `Path`):
            The folder to write (created; files of an earlier export are replaced).
        quantize (`str`, *optional*):
            `None` (fp32) or `"int8"` (int8 weights, onnxruntime dynamic quantization).
        opset (`int`, *optional*, defaults to 18):
            The ONNX opset.
        tokenizer_dir (`str` or `Path`, *optional*):
            Where the tokenizer is, when not in `model_dir`.

    Returns:
        `dict[str, Any]`: The content of `hf_kd_export.json`, plus `path` (the `model.onnx` file) and `size_mb`.

    Raises:
        `ValueError`: When `quantize` is not one of [`QUANTIZATIONS`] or `model_dir` is not a folder.
        `ImportError`: When onnx, onnxruntime or onnxscript is missing.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .model_stats import BYTES_PER_MB

    if quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` must be one of {list(QUANTIZATIONS)}, got {quantize!r}.")
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ValueError(f"`model_dir` must be a local folder with a saved classifier; {str(model_dir)!r} is not one.")
    _require_onnx()
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or model_dir)
    names = [n for n in tokenizer.model_input_names if n in STUDENT_INPUT_COLUMNS]
    if "token_type_ids" in names and not getattr(model.config, "type_vocab_size", 0):
        names.remove("token_type_ids")
    if "input_ids" not in names:
        names.insert(0, "input_ids")
    example = tokenizer(["a b c", "a"], padding=True, return_tensors="pt")
    sample = {name: example[name] if name in example else torch.zeros_like(example["input_ids"]) for name in names}
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    dynamic = {name: {0: batch, 1: sequence} for name in names}

    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    target = output / ONNX_FILE
    with tempfile.TemporaryDirectory(prefix="hf_kd_onnx_") as scratch, _quiet():
        fp32 = Path(scratch) / ONNX_FILE if quantize else target
        with torch.no_grad():
            program = torch.onnx.export(
                _Logits(model),
                (),
                kwargs=sample,
                input_names=names,
                output_names=["logits"],
                dynamic_shapes=dynamic,
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        program.save(str(fp32), external_data=False)
        if quantize == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8)
    tokenizer.save_pretrained(output)
    model.config.save_pretrained(output)
    config = model.config
    threshold = getattr(config, THRESHOLD_KEY, None)
    import onnxruntime

    info = {
        "format": "onnx",
        "quantize": quantize,
        "task": export_task(config),
        "label_names": [config.id2label[i] for i in range(config.num_labels)],
        "threshold": None if threshold is None else float(threshold),
        "max_length": int(min(tokenizer.model_max_length, getattr(config, "max_position_embeddings", 512))),
        "inputs": names,
        "opset": opset,
        "torch_version": torch.__version__,
        "onnxruntime_version": onnxruntime.__version__,
    }
    (output / EXPORT_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return {**info, "path": str(target), "size_mb": target.stat().st_size / BYTES_PER_MB}


class OnnxClassifier:
    """
    An exported classifier ([`export_onnx`]) run with onnxruntime on CPU.

    Args:
        session (`onnxruntime.InferenceSession`):
            The session of `model.onnx`.
        tokenizer (`PreTrainedTokenizerBase`):
            The tokenizer saved beside it.
        info (`Mapping[str, Any]`):
            The content of `hf_kd_export.json`.
        config (`PretrainedConfig`, *optional*):
            The model's config (read by `hf_kd.model_stats.measure_latency`).
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
                The folder [`export_onnx`] wrote.
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
        from .metrics import positive_scores, sigmoid

        logits = self.logits(texts, batch_size)
        names, task = self.label_names, self.info["task"]
        if task == MULTI_LABEL:
            chosen = sigmoid(logits) >= self.threshold
            return [[names[j] for j in np.flatnonzero(row)] for row in chosen]
        if task == BINARY:
            return [names[1] if p >= self.threshold else names[0] for p in positive_scores(logits)]
        if task == REGRESSION:
            return [float(v) for v in logits.reshape(len(logits), -1)[:, 0]]
        return [names[int(i)] for i in logits.argmax(axis=1)]


def onnx_size_mb(folder: str | Path) -> float:
    """The size of an export's `model.onnx`, in MB of 10^6 bytes."""
    from .model_stats import BYTES_PER_MB

    return Path(folder, ONNX_FILE).stat().st_size / BYTES_PER_MB


def onnx_latency(
    classifier: OnnxClassifier, batch_sizes: Sequence[int] = (1, 32), seq_len: int = 128, n_runs: int = 5
) -> dict[str, Any]:
    """
    Latency of an exported classifier on synthetic token ids, in the format of `hf_kd.model_stats.measure_latency`.

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


def export_student(run: Any, student_dir: str, folder: Path, threshold: float | None) -> dict[str, Any]:
    """
    The pipeline's `evaluation.export`: export the student to ONNX in `folder/export/`, and evaluate it through
    onnxruntime on the run's splits at the student's threshold.

    Args:
        run (`hf_kd.pipeline.PipelineRun`):
            The run.
        student_dir (`str`):
            The student's folder.
        folder (`Path`):
            The evaluation stage's folder.
        threshold (`float`, *optional*):
            The student's operating threshold (multi-label and binary tasks).

    Returns:
        `dict[str, Any]`: `metrics` (per split), `export` (what [`export_onnx`] wrote) and `classifier` (the loaded
        [`OnnxClassifier`]).
    """
    from .evaluation import evaluate_splits

    config = run.config.evaluation
    target = folder / "export"
    info = export_onnx(student_dir, target, quantize=None if config.export == "fp32" else config.export)
    classifier = OnnxClassifier.from_pretrained(target, num_threads=torch.get_num_threads())
    metrics, _ = evaluate_splits(
        classifier,
        run.student_tokenizer,
        run.student_evals,
        run.validation_split,
        run.task,
        run.label_names,
        config.threshold,
        folder / "tmp",
        config.batch_size,
        fixed_threshold=threshold,
    )
    return {"metrics": metrics, "export": info, "classifier": classifier}
