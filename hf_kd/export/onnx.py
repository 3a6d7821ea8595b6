"""Export a classifier for deployment: an ONNX model (optionally int8) with its tokenizer, labels and threshold.

[`export_onnx`] writes a folder that runs with onnxruntime alone (no PyTorch, no transformers model code):

- `model.onnx`: the classifier with dynamic batch size and sequence length, inputs `input_ids`, `attention_mask`
  (and `token_type_ids` when the model takes them), output `logits`. It is traced with eager attention by the
  TorchScript exporter (`torch.onnx.export(dynamo=False)`), whose graph onnxruntime's transformer optimizer can fuse:
  attention into `Attention`, residual + LayerNorm into `SkipLayerNormalization`, the embeddings into
  `EmbedLayerNormalization` and bias + GELU into `BiasGelu` (exact erf GELU; the `dynamo=True` graph matches none of
  its attention patterns). The fused operators are counted in the saved graph. With `quantize="int8"` the linear
  layers and the attention are quantized to int8 by onnxruntime's dynamic quantization (int8 weights with one scale
  per output channel, activations quantized on the fly); `quantize="int8-static"` uses static quantization instead
  (QDQ, activation ranges calibrated on `calibration_texts`, on the unfused graph, which onnxruntime fuses when it
  loads it);
- the tokenizer's files and `config.json` (label names in `id2label`, `problem_type`);
- `hf_kd_export.json`: the task (`single_label_classification`, `multi_label_classification`, `binary` or
  `regression`), the label names in id order, the operating threshold of a multi-label or binary model
  (`config.hf_kd_threshold`, saved by the pipeline), the tokenizer's maximum length, the inputs and the versions used.

`hf_kd.export.onnx_classifier.OnnxClassifier` loads such a folder and predicts label names from texts:

```python
from hf_kd.export.onnx_classifier import OnnxClassifier

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
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..constants import EXPORT_FORMATS, STUDENT_INPUT_COLUMNS, problem_type_of_task, task_of_config
from ..evaluation.model_stats import BYTES_PER_MB, cpu_description
from ..evaluation.thresholds import saved_threshold
from ..training.model_files import named_load_errors
from .onnx_classifier import EXPORT_FILE, ONNX_FILE

__all__ = [
    "EXPORT_FILE",
    "FUSED_OPERATORS",
    "ONNX_FILE",
    "QUANTIZATIONS",
    "export_onnx",
    "fused_operator_counts",
]

QUANTIZATIONS = (None, *(f for f in EXPORT_FORMATS if f != "fp32"))
"""The values of `quantize`: none (fp32), dynamic int8 or static int8 (calibrated activation ranges)."""
FUSED_OPERATORS = (
    "Attention",
    "QAttention",
    "MultiHeadAttention",
    "SkipLayerNormalization",
    "EmbedLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
    "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul",
)
"""The fused (onnxruntime contrib) operators [`fused_operator_counts`] counts in an exported graph."""
# The architectures whose graphs onnxruntime's transformer optimizer fuses as `model_type="bert"`.
_BERT_LIKE = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert")


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
    """The classifier with positional inputs (in `names` order) and its logits as the single output (for tracing)."""

    def __init__(self, model: Any, names: Sequence[str]) -> None:
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs)), return_dict=True).logits


def fused_operator_counts(path: str | Path) -> dict[str, int]:
    """
    How many of each fused operator ([`FUSED_OPERATORS`]) an ONNX graph holds, read from the file.

    Args:
        path (`str` or `Path`):
            The `.onnx` file.

    Returns:
        `dict[str, int]`: Operator type -> count, for the types that occur.
    """
    import onnx

    found: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.op_type in FUSED_OPERATORS:
            found[node.op_type] = found.get(node.op_type, 0) + 1
    return dict(sorted(found.items()))


def _fuse(source: Path, target: Path, config: Any) -> bool:
    """Fuse a TorchScript-exported encoder with onnxruntime's transformer optimizer; False when it cannot."""
    if getattr(config, "model_type", None) not in _BERT_LIKE:
        return False
    from onnxruntime.transformers.optimizer import optimize_model

    # opt_level=0: the Python fusions only (exact GELU); onnxruntime applies its own when it loads the session.
    fused = optimize_model(
        str(source),
        model_type="bert",
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        opt_level=0,
    )
    fused.save_model_to_file(str(target))
    return True


class _Calibration:
    """onnxruntime's calibration reader over tokenized texts (static int8)."""

    def __init__(self, tokenizer: Any, texts: Sequence[str], names: Sequence[str], max_length: int) -> None:
        self.batches: list[dict[str, np.ndarray]] = []
        for start in range(0, len(texts), 16):
            encoded = tokenizer(
                list(texts[start : start + 16]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="np",
            )
            ids = encoded["input_ids"]
            self.batches.append({n: np.asarray(encoded.get(n, np.zeros_like(ids)), dtype=np.int64) for n in names})

    def get_next(self) -> dict[str, np.ndarray] | None:
        return self.batches.pop(0) if self.batches else None

    def rewind(self) -> None:  # pragma: no cover - onnxruntime may call it
        pass


def _quantize(source: Path, target: Path, quantize: str, calibration: _Calibration | None) -> None:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    # The fused operators are not ONNX ops: shape inference cannot type their outputs, which are float.
    options = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    if quantize == "int8":  # per-channel weight scales: measured closer to fp32 F1 than per-tensor (benchmarks)
        quantize_dynamic(
            str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, extra_options=options
        )
        return
    quantize_static(
        str(source),
        str(target),
        calibration,
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        extra_options=options,
    )


def export_onnx(
    model_dir: str | Path,
    output_dir: str | Path,
    quantize: str | None = None,
    opset: int = 17,
    tokenizer_dir: str | Path | None = None,
    calibration_texts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """
    Export the classifier saved in `model_dir` to an ONNX folder runnable with onnxruntime (see the module docstring).

    Args:
        model_dir (`str` or `Path`):
            A local folder with the classifier (safetensors) and, unless `tokenizer_dir` is given, its tokenizer.
        output_dir (`str` or `Path`):
            The folder to write (created; files of an earlier export are replaced).
        quantize (`str`, *optional*):
            `None` (fp32), `"int8"` (dynamic int8) or `"int8-static"` (static int8, needs `calibration_texts`).
        opset (`int`, *optional*, defaults to 17):
            The ONNX opset.
        tokenizer_dir (`str` or `Path`, *optional*):
            Where the tokenizer is, when not in `model_dir`.
        calibration_texts (`Sequence[str]`, *optional*):
            Texts whose activations calibrate static int8 (e.g. a few hundred training texts); read in memory only.

    Returns:
        `dict[str, Any]`: The content of `hf_kd_export.json` (with `fused_operators`, the fused operator counts of
        the saved graph), plus `path` (the `model.onnx` file) and `size_mb`.

    Raises:
        `ValueError`: When `quantize` is not one of [`QUANTIZATIONS`], static int8 has no calibration texts, or
            `model_dir` is not a folder.
        `ImportError`: When onnx, onnxruntime or onnxscript is missing.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` must be one of {list(QUANTIZATIONS)}, got {quantize!r}.")
    if quantize == "int8-static" and not calibration_texts:
        raise ValueError("`quantize='int8-static'` needs `calibration_texts` (e.g. a few hundred training texts).")
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ValueError(f"`model_dir` must be a local folder with a saved classifier; {str(model_dir)!r} is not one.")
    _require_onnx()
    model, tokenizer = _load_for_export(model_dir, tokenizer_dir)
    names = _graph_inputs(model, tokenizer)
    max_length = int(min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", 512)))
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    target = output / ONNX_FILE
    with tempfile.TemporaryDirectory(prefix="hf_kd_onnx_") as scratch, _quiet():
        traced, fused = Path(scratch) / "traced.onnx", Path(scratch) / "fused.onnx"
        _trace(model, tokenizer, names, traced, opset)
        # Static int8 is calibrated on the traced graph (standard ops; the quantizer cannot type the outputs of
        # fused contrib ops, so it would leave the activations in float); onnxruntime fuses its QDQ pairs at load.
        static = quantize == "int8-static"
        graph = fused if not static and _fuse(traced, fused, model.config) else traced
        if quantize is None:
            shutil.copyfile(graph, target)
        else:
            calibration = None
            if static:
                calibration = _Calibration(tokenizer, list(calibration_texts or []), names, max_length)
            _quantize(graph, target, quantize, calibration)
    tokenizer.save_pretrained(output)
    config = model.config
    # The serving engines (TEI, optimum) read the head's task from config.json: written even where training left it
    # unset (a single-label head), as the task hf-kd reads from the config (`task_of_config`).
    config.problem_type = problem_type_of_task(task_of_config(config))
    config.save_pretrained(output)
    info = _export_record(config, quantize, max_length, names, opset, target)
    (output / EXPORT_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return {**info, "path": str(target), "size_mb": target.stat().st_size / BYTES_PER_MB}


def _load_for_export(model_dir: Path, tokenizer_dir: str | Path | None) -> tuple[Any, Any]:
    """The classifier (safetensors, eager attention: the traceable one) and its tokenizer, with named load errors."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    with named_load_errors(model_dir, f"the model at {str(model_dir)!r}"):
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, use_safetensors=True, attn_implementation="eager"
        ).eval()
    with named_load_errors(tokenizer_dir or model_dir, "the tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or model_dir)
    return model, tokenizer


def _graph_inputs(model: Any, tokenizer: Any) -> list[str]:
    """The graph's inputs: the tokenizer's model inputs the student reads (`token_type_ids` only when the model has
    token types), `input_ids` first."""
    names = [n for n in tokenizer.model_input_names if n in STUDENT_INPUT_COLUMNS]
    if "token_type_ids" in names and not getattr(model.config, "type_vocab_size", 0):
        names.remove("token_type_ids")
    if "input_ids" not in names:
        names.insert(0, "input_ids")
    return names


def _trace(model: Any, tokenizer: Any, names: list[str], path: Path, opset: int) -> None:
    """The model traced to ONNX (TorchScript exporter) with dynamic batch and sequence axes."""
    example = tokenizer(["a b c", "a"], padding=True, return_tensors="pt")
    sample = tuple(example[name] if name in example else torch.zeros_like(example["input_ids"]) for name in names)
    with torch.no_grad():
        torch.onnx.export(
            _Logits(model, names),
            sample,
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in names},
            opset_version=opset,
            dynamo=False,
        )


def _export_record(
    config: Any, quantize: str | None, max_length: int, names: list[str], opset: int, target: Path
) -> dict[str, Any]:
    """What `hf_kd_export.json` records: the task, labels, threshold and limits the graph is served with, and how and
    where it was built."""
    import onnxruntime

    threshold = saved_threshold(config)
    return {
        "format": "onnx",
        "quantize": quantize,
        "task": task_of_config(config),
        "label_names": [config.id2label[i] for i in range(config.num_labels)],
        "threshold": None if threshold is None else float(threshold),
        "max_length": max_length,
        "inputs": names,
        "opset": opset,
        "exporter": "torch.onnx (TorchScript) + onnxruntime transformer optimizer",
        "fused_operators": fused_operator_counts(target),
        "torch_version": torch.__version__,
        "onnxruntime_version": onnxruntime.__version__,
        "built_on_cpu": cpu_description(),  # dynamic int8 speed depends on the CPU that runs it (VNNI, AMX)
    }
