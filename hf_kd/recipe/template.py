"""`hf-kd init`: a starting recipe for a user's own data files and teacher, written from what the data shows.

The data is read once, as the pipeline will read it (columns, label format, task, label names); the recipe it writes
names the files, the columns, the task and the label names, and gives the teacher and student sections common
starting values to tune. Only column names, label names and counts are printed: never a text.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ..constants import (
    BINARY,
    LABELS_COLUMN,
    MIN_VALIDATION_ROWS,
    has_threshold,
    infer_task,
    problem_type_of_task,
)
from ..data.coverage import UNKNOWN_WARN_RATE, sample_texts, unknown_token_rate
from ..data.loading import load_classification_dataset
from ..data.unlabeled import unlabeled_rows
from ..evaluation.tasks import task_type
from .sections import DataConfig

__all__ = ["DEFAULT_TARGET", "TARGETS", "starting_recipe", "write_starting_recipe"]

TARGETS = ("accurate", "deploy", "smallest")
"""The students `hf-kd init --target` aims for: half the teacher's depth; two layers, a pruned vocabulary, the
transfer set and an int8 export; the same at half the width after a general-distillation stage."""
DEFAULT_TARGET = "deploy"


def starting_recipe(
    data_files: dict[str, str],
    teacher: str,
    text_column: str = "text",
    label_column: str = "labels",
    teacher_text_column: str | None = None,
    problem_type: str | None = None,
    label_delimiter: str | None = None,
    positive_label: str | None = None,
    output_dir: str | None = None,
    unlabeled_files: list[str] | None = None,
    target: str = DEFAULT_TARGET,
    validation_size: float = 0.1,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """
    A recipe for `data_files` and `teacher`, and a summary of the data (task, label count, split sizes).

    Args:
        data_files (`dict[str, str]`):
            Split -> file (`train` required; `validation` and `test` used when given).
        teacher (`str`):
            The teacher's local path or Hub id.
        text_column (`str`, *optional*, defaults to `"text"`):
            Column the student reads.
        label_column (`str`, *optional*, defaults to `"labels"`):
            The label column.
        teacher_text_column (`str`, *optional*):
            Column the teacher reads, when it is another (e.g. a translation).
        problem_type (`str`, *optional*):
            The task, when it should not be inferred.
        label_delimiter (`str`, *optional*):
            Separator of several label names in one string (multi-label).
        positive_label (`str`, *optional*):
            For two named classes: the positive one (a binary task's second label).
        output_dir (`str`, *optional*):
            The run folder; `runs/<train file stem>` by default.
        unlabeled_files (`list[str]`, *optional*):
            Files of unlabeled text (with `text_column`) for the transfer set: the student learns the teacher's
            outputs on them (`data.unlabeled_files`). A `validation` or `test` file without the label column is
            accepted too: a test file without labels joins the transfer set and gets predictions instead of metrics.
        target (`str`, *optional*, defaults to `"deploy"`):
            The student to aim for, one of [`TARGETS`]: `accurate` (half the teacher's depth), `deploy` (two of its
            layers, a pruned vocabulary, the transfer set, an int8 ONNX export) or `smallest` (`deploy` at half the
            width, with a general-distillation stage first).
        validation_size (`float`, *optional*, defaults to 0.1):
            When there is no validation file: the share of train held out as validation (`data.validation_size`).

    Returns:
        `tuple[dict, dict]`: The recipe (nested sections) and the summary, whose `transfer_set` says what happens to
        the unlabeled text.

    Raises:
        `ValueError`: When the data cannot be read as labelled text, two named classes have no `positive_label`, the
            target is unknown, or the teacher's tokenizer and config cannot be read.
    """
    if "train" not in data_files:
        raise ValueError("A recipe needs a `train` file.")
    if target not in TARGETS:
        raise ValueError(f"`--target` must be one of {list(TARGETS)}, got {target!r}.")
    dataset, names, labelless = _labelled_files(
        data_files, text_column, label_column, problem_type, label_delimiter, teacher_text_column
    )
    unlabeled = unlabeled_rows(unlabeled_files, text_column, teacher_text_column) if unlabeled_files else None
    task = problem_type or infer_task(dataset["train"].features[LABELS_COLUMN], len(names))
    names = _positive_last(task, names, positive_label)
    data: dict[str, Any] = {"dataset": "files", "data_files": dict(data_files), "text_column": text_column}
    if teacher_text_column:
        data["teacher_text_column"] = teacher_text_column
    data.update(
        label_column=label_column, problem_type=task, label_names=list(names) if task_type(task).classifier else None
    )
    if label_delimiter:
        data["label_delimiter"] = label_delimiter
    if unlabeled_files:
        data["unlabeled_files"] = list(unlabeled_files)
    chosen = _held_out_validation(data, data_files, len(dataset["train"]), validation_size)
    tokenizer, model_config = _teacher_files(teacher)
    teacher_column = teacher_text_column or text_column
    train_texts = [t for t in dataset["train"][teacher_column] if isinstance(t, str)]
    data["max_length"], p99 = _max_length(tokenizer, train_texts, model_config)
    chosen.append(
        f"data.max_length {data['max_length']}: the 99th percentile of the training texts' lengths is {p99} tokens"
    )
    transfer_texts = (sample_texts(unlabeled, text_column) if unlabeled is not None else []) + [
        t for split in labelless for t in dataset[split][teacher_column] if isinstance(t, str)
    ]  # a seeded sample of the unlabeled files: an archive of notes is never read whole
    rates = {"train": unknown_token_rate(tokenizer, train_texts)}
    if transfer_texts:
        rates["transfer set"] = unknown_token_rate(tokenizer, transfer_texts)
    training = {"learning_rate": 5.0e-5, "head_learning_rate": 1.0e-3, "warmup_steps": 0.1}
    training.update(per_device_train_batch_size=16, num_train_epochs=3)
    student, evaluation, why = _target_sections(target, model_config, has_transfer=bool(transfer_texts))
    if has_threshold(task):
        evaluation = {"threshold": "f1", **evaluation}
    recipe = {
        "data": {k: v for k, v in data.items() if v is not None},
        "teacher": {"model": teacher, **training},
        "student": {**student, **training, "alpha": 0.5, "temperature": 2.0},
        "evaluation": evaluation,
        "output_dir": output_dir or f"runs/{Path(data_files['train']).stem}",
        "seed": 42,
    }
    summary = {
        "task": task,
        "labels": len(names),
        "splits": {split: len(ds) for split, ds in dataset.items()},
        "label_names": names if len(names) <= 20 else f"{len(names)} names",
        "target": target,
        "unknown_token_rate": {k: None if v is None else round(v, 4) for k, v in rates.items()},
        "chosen": chosen + why,
    }
    _add_warnings(summary, rates, dataset, labelless, unlabeled, [text_column, teacher_text_column])
    return recipe, summary


def _labelled_files(
    data_files: dict[str, str],
    text_column: str,
    label_column: str,
    problem_type: str | None,
    label_delimiter: str | None,
    teacher_text_column: str | None,
) -> tuple[Any, list[str], list[str]]:
    """The files read as labelled text (a test file may lack labels: it joins the transfer set), the label names and
    the splits without labels; a validation file must have them."""
    loader_type = problem_type_of_task(problem_type) if problem_type else None
    dataset, names = load_classification_dataset(
        dict(data_files),
        text_column=text_column,
        label_column=label_column,
        problem_type=loader_type,
        label_delimiter=label_delimiter,
        teacher_text_column=teacher_text_column,
        unlabeled_splits=True,
    )
    labelless = [split for split, ds in dataset.items() if LABELS_COLUMN not in ds.column_names]
    if "validation" in labelless:
        raise ValueError(
            f"The validation file has no label column {label_column!r}: thresholds and the teacher's gate need "
            "labels. Pass an unlabeled file with --unlabeled instead."
        )
    return dataset, names, labelless


def _positive_last(task: str, names: list[str], positive_label: str | None) -> list[str]:
    """Two named classes of a binary task, the positive one (`--positive`) second."""
    if task != BINARY or names in (["0", "1"], ["False", "True"]):
        return names
    if positive_label is None:
        raise ValueError(
            f"The labels are two named classes {names}: give the positive one with `--positive` (e.g. "
            f"`--positive {names[-1]}`), so that sensitivity and AUROC are about it."
        )
    if positive_label not in names:
        raise ValueError(f"`--positive {positive_label}` is not one of the labels {names}.")
    return [n for n in names if n != positive_label] + [positive_label]


def _held_out_validation(data: dict[str, Any], data_files: dict[str, str], n_train: int, size: float) -> list[str]:
    """Without a validation file, `data.validation_size` (at least `MIN_VALIDATION_ROWS` rows); what was chosen."""
    if "validation" in data_files:
        return []
    held: float | int = size
    if round(size * n_train) < MIN_VALIDATION_ROWS:
        held = MIN_VALIDATION_ROWS  # a count: the fewest rows that can tune a threshold
    data["validation_size"] = held
    return [
        f"data.validation_size {held}: no validation file, so a stratified, seeded "
        f"{'share' if held < 1 else 'count'} of train is held out for the threshold and the teacher's gate"
    ]


def _add_warnings(
    summary: dict[str, Any],
    rates: dict[str, float | None],
    dataset: Any,
    labelless: list[str],
    unlabeled: Any,
    columns: list[str | None],
) -> None:
    """The summary's unknown-token warning, its leakage counts, and what happens to the transfer set."""
    worst = max((v for v in rates.values() if v is not None), default=0.0)
    if worst > UNKNOWN_WARN_RATE:
        summary["warning"] = (
            f"The teacher's tokenizer reads {worst:.1%} of the tokens as unknown: it may not read this language "
            f"(`hf-kd distill` refuses above data.max_unknown_rate, {DataConfig().max_unknown_rate:.0%} by default)."
        )
    summary["leakage"] = _leakage_counts(dataset, labelless, unlabeled, columns)
    if summary["leakage"]["train_rows_in_evaluation"]:
        summary["leakage"]["warning"] = (
            "training rows equal to a validation or test row (case, whitespace and punctuation folded): kept, but "
            "their scores are not held out"
        )
    transfer = {split: len(dataset[split]) for split in labelless}
    if unlabeled is not None and len(unlabeled):
        transfer["unlabeled_files"] = len(unlabeled)
    if transfer:
        summary["transfer_set"] = {
            "rows": transfer,
            "use": "teacher logits cached and distilled into the student (no hard labels); never in the teacher's "
            "fine-tuning, thresholds, gate or metrics",
        }
        if "test" in labelless:
            summary["transfer_set"]["test"] = "no labels: the student's predictions are written instead of metrics"


def _leakage_counts(dataset: Any, labelless: list[str], unlabeled: Any, columns: list[Any]) -> dict[str, int]:
    """What `hf-kd distill`'s leakage guard will find: unlabeled rows equal to a labelled validation or test row
    (dropped from the transfer set) and training rows equal to one (kept, warned about)."""
    from ..data.leakage import count_leaked_rows, text_digests

    evaluated = [dataset[s] for s in ("validation", "test") if s in dataset and s not in labelless]
    references = text_digests(evaluated, columns)
    return {
        "transfer_rows_dropped": count_leaked_rows(unlabeled, references) if unlabeled is not None else 0,
        "train_rows_in_evaluation": count_leaked_rows(dataset["train"], references),
    }


def _teacher_files(teacher: str) -> tuple[Any, Any]:
    """The teacher's tokenizer and config (local files, or the Hub when it can be reached)."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(teacher), AutoConfig.from_pretrained(teacher)
    except (OSError, ValueError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(
            f"`--model {teacher}`: `hf-kd init` reads the teacher's tokenizer and config (for max_length, the "
            f"student's layers and the unknown-token rate), and could not: {first}"
        ) from None


def _max_length(tokenizer: Any, texts: list[str], config: Any) -> tuple[int, int]:
    """`max_length`: the 99th percentile of the texts' token counts, rounded up to a multiple of 8, within the model's
    positions; and the percentile itself."""
    import numpy as np

    sample = texts[:: max(1, len(texts) // 5000)]
    lengths = [len(ids) for ids in tokenizer(sample, truncation=False)["input_ids"]] or [8]
    p99 = int(np.ceil(np.percentile(lengths, 99)))
    positions = int(getattr(config, "max_position_embeddings", 512) or 512)
    return int(min(max(8, -(-p99 // 8) * 8), positions, 512)), p99


def _target_sections(target: str, config: Any, has_transfer: bool) -> tuple[dict, dict, list[str]]:
    """The student and evaluation sections of a target, and why each setting was chosen."""
    from ..training.intermediate import layer_count

    depth = layer_count(config) or 2
    why: list[str] = []
    if target == "accurate":
        half = max(1, depth // 2)
        why.append(f"target accurate: {half} of the teacher's {depth} layers (evenly spaced), full vocabulary")
        return {"num_layers": half}, {}, why
    layers = [0, depth // 2] if depth > 1 else [0]
    student: dict[str, Any] = {"from_teacher_layers": layers, "prune_vocabulary": True}
    why.append(
        f"target {target}: {len(layers)} of the teacher's {depth} layers {layers}; the vocabulary pruned to the "
        "tokens of the run's text (smaller embeddings, same tokenization of that text)"
    )
    if target == "smallest":
        width = int(getattr(config, "hidden_size", 384)) // 2
        student["hidden_size"] = width
        student["general_distillation"] = {
            "num_train_epochs": 3,
            "learning_rate": 1.0e-3,
            "per_device_train_batch_size": 32,
            "warmup_steps": 0.1,
        }
        why.append(
            f"student.hidden_size {width} (half the teacher's width), after a general-distillation stage on all "
            "the run's text (hidden states and self-attention relations of the pretrained teacher)"
        )
    why.append(
        "the transfer set (unlabeled rows: --unlabeled files, a test file without labels) is distilled into the "
        "student"
        if has_transfer
        else "no transfer set: give unlabeled notes with --unlabeled (or a test file without labels); on HoC a "
        "transfer set is what closed the gap to the teacher"
    )
    why.append("evaluation.export int8: a fused int8 ONNX export, evaluated and timed beside the student")
    return student, {"export": "int8"}, why


_HEADER = """\
# A starting recipe written by `hf-kd init` from the data it names. Check it, then:
#   hf-kd distill {path}
# Fields: `hf-kd distill --help`; the guide: docs/src/guides/own-data.md.
# - data: the files and columns; the task and the label names (in id order{binary}) were read from the data.
# - teacher: fine-tuned on the labels first (skipped when it is already a classifier of these labels).
# - student: the `--target {target}` preset (docs/src/guides/own-data.md lists the targets and their measured figures).
# - evaluation: `min_teacher_metric` stops a run before distilling from a weak teacher.
"""


def write_starting_recipe(
    path: str | os.PathLike, recipe: dict[str, Any], overwrite: bool = False, target: str = DEFAULT_TARGET
) -> Path:
    """
    Write a recipe from [`starting_recipe`] as YAML, with a header saying what to check.

    Args:
        path (`str` or `os.PathLike`):
            The YAML file.
        recipe (`dict[str, Any]`):
            The recipe.
        overwrite (`bool`, *optional*, defaults to `False`):
            Replace an existing file.
        target (`str`, *optional*, defaults to `"deploy"`):
            The target the recipe was written for (named in its header).

    Returns:
        `Path`: The file written.

    Raises:
        `FileExistsError`: When the file exists and `overwrite` is False.
    """
    out = Path(path)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{str(out)!r} exists; pass --force to replace it.")
    binary = "; binary: negative, then positive" if recipe["data"].get("problem_type") == BINARY else ""
    out.parent.mkdir(parents=True, exist_ok=True)
    text = _HEADER.format(path=out, binary=binary, target=target) + yaml.safe_dump(
        recipe, sort_keys=False, allow_unicode=True
    )
    out.write_text(text, encoding="utf-8")
    return out
