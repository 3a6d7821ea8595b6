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

from ..constants import BINARY, LABELS_COLUMN, MULTI_LABEL, REGRESSION, infer_task, problem_type_of_task

__all__ = ["starting_recipe", "write_starting_recipe"]


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

    Returns:
        `tuple[dict, dict]`: The recipe (nested sections) and the summary, whose `transfer_set` says what happens to
        the unlabeled text.

    Raises:
        `ValueError`: When the data cannot be read as labelled text, or two named classes have no `positive_label`.
    """
    from ..data.loading import load_classification_dataset

    if "train" not in data_files:
        raise ValueError("A recipe needs a `train` file.")
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
    unlabeled_rows_count = 0
    if unlabeled_files:
        from ..data.unlabeled import unlabeled_rows

        unlabeled_rows_count = len(unlabeled_rows(unlabeled_files, text_column, teacher_text_column))
    task = problem_type or infer_task(dataset["train"].features[LABELS_COLUMN], len(names))
    if task == BINARY and names not in (["0", "1"], ["False", "True"]):
        if positive_label is None:
            raise ValueError(
                f"The labels are two named classes {names}: give the positive one with `--positive` (e.g. "
                f"`--positive {names[-1]}`), so that sensitivity and AUROC are about it."
            )
        if positive_label not in names:
            raise ValueError(f"`--positive {positive_label}` is not one of the labels {names}.")
        names = [n for n in names if n != positive_label] + [positive_label]
    data: dict[str, Any] = {"dataset": "files", "data_files": dict(data_files), "text_column": text_column}
    if teacher_text_column:
        data["teacher_text_column"] = teacher_text_column
    data.update(label_column=label_column, problem_type=task, label_names=list(names) if task != REGRESSION else None)
    if label_delimiter:
        data["label_delimiter"] = label_delimiter
    if unlabeled_files:
        data["unlabeled_files"] = list(unlabeled_files)
    data["max_length"] = 256
    training = {"learning_rate": 5.0e-5, "head_learning_rate": 1.0e-3, "warmup_steps": 0.1}
    training.update(per_device_train_batch_size=16, num_train_epochs=3)
    recipe = {
        "data": {k: v for k, v in data.items() if v is not None},
        "teacher": {"model": teacher, **training},
        "student": {"num_layers": None, **training, "alpha": 0.5, "temperature": 2.0},
        "evaluation": {"threshold": "f1"} if task in (MULTI_LABEL, BINARY) else {},
        "output_dir": output_dir or f"runs/{Path(data_files['train']).stem}",
        "seed": 42,
    }
    recipe["student"].pop("num_layers")
    summary = {
        "task": task,
        "labels": len(names),
        "splits": {split: len(ds) for split, ds in dataset.items()},
        "label_names": names if len(names) <= 20 else f"{len(names)} names",
    }
    transfer = {split: len(dataset[split]) for split in labelless}
    if unlabeled_rows_count:
        transfer["unlabeled_files"] = unlabeled_rows_count
    if transfer:
        summary["transfer_set"] = {
            "rows": transfer,
            "use": "teacher logits cached and distilled into the student (no hard labels); never in the teacher's "
            "fine-tuning, thresholds, gate or metrics",
        }
        if "test" in labelless:
            summary["transfer_set"]["test"] = "no labels: the student's predictions are written instead of metrics"
    return recipe, summary


_HEADER = """\
# A starting recipe written by `hf-kd init` from the data it names. Check it, then:
#   hf-kd distill {path}
# Fields: `hf-kd distill --help`; the guide: docs/src/guides/own-data.md.
# - data: the files and columns; the task and the label names (in id order{binary}) were read from the data.
# - teacher: fine-tuned on the labels first (skipped when it is already a classifier of these labels).
# - student: by default half the teacher's layers; `from_teacher_layers: [0, 2, 4]` or `model: <id>` to choose.
# - evaluation: `min_teacher_metric` stops a run before distilling from a weak teacher.
"""


def write_starting_recipe(path: str | os.PathLike, recipe: dict[str, Any], overwrite: bool = False) -> Path:
    """
    Write a recipe from [`starting_recipe`] as YAML, with a header saying what to check.

    Args:
        path (`str` or `os.PathLike`):
            The YAML file.
        recipe (`dict[str, Any]`):
            The recipe.
        overwrite (`bool`, *optional*, defaults to `False`):
            Replace an existing file.

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
    text = _HEADER.format(path=out, binary=binary) + yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True)
    out.write_text(text, encoding="utf-8")
    return out
