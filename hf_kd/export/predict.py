"""`hf-kd predict`: classify files of notes with a saved student (PyTorch) or an export (ONNX), in bounded memory.

[`predict_files`] streams the rows of CSV, TSV, JSON Lines, JSON or Parquet files in chunks (never a whole file in
memory), tokenizes each chunk, runs it in batches of similar length, and writes each chunk's predictions to a part
file as soon as it is done (written under a temporary name, then renamed). When every chunk is done the parts are
joined, in input order, into the output (JSON Lines, CSV or Parquet, chosen by its extension), and the parts are
removed. A run that stops midway (a crash, a kill) is resumed by running the same command: the chunks already written
are skipped, so no row is predicted twice or left out. Under `accelerate launch` every process takes every K-th chunk
and the main process joins the parts.

Each output row holds the row's id (the file's id column, or its position in the file), the prediction (a label name,
a list of names for a multi-label model, a value for regression), each label's probability (softmax, sigmoid), and
the logits on request; never the text. Multi-label and binary predictions use the threshold saved with the model.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..constants import MULTI_LABEL, REGRESSION, task_of_config
from ..data.streaming import INPUT_FORMATS, file_columns, read_chunks
from ..evaluation.numeric import sigmoid, softmax
from ..evaluation.tasks import task_type
from ..evaluation.thresholds import (
    predicted_labels,  # imported here: not inside the timed loop (scikit-learn)
    saved_threshold,
)
from ..processes import barrier, start_state, state
from ..training.model_files import named_load_errors

__all__ = [
    "OUTPUT_FORMATS",
    "Predictor",
    "predict_files",
    "prediction_records",
    "write_records",
]

OUTPUT_FORMATS = (".jsonl", ".csv", ".parquet")
"""The output files it writes, by extension."""
ROW_KEY = "row"
"""The output's id field when the input has no id column: the row's 0-based position in its file."""


# ---------------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------------


class Predictor:
    """
    A saved classifier, PyTorch or exported ONNX, with what predicting needs: tokenizer, task, labels, threshold.

    Args:
        run (`Callable`):
            Maps a batch of model inputs (`dict` of int64 arrays) to logits (`np.ndarray`).
        tokenizer (`PreTrainedTokenizerBase`):
            The model's tokenizer.
        task (`str`):
            The task (`hf_kd.constants.TASK_TYPES`).
        label_names (`list[str]`):
            The label names in id order.
        threshold (`float`, *optional*):
            The operating threshold of a multi-label or binary model.
        max_length (`int`):
            The truncation length.
        input_names (`list[str]`):
            The inputs the model reads.
        kind (`str`):
            `"onnx"` or `"pytorch"`.
    """

    def __init__(
        self,
        run: Any,
        tokenizer: Any,
        task: str,
        label_names: list[str],
        threshold: float | None,
        max_length: int,
        input_names: list[str],
        kind: str,
    ) -> None:
        self.run, self.tokenizer, self.task, self.label_names = run, tokenizer, task, label_names
        self.threshold, self.max_length, self.input_names, self.kind = threshold, max_length, input_names, kind

    @classmethod
    def from_pretrained(cls, folder: str | Path, num_threads: int | None = None, device: Any = None) -> Predictor:
        """
        Load an export folder (`model.onnx` and `hf_kd_export.json`) or a saved classifier (safetensors).

        Args:
            folder (`str` or `Path`):
                The folder.
            num_threads (`int`, *optional*):
                onnxruntime's intra-op threads (ONNX), or torch's (PyTorch); their defaults when unset.
            device (`torch.device`, *optional*):
                Where a PyTorch model runs (the CPU by default).

        Returns:
            [`Predictor`]: The model.

        Raises:
            `ValueError`: When the folder is neither, or its config names no labels.
        """
        from .onnx_classifier import EXPORT_FILE, ONNX_FILE, OnnxClassifier

        folder = Path(folder)
        if (folder / ONNX_FILE).is_file() and (folder / EXPORT_FILE).is_file():
            onnx = OnnxClassifier.from_pretrained(folder, num_threads=num_threads)
            names = [str(n) for n in onnx.info.get("label_names") or []]
            _check_labels(folder, names, onnx.info.get("task"))
            threshold = onnx.info.get("threshold")
            max_length = int(onnx.info.get("max_length") or onnx.tokenizer.model_max_length)

            def run_onnx(batch: dict[str, np.ndarray]) -> np.ndarray:
                return onnx(**batch).numpy()

            return cls(
                run_onnx, onnx.tokenizer, onnx.info["task"], names, threshold, max_length, onnx.input_names, "onnx"
            )
        if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
            raise ValueError(
                f"{str(folder)!r} is neither an hf-kd export (model.onnx + hf_kd_export.json) nor a saved classifier "
                "(config.json + model.safetensors)."
            )
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if num_threads is not None:
            torch.set_num_threads(num_threads)

        with named_load_errors(folder, f"the model at {str(folder)!r}"):
            model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True).eval()
        if device is not None:
            model.to(device)
        config = model.config
        names = [str(config.id2label[i]) for i in range(config.num_labels)]
        task = task_of_config(config)
        _check_labels(folder, names, task)
        with named_load_errors(folder, f"the tokenizer at {str(folder)!r}"):
            tokenizer = AutoTokenizer.from_pretrained(folder)
        positions = int(getattr(config, "max_position_embeddings", 512))
        limit = tokenizer.model_max_length if tokenizer.model_max_length <= 1_000_000 else positions
        inputs = [n for n in tokenizer.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids")]
        model_device = next(model.parameters()).device

        def run_torch(batch: dict[str, np.ndarray]) -> np.ndarray:
            with torch.inference_mode():
                tensors = {k: torch.from_numpy(v).to(model_device) for k, v in batch.items()}
                return model(**tensors).logits.float().cpu().numpy()

        threshold = saved_threshold(config)
        return cls(run_torch, tokenizer, task, names, threshold, int(min(limit, positions)), inputs, "pytorch")

    def warm_up(self, batch_size: int = 64) -> None:
        """
        Run the model on a few batches of dummy token ids at growing lengths (up to `max_length`), so that the
        runtime's first-run costs (allocations, kernel choices) are paid before the rows are timed.

        Args:
            batch_size (`int`, *optional*, defaults to 64):
                The batch size the rows will run at.
        """
        for length in sorted({min(8, self.max_length), min(32, self.max_length), self.max_length}):
            batch = {name: np.ones((batch_size, length), dtype=np.int64) for name in self.input_names}
            if "token_type_ids" in batch:
                batch["token_type_ids"][:] = 0
            self.run(batch)

    def logits(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """
        The logits of `texts`, run in batches of similar length (sorted by token count, then put back in order).

        Args:
            texts (`Sequence[str]`):
                The texts.
            batch_size (`int`, *optional*, defaults to 64):
                Texts per run.

        Returns:
            `np.ndarray`: One row per text, in the order of `texts`.
        """
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        lengths = np.array([len(ids) for ids in encoded["input_ids"]])
        order = np.argsort(lengths, kind="stable")
        out: np.ndarray | None = None
        pad_id = self.tokenizer.pad_token_id or 0
        for start in range(0, len(order), batch_size):
            picked = order[start : start + batch_size]
            width = int(lengths[picked].max())
            batch = {}
            for name in self.input_names:
                column = encoded.get(name)
                fill = pad_id if name == "input_ids" else 0
                array = np.full((len(picked), width), fill, dtype=np.int64)
                if column is not None:
                    for row, index in enumerate(picked):
                        values = column[index]
                        array[row, : len(values)] = values
                batch[name] = array
            logits = np.asarray(self.run(batch), dtype=np.float32)
            if out is None:
                out = np.zeros((len(texts), logits.shape[1]), dtype=np.float32)
            out[picked] = logits
        return out if out is not None else np.zeros((0, len(self.label_names)), dtype=np.float32)


def _check_labels(folder: Path, names: list[str], task: str | None) -> None:
    if task is not None and not task_type(task).classifier:
        return
    if not names or all(name == f"LABEL_{i}" for i, name in enumerate(names)):
        raise ValueError(
            f"{str(folder)!r} has no label names (its config's id2label is missing or the default LABEL_0...): "
            "predictions would name no label. Use a student saved by `hf-kd distill`, or set id2label."
        )


# ---------------------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------------------


def probabilities(logits: np.ndarray, task: str) -> np.ndarray:
    """
    Each label's probability: softmax over the classes (single-label, two-logit binary), sigmoid per label
    (multi-label, one-logit binary: then the negative class gets `1 - p`).

    Args:
        logits (`np.ndarray`):
            The logits, one row per example.
        task (`str`):
            The task.

    Returns:
        `np.ndarray`: One row of probabilities per example, one column per label (the logits themselves for
        regression).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if task == MULTI_LABEL:
        return sigmoid(logits)
    if task == REGRESSION:
        return logits
    if logits.shape[1] == 1:  # a one-logit binary head
        positive = sigmoid(logits[:, 0])
        return np.stack([1 - positive, positive], axis=1)
    return softmax(logits, axis=1)


def prediction_records(
    logits: np.ndarray,
    task: str,
    label_names: Sequence[str],
    threshold: float | None,
    ids: Sequence[Any],
    id_key: str = ROW_KEY,
    with_logits: bool = False,
) -> list[dict[str, Any]]:
    """
    One output record per row: its id, the prediction, each label's probability, and the logits when asked.

    Args:
        logits (`np.ndarray`):
            The logits, one row per example.
        task (`str`):
            The task.
        label_names (`Sequence[str]`):
            The label names in id order.
        threshold (`float`, *optional*):
            The operating threshold of a multi-label or binary model (0.5 when None).
        ids (`Sequence[Any]`):
            Each row's id.
        id_key (`str`, *optional*, defaults to `"row"`):
            The id's field name (the input's id column, or `"row"`).
        with_logits (`bool`, *optional*, defaults to `False`):
            Add the logits.

    Returns:
        `list[dict[str, Any]]`: `{id_key, "prediction", "probabilities": {label: p}}` (regression: no
        probabilities), plus `"logits"`.
    """
    predictions = predicted_labels(logits, task, list(label_names), threshold)
    probs = probabilities(logits, task)
    classifier = task_type(task).classifier
    records = []
    for i, (row_id, prediction) in enumerate(zip(ids, predictions)):
        record: dict[str, Any] = {id_key: row_id, "prediction": prediction}
        if classifier:
            record["probabilities"] = {name: round(float(p), 6) for name, p in zip(label_names, probs[i])}
        if with_logits:
            record["logits"] = [round(float(v), 6) for v in logits[i]]
        records.append(record)
    return records


def _flat(record: dict[str, Any], task: str, label_names: Sequence[str], nested: bool) -> dict[str, Any]:
    """A record as flat columns (CSV, Parquet): `p_<label>` and `logit_<label>` per label."""
    flat = {k: v for k, v in record.items() if k not in ("probabilities", "logits", "prediction")}
    prediction = record["prediction"]
    flat["prediction"] = prediction if nested or task != MULTI_LABEL else "|".join(prediction)
    for name, p in record.get("probabilities", {}).items():
        flat[f"p_{name}"] = p
    for name, value in zip(label_names, record.get("logits", [])):
        flat[f"logit_{name}"] = value
    return flat


def write_records(path: Path, records: list[dict[str, Any]], task: str, label_names: Sequence[str]) -> None:
    """
    Write prediction records ([`prediction_records`]) as JSON Lines (UTF-8), CSV or Parquet, chosen by the file's
    extension; under a temporary name, then renamed, so that a file on disk is always complete.

    Args:
        path (`Path`):
            The file (`.jsonl`, `.csv` or `.parquet`).
        records (`list[dict[str, Any]]`):
            The records.
        task (`str`):
            The task (a multi-label prediction is `|`-joined in CSV).
        label_names (`Sequence[str]`):
            The label names in id order (the `logit_<label>` columns).
    """
    temporary = path.with_name(path.name + ".tmp")
    suffix = path.suffix
    if suffix == ".jsonl":
        with open(temporary, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    elif suffix == ".csv":
        rows = [_flat(r, task, label_names, nested=False) for r in records]
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [_flat(r, task, label_names, nested=True) for r in records]
        pq.write_table(pa.Table.from_pylist(rows), temporary)
    os.replace(temporary, path)


def _join_parts(parts: list[Path], output: Path) -> None:
    """Join the parts, in order, into `output` (written under a temporary name, then renamed)."""
    temporary = output.with_name(output.name + ".tmp")
    if output.suffix == ".parquet":
        import pyarrow.parquet as pq

        writer = None
        try:
            for part in parts:
                table = pq.read_table(part)
                if writer is None:
                    writer = pq.ParquetWriter(temporary, table.schema)
                writer.write_table(table.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()
    else:
        with open(temporary, "wb") as out:
            for index, part in enumerate(parts):
                with open(part, "rb") as handle:
                    if output.suffix == ".csv" and index > 0:
                        handle.readline()  # the header, written once
                    shutil.copyfileobj(handle, out)
    os.replace(temporary, output)


# ---------------------------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------------------------


def _identity(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _model_identity(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(folder.iterdir()):
        if file.is_file():
            digest.update(json.dumps(_identity(file)).encode())
    return digest.hexdigest()[:16]


def predict_files(
    model: str | Path,
    files: Sequence[str | Path],
    output: str | Path,
    text_column: str = "text",
    id_column: str | None = None,
    batch_size: int = 64,
    chunk_rows: int = 4096,
    with_logits: bool = False,
    overwrite: bool = False,
    num_threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """
    Predict every row of `files` with the model in `model`, and write `output` (see the module docstring).

    Args:
        model (`str` or `Path`):
            An export folder (`hf-kd export`) or a saved classifier folder (e.g. a run's `student/model`).
        files (`Sequence[str | Path]`):
            The input files ([`INPUT_FORMATS`]); their rows are predicted in order.
        output (`str` or `Path`):
            The output file ([`OUTPUT_FORMATS`]).
        text_column (`str`, *optional*, defaults to `"text"`):
            The column the model reads.
        id_column (`str`, *optional*):
            The column whose value identifies a row in the output; by default `id` when every file has it, else the
            row's position in its file (`row`).
        batch_size (`int`, *optional*, defaults to 64):
            Rows per model run (rows of similar length are batched together).
        chunk_rows (`int`, *optional*, defaults to 4096):
            Rows read, predicted and written at a time: the memory bound, and the unit of resumption.
        with_logits (`bool`, *optional*, defaults to `False`):
            Also write the logits.
        overwrite (`bool`, *optional*, defaults to `False`):
            Replace an existing `output`.
        num_threads (`int`, *optional*):
            Threads of the runtime (onnxruntime or torch).
        progress (`bool`, *optional*, defaults to `True`):
            Show a progress bar (rows and rows per second) on the main process.

    Returns:
        `dict[str, Any]`: `output`, `rows`, `chunks`, `resumed_chunks` (skipped because already written), `model`
        (`onnx` or `pytorch`), `task`, `id` (the id field) and `seconds` (reading, predicting, writing and joining the
        parts; the model's loading and warm-up left out).

    Raises:
        `ValueError`: For an unknown format, a missing column, an empty file, a model folder without labels, an
            existing output without `overwrite`, or parts of another run left beside the output.
    """
    output, paths = Path(output), [Path(f) for f in files]
    _check_inputs(paths, output, text_column, id_column, chunk_rows, batch_size, overwrite)
    start_state()  # several processes under `accelerate launch` on a CPU machine, one otherwise
    process = state()
    predictor = Predictor.from_pretrained(model, num_threads=num_threads, device=process.device)
    id_key = id_column or ROW_KEY
    if id_column is None and all("id" in file_columns(p) for p in paths):
        id_key = "id"
    ext = output.suffix.lower()
    parts_dir = output.with_name(output.name + ".parts")
    manifest = {
        "inputs": [_identity(p) for p in paths],
        "model": _model_identity(Path(model)),
        "text_column": text_column,
        "id": id_key,
        "chunk_rows": chunk_rows,
        "with_logits": with_logits,
        "format": ext,
    }
    if process.is_main_process:
        _open_parts(parts_dir, manifest)
    barrier()
    predictor.warm_up(batch_size)
    started = time.perf_counter()
    rows, resumed, part_names = _predict_parts(
        predictor, paths, parts_dir, ext, text_column, id_key, chunk_rows, batch_size, with_logits, progress
    )
    barrier()
    if process.is_main_process:
        missing = [p.name for p in part_names if not p.is_file()]
        if missing:
            raise ValueError(f"{len(missing)} parts were not written (first: {missing[0]}); rerun to finish them.")
        _join_parts(part_names, output)
        shutil.rmtree(parts_dir)
    barrier()
    seconds = time.perf_counter() - started
    return {
        "output": str(output),
        "rows": rows,
        "chunks": len(part_names),
        "resumed_chunks": resumed,
        "model": predictor.kind,
        "task": predictor.task,
        "id": id_key,
        "seconds": round(seconds, 3),
    }


def _check_inputs(
    paths: list[Path],
    output: Path,
    text_column: str,
    id_column: str | None,
    chunk_rows: int,
    batch_size: int,
    overwrite: bool,
) -> None:
    """Refuse an unknown format, a missing file or column, an empty file or an existing output, before any model
    is loaded."""
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise ValueError(f"--output {str(output)!r}: write {', '.join(OUTPUT_FORMATS)} (chosen by the extension).")
    if not paths:
        raise ValueError("Give at least one file to predict.")
    if chunk_rows < 1 or batch_size < 1:
        raise ValueError(f"`chunk_rows` and `batch_size` must be >= 1, got {chunk_rows} and {batch_size}.")
    for path in paths:
        if path.suffix.lower() not in INPUT_FORMATS:
            raise ValueError(f"{str(path)!r}: `hf-kd predict` reads {', '.join(INPUT_FORMATS)} files.")
        if not path.is_file():
            raise ValueError(f"{str(path)!r} does not exist.")
        columns = file_columns(path)
        if not columns:
            raise ValueError(f"{str(path)!r} has no rows to predict.")
        for column in (text_column, *([id_column] if id_column else [])):
            if column not in columns:
                raise ValueError(f"{str(path)!r} has no column {column!r}; its columns are {columns}.")
    if output.exists() and not overwrite:
        raise ValueError(f"{str(output)!r} exists; pass --overwrite to replace it.")


def _open_parts(parts_dir: Path, manifest: dict[str, Any]) -> None:
    """Create the parts folder, or resume one left by the same command (same inputs, model and options)."""
    manifest_file = parts_dir / "manifest.json"
    if parts_dir.is_dir() and manifest_file.is_file():
        try:
            previous = json.loads(manifest_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            previous = None
        if previous != manifest:
            raise ValueError(
                f"{str(parts_dir)!r} holds the parts of a run with other inputs, model or options: delete it to "
                "start over, or rerun that command to finish it."
            )
    parts_dir.mkdir(parents=True, exist_ok=True)
    manifest_file.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _predict_parts(
    predictor: Predictor,
    paths: list[Path],
    parts_dir: Path,
    ext: str,
    text_column: str,
    id_key: str,
    chunk_rows: int,
    batch_size: int,
    with_logits: bool,
    progress: bool,
) -> tuple[int, int, list[Path]]:
    """Predict this process's chunks (every `num_processes`-th), each into its own part file, skipping the parts
    already written. Returns the rows read, this process's parts resumed, and every part's path."""
    from tqdm.auto import tqdm

    process = state()
    optional = [] if id_key == ROW_KEY else [id_key]
    bar = tqdm(
        unit=" rows", unit_scale=True, desc="predict", disable=not (progress and process.is_main_process), smoothing=0
    )
    rows = resumed = 0
    part_names: list[Path] = []
    try:
        for file_index, path in enumerate(paths):
            position = 0
            for chunk_index, chunk in enumerate(read_chunks(path, [text_column, *optional], chunk_rows)):
                part = parts_dir / f"part-{file_index:04d}-{chunk_index:06d}{ext}"
                part_names.append(part)
                ids = [r[id_key] for r in chunk] if id_key != ROW_KEY else list(range(position, position + len(chunk)))
                position += len(chunk)
                rows += len(chunk)
                if (len(part_names) - 1) % process.num_processes != process.process_index:
                    continue
                if part.is_file():
                    resumed += 1
                    continue
                texts = [_text(r[text_column], path, text_column, i) for i, r in zip(ids, chunk)]
                logits = predictor.logits(texts, batch_size=batch_size)
                records = prediction_records(
                    logits, predictor.task, predictor.label_names, predictor.threshold, ids, id_key, with_logits
                )
                write_records(part, records, predictor.task, predictor.label_names)
                bar.update(len(chunk))
    finally:
        bar.close()  # before an error is printed: the bar's line ends first
    return rows, resumed, part_names


def _text(value: Any, path: Path, column: str, row_id: Any) -> str:
    if not isinstance(value, str):
        kind = "empty" if value is None else f"a {type(value).__name__}"
        raise ValueError(f"{str(path)!r}: the {column!r} value of row {row_id!r} is {kind}, not a text.")
    return value
