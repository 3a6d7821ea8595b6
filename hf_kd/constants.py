"""Names shared by every module: dataset columns, the ignore index and the task types, with their inference, and the
checks of a single number.

This module imports nothing heavy (no torch, no datasets), so that any module, the command line included, can use it.

Column convention (every dataset `hf_kd` produces and every batch its collator returns):

- `input_ids`, `attention_mask`, `token_type_ids`: the student's inputs.
- `teacher_input_ids`, `teacher_attention_mask`, `teacher_token_type_ids`: the teacher's own inputs, present only when
  it cannot share the student's (another tokenizer, another text column or another maximum length).
- `teacher_logits`: the teacher's cached outputs, which replace the teacher model.
- `word_ids`, `teacher_word_ids`: the canonical word of every token, to align hidden states across tokenizers.
- `labels`: an `int` class id, a multi-hot list of floats, or a float regression target; `-100` marks unlabeled.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = [
    "DISTILLATION_COLUMNS",
    "IGNORE_INDEX",
    "LABELS_COLUMN",
    "MODEL_COLUMNS",
    "PADDED_COLUMNS",
    "PROBLEM_TYPES",
    "STUDENT_INPUT_COLUMNS",
    "TASK_TYPES",
    "TEACHER_INPUT_COLUMNS",
    "TEACHER_LOGITS_COLUMN",
    "TEACHER_LOGITS_DTYPES",
    "TEACHER_SIDE_COLUMNS",
    "WORD_ID_COLUMNS",
    "MIN_VALIDATION_ROWS",
    "SHARED_CPU_ENV",
    "THRESHOLDED_TASKS",
    "THRESHOLD_KEY",
    "CORPUS_LEVELS",
    "EXPORT_FORMATS",
    "has_threshold",
    "infer_task",
    "is_finite_number",
    "is_number",
    "problem_type_of_config",
    "problem_type_of_feature",
    "problem_type_of_task",
    "task_of_config",
]

IGNORE_INDEX = -100
"""Label value of unlabeled examples (every entry of the multi-hot vector for multi-label data)."""

SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
REGRESSION = "regression"
BINARY = "binary"

PROBLEM_TYPES: tuple[str, ...] = (SINGLE_LABEL, MULTI_LABEL, REGRESSION)
"""The values of a `transformers` config's `problem_type`."""

TASK_TYPES: tuple[str, ...] = (SINGLE_LABEL, MULTI_LABEL, BINARY, REGRESSION)
"""The tasks `hf_kd` evaluates: the problem types plus `binary` (a two-class task scored as triage). A binary task's
models are single-label classifiers with two logits ([`problem_type_of_task`]); the second label is the positive
class."""

THRESHOLDED_TASKS: tuple[str, ...] = (MULTI_LABEL, BINARY)
"""The tasks decided at an operating threshold (chosen on validation by the recipe's `evaluation.threshold` rule and
saved with the model); the others take the argmax (single-label) or the value (regression)."""


def has_threshold(task: str) -> bool:
    """Whether a task's predictions are decided at an operating threshold ([`THRESHOLDED_TASKS`])."""
    return task in THRESHOLDED_TASKS


THRESHOLD_KEY = "hf_kd_threshold"
"""The `config.json` entry that records a model's operating threshold, chosen on the validation split."""

LABELS_COLUMN = "labels"
TEACHER_LOGITS_COLUMN = "teacher_logits"
TEACHER_LOGITS_DTYPES: tuple[str, ...] = ("float32", "float16")
"""How the teacher-logit store keeps the logits (`student.teacher_logits_dtype`)."""

STUDENT_INPUT_COLUMNS: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
TEACHER_INPUT_COLUMNS: tuple[str, ...] = tuple(f"teacher_{name}" for name in STUDENT_INPUT_COLUMNS)
WORD_ID_COLUMNS: tuple[str, ...] = ("word_ids", "teacher_word_ids")

DISTILLATION_COLUMNS: tuple[str, ...] = (*TEACHER_INPUT_COLUMNS, TEACHER_LOGITS_COLUMN, *WORD_ID_COLUMNS)
"""Batch columns that feed the teacher or replace it; they never reach the student's `forward`."""

TEACHER_SIDE_COLUMNS: tuple[str, ...] = (*TEACHER_INPUT_COLUMNS, *WORD_ID_COLUMNS)
"""Columns only an online teacher reads (the cached logits make them unnecessary)."""

MODEL_COLUMNS: tuple[str, ...] = (*STUDENT_INPUT_COLUMNS, *DISTILLATION_COLUMNS, LABELS_COLUMN)
"""Every column a distillation trainer reads."""

PADDED_COLUMNS: tuple[str, ...] = (*STUDENT_INPUT_COLUMNS, "special_tokens_mask", "word_ids")
"""Sequence columns of one side that the collator pads (with the `teacher_` prefix for the teacher's side)."""

_INTEGER_DTYPES = ("torch.int64", "torch.int32", "torch.int16", "torch.int8")


def problem_type_of_feature(feature: Any) -> str:
    """
    The problem type of a `labels` column, from its `datasets` feature.

    Args:
        feature (`datasets.Features` entry):
            The feature of the labels column.

    Returns:
        `str`: `"multi_label_classification"` for a list feature, `"regression"` for a float scalar, else
        `"single_label_classification"`.
    """
    import datasets

    list_types = tuple(
        t for t in (getattr(datasets, n, None) for n in ("List", "Sequence", "LargeList")) if isinstance(t, type)
    )
    if isinstance(feature, list | tuple) or isinstance(feature, list_types):
        return MULTI_LABEL
    if isinstance(feature, datasets.Value) and feature.dtype.startswith("float"):
        return REGRESSION
    return SINGLE_LABEL


def problem_type_of_config(config: Any, labels: Any = None) -> str:
    """
    The problem type of a model, as `transformers` infers it in its sequence-classification heads.

    Sets `config.problem_type` when it was unset, as the models do on their first forward pass with labels.

    Args:
        config (`PretrainedConfig`):
            The model's config.
        labels (`torch.Tensor`, *optional*):
            A batch's labels, used when `config.problem_type` is unset: integer labels mean single-label, float labels
            multi-label (one output means regression).

    Returns:
        `str`: One of [`PROBLEM_TYPES`].

    Raises:
        `ValueError`: When the problem type is unset and there are no labels to infer it from.
    """
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = REGRESSION
        elif labels is not None and str(labels.dtype) in _INTEGER_DTYPES:
            config.problem_type = SINGLE_LABEL
        elif labels is not None:
            config.problem_type = MULTI_LABEL
        else:
            raise ValueError(
                "Cannot infer the task type from a batch without labels: set the student's `config.problem_type` to "
                "'single_label_classification', 'multi_label_classification' or 'regression'."
            )
    return config.problem_type


def infer_task(feature: Any, num_labels: int, problem_type: str | None = None) -> str:
    """
    The task of labelled data: the problem type its `labels` feature shows, and `binary` for single-label data with
    two classes (or with `problem_type="binary"`), unless `problem_type` names another task.

    Args:
        feature (`datasets.Features` entry):
            The feature of the labels column.
        num_labels (`int`):
            The number of label names.
        problem_type (`str`, *optional*):
            The task the user declared, if any.

    Returns:
        `str`: One of [`TASK_TYPES`].
    """
    problem = problem_type_of_feature(feature)
    if problem == SINGLE_LABEL and (problem_type == BINARY or (problem_type is None and num_labels == 2)):
        return BINARY
    return problem


def task_of_config(config: Any) -> str:
    """
    The task of a classifier, from its config: `binary` for a two-label single-label model with a saved threshold.

    Args:
        config (`PretrainedConfig`):
            The model's config.

    Returns:
        `str`: One of [`TASK_TYPES`].
    """
    problem = getattr(config, "problem_type", None) or SINGLE_LABEL
    if problem == SINGLE_LABEL and int(config.num_labels) == 2 and getattr(config, THRESHOLD_KEY, None) is not None:
        return BINARY
    return problem


def problem_type_of_task(task: str) -> str:
    """The `config.problem_type` of a task's models (a binary task has a two-logit single-label head)."""
    return SINGLE_LABEL if task == BINARY else task


SHARED_CPU_ENV = "HF_KD_SHARED_CPU"
"""Set to `1` by `hf-kd --shared-cpu` (`hf_kd.cli.share_cpu`): onnxruntime's threads then do not spin."""

MIN_VALIDATION_ROWS = 8
"""The fewest rows a validation split held out of train (`data.validation_size`) may have: fewer cannot tune a
threshold or gate a teacher."""

CORPUS_LEVELS: dict[str, tuple[str, ...]] = {"hoc": ("abstract", "sentence"), "codiesp": ("chapter", "triage")}
"""The corpora of the source papers (`hf_kd.data.corpora`) and their levels; the first level is the default."""

EXPORT_FORMATS: tuple[str, ...] = ("fp32", "int8", "int8-static")
"""The formats of an exported student (`hf_kd.export.onnx`): fp32, dynamic int8, static int8."""

NARROW_INITS = ("pca", "slice", "random")
"""The initialisations of a narrow student (`hf_kd.training.narrow.narrow_student_from_teacher`)."""


def is_number(value: Any) -> bool:
    """Whether `value` is a real number (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)  # NumPy's bool_ is no Real


def is_finite_number(value: Any) -> bool:
    """Whether `value` is a real number (not a bool) that is neither NaN nor infinite."""
    return is_number(value) and math.isfinite(float(value))
