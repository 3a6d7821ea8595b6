"""A recipe's data: the dataset its `data:` section names, its subsets, and the tokenized columns each model reads."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..constants import (
    BINARY,
    CORPUS_LEVELS,
    LABELS_COLUMN,
    MIN_VALIDATION_ROWS,
    MODEL_COLUMNS,
    REGRESSION,
    SINGLE_LABEL,
    TEACHER_SIDE_COLUMNS,
    infer_task,
    problem_type_of_task,
)
from ..data.corpora import load_codiesp, load_hoc
from ..data.leakage import guard_leakage
from ..data.loading import load_classification_dataset, tokenize_for_distillation
from ..data.mapped import cache_paths, release_mapped_pages
from ..data.unlabeled import UNLABELED_SPLIT, hide_labels, unlabeled_rows
from ..evaluation.tasks import task_type
from ..processes import state
from ..recipe.config import DistillationPipelineConfig

__all__ = [
    "RecipeSplits", "TOKENIZE_ROWS_PER_PROCESS", "TokenizedSplits", "hold_out_validation", "labelled_split",
    "load_recipe_data", "model_columns", "recipe_splits", "subset", "tokenize_side", "tokenize_splits",
    "tokenizer_processes", "transfer_set",
]  # fmt: skip


TOKENIZE_ROWS_PER_PROCESS = 50_000
"""Rows below which a process of its own for tokenizing costs more than it saves."""


def load_recipe_data(config: DistillationPipelineConfig, cache_dir: str | None = None) -> tuple[Any, list[str], str]:
    """
    Load the dataset of a recipe's `data:` section, and tell its task.

    Args:
        config ([`~hf_kd.recipe.config.DistillationPipelineConfig`]):
            The recipe.
        cache_dir (`str`, *optional*):
            Where `datasets` keeps its cache files of the data (they hold copies of the text).

    Returns:
        `tuple[datasets.DatasetDict, list[str], str]`: The splits with their `labels` column (a split of `"files"`
        without the label column has none: an unlabeled split), the label names and the task: a problem type, or
        `"binary"` for a two-class single-label dataset (the second name is the positive class). With
        `data.unlabeled_files` (or CodiEsp's background cases, with `data.unlabeled_from_corpus`), the split
        [`UNLABELED_SPLIT`] holds their text columns and `labels` of `-100`.

    Raises:
        `ValueError`: When the section lacks the path its dataset needs, the data is invalid, the declared label
            names do not fit the data, or a binary task has named classes in no declared order.
    """

    data = config.data
    declared = list(data.label_names) if data.label_names is not None else None
    problem_type = problem_type_of_task(data.problem_type)
    if data.dataset in CORPUS_LEVELS:
        if data.path is None:
            raise ValueError(
                f"`data.path` (the {data.dataset} directory) is required for `data.dataset: {data.dataset}`."
            )
        if data.dataset == "hoc":
            raw, names = load_hoc(data.path, level=data.level, cache_dir=cache_dir)  # type: ignore[arg-type]
        else:
            raw, names = load_codiesp(
                data.path,
                level=data.level,  # type: ignore[arg-type]
                include_unlabeled=data.unlabeled_from_corpus,
                cache_dir=cache_dir,
            )
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
            unlabeled_splits=True,
        )
        if UNLABELED_SPLIT in raw:
            raise ValueError(
                f"A split of the data files is named {UNLABELED_SPLIT!r}, the name of the transfer set: name "
                "unlabeled files in `data.unlabeled_files` instead."
            )
    names = [str(n) for n in names]
    split = "train" if "train" in raw else next(iter(raw))
    task = infer_task(raw[split].features[LABELS_COLUMN], len(names), data.problem_type)
    if task == BINARY:
        if len(names) != 2:
            raise ValueError(f"`data.problem_type: binary` needs two classes, the data has {len(names)}: {names}.")
        ordered = declared is not None or names in (["0", "1"], ["False", "True"]) or data.level == "triage"
        if not ordered:
            raise ValueError(
                f"The data has two classes {names}, scored as a binary task whose positive class is the second: "
                "declare their order in `data.label_names: [negative, positive]` (or set `data.problem_type: "
                "single_label_classification` to score them as two classes)."
            )
    elif data.problem_type == BINARY:
        raise ValueError(f"`data.problem_type: binary` needs single-label data with two classes, got {task} labels.")
    if data.unlabeled_files:
        from datasets import concatenate_datasets

        files = unlabeled_rows(data.unlabeled_files, data.text_column, data.teacher_text_column, cache_dir)
        files = hide_labels(files, raw[split].features[LABELS_COLUMN], len(names))
        if UNLABELED_SPLIT in raw:
            files = concatenate_datasets([raw[UNLABELED_SPLIT].select_columns(files.column_names), files])
        raw[UNLABELED_SPLIT] = files
    return raw, names, task


def labelled_split(raw: Any, name: str, label_column: str, why: str) -> Any:
    """
    The split `name` of `raw`, which must exist and have labels.

    Args:
        raw (`datasets.DatasetDict`):
            The recipe's data ([`load_recipe_data`]).
        name (`str`):
            The split.
        label_column (`str`):
            The recipe's label column, for the message.
        why (`str`):
            What the labels are needed for, for the message.

    Returns:
        `datasets.Dataset`: The split.

    Raises:
        `ValueError`: Naming the split when it is missing or has no label column.
    """
    if name not in raw:
        raise ValueError(f"Split {name!r} not found; splits: {[s for s in raw if s != UNLABELED_SPLIT]}.")
    if LABELS_COLUMN not in raw[name].column_names:
        raise ValueError(
            f"Split {name!r} has no label column {label_column!r}, and {why} needs labels. An unlabeled split joins "
            "the transfer set; name a labelled split here."
        )
    return raw[name]


def transfer_set(raw: Any, data: Any, seed: int, num_labels: int) -> Any:
    """
    A recipe's transfer set: the unlabeled rows the student learns from the teacher alone (distillation term only).

    They are the [`UNLABELED_SPLIT`] split (`data.unlabeled_files`, CodiEsp's background cases), every split without
    labels (e.g. an unlabeled test split) and, with `data.unlabeled_from_corpus`, the training rows outside
    `data.train_size`, their labels hidden.

    Args:
        raw (`datasets.DatasetDict`):
            The recipe's data ([`load_recipe_data`]).
        data (`hf_kd.recipe.sections.DataConfig`):
            The recipe's `data:` section.
        seed (`int`):
            The recipe's seed (the draw of `train_size`).
        num_labels (`int`):
            The number of labels.

    Returns:
        `datasets.Dataset`: The rows, with the text column(s) and `labels` of -100 (empty when there are none).
    """
    from datasets import concatenate_datasets

    columns = list(dict.fromkeys(c for c in (data.text_column, data.teacher_text_column) if c))
    feature = raw["train"].features[LABELS_COLUMN]
    # The transfer split's labels are hidden already (`load_recipe_data`); the other parts' are hidden here.
    hidden = [raw[UNLABELED_SPLIT].select_columns([*columns, LABELS_COLUMN])] if UNLABELED_SPLIT in raw else []
    hidden = [p if p.features[LABELS_COLUMN] == feature else p.cast_column(LABELS_COLUMN, feature) for p in hidden]
    to_hide = [ds for ds in raw.values() if LABELS_COLUMN not in ds.column_names]
    if data.unlabeled_from_corpus:
        to_hide.append(subset(raw["train"], data.train_size, seed, rest=True))
    parts = hidden + [hide_labels(part.select_columns(columns), feature, num_labels) for part in to_hide]
    if not parts:
        return raw["train"].select_columns([*columns, LABELS_COLUMN]).select([])
    return concatenate_datasets(same_text_types(parts))


def same_text_types(parts: list[Any]) -> list[Any]:
    """
    `parts` with one string type per text column, so that they concatenate: `datasets` reads large JSON files as
    `large_string`, smaller ones and TSVs as `string`. The type is that of the part with the most rows, so that only
    the smaller parts are cast (a cast copies every row); `large_string` when a part to cast holds 2 GiB of text or
    more (more than `string` can address).

    Args:
        parts (`list[datasets.Dataset]`):
            Datasets with the same columns.

    Returns:
        `list[datasets.Dataset]`: The parts, cast where needed.
    """
    from datasets import Value

    if not parts:
        return parts
    biggest = max(parts, key=len)
    targets = {}
    for name in parts[0].column_names:
        types = {getattr(part.features[name], "dtype", None) for part in parts}
        if len(types) < 2 or not types <= {"string", "large_string"}:
            continue
        target = biggest.features[name]
        if target == Value("string") and any(
            part.data.column(name).nbytes >= 2**31 for part in parts if part.features[name] != target
        ):
            target = Value("large_string")
        targets[name] = target
    out = []
    for part in parts:
        source = cache_paths([part])
        for name, target in targets.items():
            if part.features[name] != target:
                part = part.cast_column(name, target)
        if cache_paths([part]) not in ([], source):
            release_mapped_pages(source)  # the cast read every row of them
        out.append(part)
    return out


@dataclass
class RecipeSplits:
    """
    What a pipeline run reads of its recipe's data ([`recipe_splits`]).

    Args:
        label_names (`list[str]`):
            The label names, in id order.
        task (`str`):
            The task (a problem type, or `"binary"`).
        train (`datasets.Dataset`):
            The labelled training rows (`data.train_size` of them).
        evals (`dict[str, datasets.Dataset]`):
            The labelled splits evaluated: validation, and test when it has labels.
        predict (`dict[str, datasets.Dataset]`):
            The unlabeled test split, predicted instead of evaluated (empty when none).
        transfer (`datasets.Dataset`):
            The transfer set ([`transfer_set`]), without its rows equal to a validation or test row.
        leakage (`dict[str, int]`, *optional*):
            The leakage guard's counts: `transfer_rows_dropped` (transfer rows equal to a validation or test row,
            dropped before the teacher's logits) and `train_rows_in_evaluation` (training rows equal to one, kept).
    """

    label_names: list[str]
    task: str
    train: Any
    evals: dict[str, Any]
    predict: dict[str, Any]
    transfer: Any
    leakage: dict[str, int] = field(default_factory=dict)

    @property
    def distilled(self) -> Any:
        """The rows the student is distilled on: the labelled training rows, then the transfer set (labels -100)."""
        from datasets import concatenate_datasets

        return concatenate_datasets(
            same_text_types([self.train.select_columns(self.transfer.column_names), self.transfer])
        )


def recipe_splits(config: DistillationPipelineConfig, cache_dir: str | None = None) -> RecipeSplits:
    """
    The splits of a recipe's data as a run uses them: the labelled training rows, the labelled splits to evaluate,
    an unlabeled test split to predict, and the transfer set.

    Args:
        config ([`~hf_kd.recipe.config.DistillationPipelineConfig`]):
            The recipe.
        cache_dir (`str`, *optional*):
            Where `datasets` keeps its cache files of the data.

    Returns:
        [`RecipeSplits`]: The splits.

    Raises:
        `ValueError`: When there is no train split, or the validation split is missing or has no labels.
    """
    data = config.data
    raw, names, task = load_recipe_data(config, cache_dir=cache_dir)
    if "train" not in raw:
        raise ValueError(f"The dataset has no 'train' split; splits: {list(raw)}.")
    if data.validation_size is not None:
        if data.validation_split in raw:
            raise ValueError(
                f"`data.validation_size` holds a validation split out of train, but the data has its own "
                f"{data.validation_split!r} split: remove one of them."
            )
        raw[data.validation_split], raw["train"] = hold_out_validation(
            raw["train"], data.validation_size, config.seed, task
        )
    elif data.validation_split not in raw:
        raise ValueError(
            f"Split {data.validation_split!r} not found; splits: {[s for s in raw if s != UNLABELED_SPLIT]}. "
            "Hold one out of train with `data.validation_size` (a fraction such as 0.1, or a count of rows)."
        )
    evals = {data.validation_split: labelled_split(raw, data.validation_split, data.label_column, "the threshold")}
    predict: dict[str, Any] = {}
    if data.test_split and data.test_split in raw and data.test_split != data.validation_split:
        test = raw[data.test_split]
        (evals if LABELS_COLUMN in test.column_names else predict)[data.test_split] = test
    transfer = transfer_set(raw, data, config.seed, len(names))
    if not task_type(task).classifier and len(transfer):
        # A regression target has no "unlabeled" value: -100 would be learnt as a target.
        raise ValueError(
            f"The transfer set ({len(transfer)} unlabeled rows: `data.unlabeled_files`, `data.unlabeled_from_corpus` "
            "or a split without labels) needs a classification task; this one is regression."
        )
    train = subset(raw["train"], data.train_size, config.seed)
    columns = [data.text_column, data.teacher_text_column]
    transfer, leakage = guard_leakage(train, transfer, list(evals.values()), columns)
    return RecipeSplits(
        label_names=names,
        task=task,
        train=train,
        evals={name: subset(ds, data.eval_size, config.seed) for name, ds in evals.items()},
        predict=predict,
        transfer=transfer,
        leakage=leakage,
    )


def _stratum_keys(labels: list[Any], task: str) -> list[Any]:
    """Each row's stratum: its class (single-label, binary), its rarest positive label (multi-label), or none."""
    if task in (SINGLE_LABEL, BINARY):
        return list(labels)
    if task == REGRESSION:
        return [0] * len(labels)
    matrix = np.asarray(labels, dtype=np.float64) > 0.5
    counts = matrix.sum(axis=0)
    rarity = np.where(matrix, counts[None, :], np.inf)
    return [int(np.argmin(row)) if np.isfinite(row).any() else -1 for row in rarity]


def hold_out_validation(train: Any, size: float, seed: int, task: str) -> tuple[Any, Any]:
    """
    Hold a validation split out of `train`, stratified and seeded (`data.validation_size`).

    Single-label and binary rows are stratified by class, multi-label rows by their rarest positive label (so that
    rare labels reach both sides as far as the data allows). With a `group` column (sentences of one abstract), whole
    documents are held out, stratified by their first row's stratum. Each stratum gives its share, rounded so that
    the total is exact (largest remainders).

    Args:
        train (`datasets.Dataset`):
            The training split, with `labels`.
        size (`float` or `int`):
            A fraction in (0, 1) of the rows (documents when grouped), or a count of them.
        seed (`int`):
            Seed of the draw.
        task (`str`):
            The task (a problem type, or `"binary"`).

    Returns:
        `tuple[datasets.Dataset, datasets.Dataset]`: The held-out validation split and the rest of train, both in
        train's order.

    Raises:
        `ValueError`: When the held-out split would have fewer than [`MIN_VALIDATION_ROWS`] rows, or would leave no
            training rows.
    """
    grouped = "group" in train.column_names
    row_keys = _stratum_keys(list(train[LABELS_COLUMN]), task)
    if grouped:
        row_groups = list(train["group"])
        groups = list(dict.fromkeys(row_groups))
        first = {}
        for group, key in zip(row_groups, row_keys):
            first.setdefault(group, key)
        unit_keys = [first[g] for g in groups]
    else:
        unit_keys = row_keys
    n_units = len(unit_keys)
    count = int(round(size * n_units)) if size < 1 else int(size)
    what = "documents" if grouped else "rows"
    if count >= n_units:
        raise ValueError(
            f"`data.validation_size` {size!r} holds out {count} of the {n_units} training {what}, leaving none to "
            "train on: give a smaller fraction or count."
        )
    rng = np.random.default_rng(seed)
    strata: dict[Any, list[int]] = {}
    for index, key in enumerate(unit_keys):
        strata.setdefault(key, []).append(index)
    shares = {key: count * len(members) / n_units for key, members in strata.items()}
    taken = {key: int(np.floor(share)) for key, share in shares.items()}
    order = sorted(strata, key=lambda k: (-(shares[k] - taken[k]), str(k)))
    for key in order[: count - sum(taken.values())]:
        taken[key] += 1
    held = set()
    for key in sorted(strata, key=str):
        members = strata[key]
        held.update(members[i] for i in rng.permutation(len(members))[: taken[key]])
    if grouped:
        held_groups = {groups[i] for i in held}
        held_rows = [i for i, g in enumerate(row_groups) if g in held_groups]
    else:
        held_rows = sorted(held)
    if len(held_rows) < MIN_VALIDATION_ROWS:
        raise ValueError(
            f"`data.validation_size` {size!r} holds out {len(held_rows)} rows of {len(train)}: too few to tune a "
            f"threshold or gate the teacher (at least {MIN_VALIDATION_ROWS}). Give a larger fraction or count."
        )
    kept = sorted(set(range(len(train))) - set(held_rows))
    return train.select(held_rows), train.select(kept)


def subset(dataset: Any, size: int | None, seed: int, rest: bool = False) -> Any:
    """
    A random subset of `size` examples, or of `size` documents when the dataset has a `group` column.

    Args:
        dataset (`datasets.Dataset`):
            One split.
        size (`int`, *optional*):
            Examples (or documents) to keep; all when None or larger than the split.
        seed (`int`):
            Seed of the draw.
        rest (`bool`, *optional*, defaults to `False`):
            Return the rows the draw leaves out instead (empty when it keeps everything).

    Returns:
        `datasets.Dataset`: The subset (or the rest), in the split's order for documents.
    """
    everything = size is None or size >= len(
        set(dataset["group"]) if "group" in dataset.column_names else range(len(dataset))
    )
    if everything:
        return dataset.select([]) if rest else dataset
    if "group" in dataset.column_names:
        groups = list(dict.fromkeys(dataset["group"]))
        rng = np.random.default_rng(seed)
        keep = set(rng.permutation(len(groups))[:size].tolist())
        chosen = {groups[i] for i in keep}
        return dataset.select([i for i, g in enumerate(dataset["group"]) if (g in chosen) != rest])
    shuffled = dataset.shuffle(seed=seed)
    return shuffled.select(range(size, len(dataset)) if rest else range(size))


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

    return tokenize_for_distillation(
        dataset, tokenizer, text_column=column, max_length=max_length, remove_text=True, word_alignment=False
    )


def tokenizer_processes(rows: int) -> int | None:
    """
    Processes for tokenizing `rows` rows with `datasets.map`: the cores this process may use (its share when
    several processes run), one per [`TOKENIZE_ROWS_PER_PROCESS`] rows; None (in this process) below that.

    Args:
        rows (`int`):
            The rows to tokenize.

    Returns:
        `int` or `None`: The `num_proc` of the map.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cores //= max(state().num_processes, 1)
    processes = min(cores, rows // TOKENIZE_ROWS_PER_PROCESS)
    return processes if processes > 1 else None


@dataclass
class TokenizedSplits:
    """
    The tokenized columns each model of a run reads ([`tokenize_splits`]).

    Args:
        teacher_train (`Dataset`):
            The labelled training rows, in the teacher's tokens (its fine-tuning).
        teacher_evals (`dict[str, Dataset]`):
            Split -> the evaluated rows in the teacher's tokens.
        student_train (`Dataset`):
            [`RecipeSplits.distilled`] in the student's tokens, with the teacher's side and the word alignment when
            the tokenizers differ.
        student_evals (`dict[str, Dataset]`):
            Split -> the evaluated rows in the student's tokens.
        student_predict (`dict[str, Dataset]`):
            Split -> the unlabeled rows the student predicts.
    """

    teacher_train: Any
    teacher_evals: dict[str, Any]
    student_train: Any
    student_evals: dict[str, Any]
    student_predict: dict[str, Any]


def tokenize_splits(
    splits: RecipeSplits, data: Any, teacher_tokenizer: Any, student_tokenizer: Any, distill_teacher_tokenizer: Any
) -> TokenizedSplits:
    """
    The tokenized columns each model of a run reads, from its [`RecipeSplits`].

    Args:
        splits ([`RecipeSplits`]):
            The run's splits.
        data (`hf_kd.recipe.sections.DataConfig`):
            The recipe's `data:` section (columns, lengths).
        teacher_tokenizer (`PreTrainedTokenizerBase`):
            The teacher's tokenizer (its fine-tuning and evaluation).
        student_tokenizer (`PreTrainedTokenizerBase`):
            The student's tokenizer (pruned or not).
        distill_teacher_tokenizer (`PreTrainedTokenizerBase`):
            The tokenizer the teacher reads during the distillation (`teacher_*` columns unless it is the student's).

    Returns:
        [`TokenizedSplits`]: The datasets of each model.
    """

    teacher_column = data.teacher_text_column or data.text_column
    teacher_length = data.teacher_max_length or data.max_length

    def teacher_side(dataset: Any) -> Any:
        return tokenize_side(dataset, teacher_tokenizer, teacher_column, teacher_length)

    def student_side(dataset: Any) -> Any:
        return tokenize_side(dataset, student_tokenizer, data.text_column, data.max_length)

    distilled_rows = splits.distilled
    distilled = tokenize_for_distillation(
        distilled_rows,
        student_tokenizer,
        teacher_tokenizer=distill_teacher_tokenizer,
        text_column=data.text_column,
        teacher_text_column=data.teacher_text_column,
        max_length=data.max_length,
        teacher_max_length=data.teacher_max_length,
        remove_text=True,
        num_proc=tokenizer_processes(len(distilled_rows)),
    )
    return TokenizedSplits(
        teacher_train=model_columns(teacher_side(splits.train)),
        teacher_evals={name: teacher_side(dataset) for name, dataset in splits.evals.items()},
        student_train=model_columns(distilled),
        student_evals={name: student_side(dataset) for name, dataset in splits.evals.items()},
        student_predict={name: student_side(dataset) for name, dataset in splits.predict.items()},
    )
