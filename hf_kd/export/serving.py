"""Serve an exported student with an existing engine: the folder's serving contract and a Triton model repository.

An `hf-kd export` folder is laid out as Hugging Face text-embeddings-inference (TEI, ONNX Runtime backend) and
optimum's `ORTModelForSequenceClassification` load it: `config.json` (architectures, labels, problem type, the
pruned vocabulary's size), `tokenizer.json` and `tokenizer_config.json`, and `model.onnx` with inputs `input_ids`,
`attention_mask` (`token_type_ids` when the model reads them) and the output `logits`, batch and sequence axes
dynamic. [`serving_contract_problems`] checks a folder against that contract; [`write_triton_repository`] lays the
same model out for NVIDIA Triton's onnxruntime backend. See the "Serve the student" guide.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .onnx_classifier import EXPORT_FILE, ONNX_FILE

__all__ = ["TRITON_MODEL_NAME", "serving_contract_problems", "triton_config", "write_triton_repository"]

TRITON_MODEL_NAME = "hf_kd_student"
"""The model's name in a Triton repository written by [`write_triton_repository`]."""
_REQUIRED_INPUTS = ("input_ids", "attention_mask")
_OPTIONAL_INPUTS = ("token_type_ids",)


def _dims(value: Any) -> list[Any]:
    shape = value.type.tensor_type.shape
    return [d.dim_param or d.dim_value for d in shape.dim]


def serving_contract_problems(folder: str | Path) -> list[str]:
    """
    What keeps an export folder from loading unchanged in TEI and optimum: an empty list when nothing does.

    Args:
        folder (`str` or `Path`):
            An `hf-kd export` folder.

    Returns:
        `list[str]`: One line per problem (a missing file or field, an input or output of another name, a fixed
        axis).
    """
    import onnx

    folder = Path(folder)
    problems = []
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", ONNX_FILE):
        if not (folder / name).is_file():
            problems.append(f"no {name}")
    if problems:
        return problems
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    for key in ("architectures", "id2label", "label2id", "problem_type", "vocab_size", "model_type"):
        if not config.get(key):
            problems.append(f"config.json has no {key}")
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    vocabulary = tokenizer.get("model", {}).get("vocab", {})
    size = len(vocabulary) + len({t["id"] for t in tokenizer.get("added_tokens", [])} - set(vocabulary.values()))
    if config.get("vocab_size") is not None and size > int(config["vocab_size"]):
        problems.append(f"tokenizer.json has {size} tokens, more than config.json's vocab_size {config['vocab_size']}")
    graph = onnx.load(str(folder / ONNX_FILE), load_external_data=False).graph
    inputs = {i.name: i for i in graph.input}
    for name in _REQUIRED_INPUTS:
        if name not in inputs:
            problems.append(f"model.onnx has no input {name}")
    for name in inputs:
        if name not in (*_REQUIRED_INPUTS, *_OPTIONAL_INPUTS):
            problems.append(f"model.onnx has an input {name!r} that the engines do not feed")
    outputs = {o.name: o for o in graph.output}
    if "logits" not in outputs:
        problems.append("model.onnx has no output logits")
    for name, value in [*inputs.items(), *outputs.items()]:
        dims = _dims(value)
        if name in inputs and (len(dims) != 2 or any(isinstance(d, int) and d > 0 for d in dims)):
            problems.append(f"model.onnx input {name} must have a dynamic batch and sequence axis, has {dims}")
        if name == "logits" and (not dims or isinstance(dims[0], int) and dims[0] > 0):
            problems.append(f"model.onnx output logits must have a dynamic batch axis, has {dims}")
    return problems


def triton_config(
    folder: str | Path,
    name: str = TRITON_MODEL_NAME,
    max_batch_size: int = 64,
    threads: int = 2,
    preferred_batch_sizes: tuple[int, ...] = (8, 32),
    max_queue_delay_microseconds: int = 2000,
) -> str:
    """
    The `config.pbtxt` of an export for Triton's onnxruntime backend, on CPU instances.

    Args:
        folder (`str` or `Path`):
            The export folder (its `hf_kd_export.json` gives the inputs and labels).
        name (`str`, *optional*, defaults to [`TRITON_MODEL_NAME`]):
            The model's name.
        max_batch_size (`int`, *optional*, defaults to 64):
            The largest batch Triton forms.
        threads (`int`, *optional*, defaults to 2):
            onnxruntime's intra-op threads per instance (inter-op: 1).
        preferred_batch_sizes (`tuple[int, ...]`, *optional*, defaults to `(8, 32)`):
            Dynamic batching's preferred sizes.
        max_queue_delay_microseconds (`int`, *optional*, defaults to 2000):
            How long a request waits for others to batch with.

    Returns:
        `str`: The configuration, in Triton's protobuf text format.
    """
    info = json.loads((Path(folder) / EXPORT_FILE).read_text(encoding="utf-8"))
    inputs = "\n".join(
        f'  {{ name: "{n}" data_type: TYPE_INT64 dims: [ -1 ] }}{"," if i < len(info["inputs"]) - 1 else ""}'
        for i, n in enumerate(info["inputs"])
    )
    labels = len(info["label_names"])
    preferred = ", ".join(str(s) for s in preferred_batch_sizes if s <= max_batch_size)
    return (
        f'name: "{name}"\n'
        'backend: "onnxruntime"\n'
        f"max_batch_size: {max_batch_size}\n"
        f"input [\n{inputs}\n]\n"
        f'output [\n  {{ name: "logits" data_type: TYPE_FP32 dims: [ {labels} ] label_filename: "labels.txt" }}\n]\n'
        f"dynamic_batching {{\n  preferred_batch_size: [ {preferred} ]\n"
        f"  max_queue_delay_microseconds: {max_queue_delay_microseconds}\n}}\n"
        "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
        f'parameters {{ key: "intra_op_thread_count" value: {{ string_value: "{threads}" }} }}\n'
        'parameters { key: "inter_op_thread_count" value: { string_value: "1" } }\n'
    )


def write_triton_repository(folder: str | Path, repository: str | Path, name: str = TRITON_MODEL_NAME) -> Path:
    """
    Write a Triton model repository for an export: `<repository>/<name>/config.pbtxt`, `labels.txt` (one label name
    per line, in id order), `1/model.onnx`, and the tokenizer and `hf_kd_export.json` beside them for the client
    (Triton's onnxruntime backend takes token ids).

    Args:
        folder (`str` or `Path`):
            The export folder.
        repository (`str` or `Path`):
            The repository folder (created).
        name (`str`, *optional*, defaults to [`TRITON_MODEL_NAME`]):
            The model's name.

    Returns:
        `Path`: The model's folder in the repository.

    Raises:
        `ValueError`: When `folder` is not an export.
    """
    folder = Path(folder)
    if not (folder / ONNX_FILE).is_file() or not (folder / EXPORT_FILE).is_file():
        raise ValueError(f"{str(folder)!r} is not an hf-kd export (no {ONNX_FILE} or {EXPORT_FILE}).")
    model_dir = Path(repository) / name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / ONNX_FILE, model_dir / "1" / ONNX_FILE)
    info = json.loads((folder / EXPORT_FILE).read_text(encoding="utf-8"))
    (model_dir / "labels.txt").write_text("".join(f"{n}\n" for n in info["label_names"]), encoding="utf-8")
    (model_dir / "config.pbtxt").write_text(triton_config(folder, name=name), encoding="utf-8")
    client = model_dir / "client"
    client.mkdir(exist_ok=True)
    for file in folder.iterdir():
        if file.is_file() and file.name != ONNX_FILE:
            shutil.copyfile(file, client / file.name)
    return model_dir
