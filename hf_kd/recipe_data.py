"""A recipe's data: the dataset its `data:` section names, its subsets, and the tokenized columns each model reads."""

from __future__ import annotations

from typing import Any

import numpy as np

from .constants import (
    BINARY,
    LABELS_COLUMN,
    MODEL_COLUMNS,
    SINGLE_LABEL,
    TEACHER_SIDE_COLUMNS,
    problem_type_of_feature,
)
from .recipe import DistillationPipelineConfig

__all__ = ["load_recipe_data", "model_columns", "subset", "tokenize_side"]


def load_recipe_data(config: DistillationPipelineConfig, cache_dir: str | None = None) -> tuple[Any, list[str], str]:
    """
    Load the dataset of a recipe's `data:` section, and tell its task.

    Args:
        config ([`~hf_kd.recipe.DistillationPipelineConfig`]):
            The recipe.
        cache_dir (`str`, *optional*):
            Where `datasets` keeps its cache files of the data (they hold copies of the text).

    Returns:
        `tuple[datasets.DatasetDict, list[str], str]`: The splits with their `labels` column, the label names and
        the task: a problem type, or `"binary"` for a two-class single-label dataset (the second name is the
        positive class).

    Raises:
        `ValueError`: When the section lacks the path its dataset needs, the data is invalid, the declared label
            names do not fit the data, or a binary task has named classes in no declared order.
    """
    from .corpora import load_codiesp, load_hoc
    from .data import load_classification_dataset

    data = config.data
    declared = list(data.label_names) if data.label_names is not None else None
    problem_type = SINGLE_LABEL if data.problem_type == BINARY else data.problem_type
    if data.dataset in ("hoc", "codiesp"):
        if data.path is None:
            raise ValueError(
                f"`data.path` (the {data.dataset} directory) is required for `data.dataset: {data.dataset}`."
            )
        if data.dataset == "hoc":
            raw, names = load_hoc(data.path, level=data.level, cache_dir=cache_dir)  # type: ignore[arg-type]
        else:
            raw, names = load_codiesp(data.path, level=data.level, cache_dir=cache_dir)  # type: ignore[arg-type]
        if declared is not None and declared != [str(n) for n in names]:
            raise ValueError(
                f"`data.label_names` {declared} differ from the label names of `data.dataset: {data.dataset}` "
                f"({[str(n) for n in names]})."
            )
    else:
        source = data.data_files if data.data_files else data.path
        if source is None:
            raise ValueError("`data.path` or `data.data_files` is required for `data.dataset: files`.")
        raw, names = load_classification_dataset(
            source,
            text_column=data.text_column,
            label_column=data.label_column,
            problem_type=problem_type,
            label_names=declared,
            label_delimiter=data.label_delimiter,
            teacher_text_column=data.teacher_text_column,
            cache_dir=cache_dir,
        )
    names = [str(n) for n in names]
    split = "train" if "train" in raw else next(iter(raw))
    task = problem_type_of_feature(raw[split].features[LABELS_COLUMN])
    if task == SINGLE_LABEL and (data.problem_type == BINARY or (data.problem_type is None and len(names) == 2)):
        if len(names) != 2:
            raise ValueError(f"`data.problem_type: binary` needs two classes, the data has {len(names)}: {names}.")
        ordered = declared is not None or names in (["0", "1"], ["False", "True"]) or data.level == "triage"
        if not ordered:
            raise ValueError(
                f"The data has two classes {names}, scored as a binary task whose positive class is the second: "
                "declare their order in `data.label_names: [negative, positive]` (or set `data.problem_type: "
                "single_label_classification` to score them as two classes)."
            )
        task = BINARY
    elif data.problem_type == BINARY:
        raise ValueError(f"`data.problem_type: binary` needs single-label data with two classes, got {task} labels.")
    return raw, names, task


def subset(dataset: Any, size: int | None, seed: int) -> Any:
    """
    A random subset of `size` examples, or of `size` documents when the dataset has a `group` column.

    Args:
        dataset (`datasets.Dataset`):
            One split.
        size (`int`, *optional*):
            Examples (or documents) to keep; all when None or larger than the split.
        seed (`int`):
            Seed of the draw.

    Returns:
        `datasets.Dataset`: The subset, in the split's order for documents.
    """
    if size is None:
        return dataset
    if "group" in dataset.column_names:
        groups = list(dict.fromkeys(dataset["group"]))
        if size >= len(groups):
            return dataset
        rng = np.random.default_rng(seed)
        keep = set(rng.permutation(len(groups))[:size].tolist())
        chosen = {groups[i] for i in keep}
        return dataset.select([i for i, g in enumerate(dataset["group"]) if g in chosen])
    if size >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(size))


def model_columns(dataset: Any, teacher_side: bool = True) -> Any:
    """
    `dataset` with only the columns a distillation trainer reads (`hf_kd.constants.MODEL_COLUMNS`).

    Args:
        dataset (`datasets.Dataset`):
            A tokenized split.
        teacher_side (`bool`, *optional*, defaults to `True`):
            Keep the columns only an online teacher reads (`teacher_*` inputs, word ids).

    Returns:
        `datasets.Dataset`: The split without the other columns.
    """
    drop = [c for c in dataset.column_names if c not in MODEL_COLUMNS]
    if not teacher_side:
        drop += [c for c in dataset.column_names if c in TEACHER_SIDE_COLUMNS]
    return dataset.remove_columns(drop) if drop else dataset


def tokenize_side(dataset: Any, tokenizer: Any, column: str, max_length: int | None) -> Any:
    """
    Tokenize one model's inputs (the text column removed, no word alignment).

    Args:
        dataset (`datasets.Dataset`):
            One split.
        tokenizer (`PreTrainedTokenizerBase`):
            The model's tokenizer.
        column (`str`):
            The text column it reads.
        max_length (`int`, *optional*):
            Truncation length.

    Returns:
        `datasets.Dataset`: The tokenized split.
    """
    from .data import tokenize_for_distillation

    return tokenize_for_distillation(
        dataset, tokenizer, text_column=column, max_length=max_length, remove_text=True, word_alignment=False
    )
