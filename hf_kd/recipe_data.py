"""A recipe's data: the dataset its `data:` section names, its subsets, and the tokenized columns each model reads."""

from __future__ import annotations

from typing import Any

import numpy as np

from .constants import MODEL_COLUMNS, TEACHER_SIDE_COLUMNS
from .recipe import DistillationPipelineConfig

__all__ = ["load_recipe_data", "model_columns", "subset", "tokenize_side"]


def load_recipe_data(config: DistillationPipelineConfig) -> tuple[Any, list[str]]:
    """
    Load the dataset of a recipe's `data:` section.

    Args:
        config ([`~hf_kd.recipe.DistillationPipelineConfig`]):
            The recipe.

    Returns:
        `tuple[datasets.DatasetDict, list[str]]`: The splits with their `labels` column, and the label names.

    Raises:
        `ValueError`: When the section lacks the path its dataset needs, or the data is invalid.
    """
    from .corpora import load_codiesp, load_hoc
    from .data import load_classification_dataset

    data = config.data
    if data.dataset == "hoc":
        if data.path is None:
            raise ValueError("`data.path` (the HoC directory) is required for `data.dataset: hoc`.")
        raw, names = load_hoc(data.path, level=data.level)  # type: ignore[arg-type]
    elif data.dataset == "codiesp":
        if data.path is None:
            raise ValueError("`data.path` (the CodiEsp directory) is required for `data.dataset: codiesp`.")
        raw, names = load_codiesp(data.path)
    else:
        source = data.data_files if data.data_files else data.path
        if source is None:
            raise ValueError("`data.path` or `data.data_files` is required for `data.dataset: files`.")
        raw, names = load_classification_dataset(
            source,
            text_column=data.text_column,
            label_column=data.label_column,
            problem_type=data.problem_type,
            label_delimiter=data.label_delimiter,
            teacher_text_column=data.teacher_text_column,
        )
    return raw, [str(n) for n in names]


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
