"""Post-hoc evaluation of a classifier on a recipe's splits: one path, used by the pipeline and by `hf-kd evaluate`.

A model's logits on each split come from `Trainer.predict` (the student alone, never the teacher), and the metrics of
`hf_kd.metrics` are computed from them. For multi-label tasks one global threshold is tuned on the validation split
(`evaluation.tune_threshold`) and applied to every split, and sentence-level splits with a `group` column also get
BLURB's abstract-level scores (`blurb_*`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import DistillationTrainingArguments
from .constants import LABELS_COLUMN, MULTI_LABEL, SINGLE_LABEL, problem_type_of_feature
from .distributed import on_cpu, start_state
from .models import load_classifier, load_tokenizer
from .recipe import DistillationPipelineConfig
from .recipe_data import load_recipe_data, model_columns, subset, tokenize_side

__all__ = [
    "evaluate_model",
    "evaluate_splits",
    "headline",
    "predict_logits",
    "result_summary",
    "split_metrics",
    "trainer_compute_metrics",
]


def trainer_compute_metrics(problem_type: str, label_names: Sequence[str], tune: bool) -> Any:
    """
    The `compute_metrics` of the pipeline's trainers (and the search objective): the numbers the report shows.

    Multi-label metrics are taken at the threshold tuned on the evaluated (validation) predictions, as in the report,
    so that the trainers' eval metrics and the search objective are the report's numbers for that split.

    Args:
        problem_type (`str`):
            The task.
        label_names (`Sequence[str]`):
            The label names.
        tune (`bool`):
            Multi-label: tune the threshold (else 0.5).

    Returns:
        `Callable`: For `Trainer(compute_metrics=...)`.
    """
    from .metrics import make_compute_metrics

    multi_label = problem_type == MULTI_LABEL
    threshold = "tune" if multi_label and tune else 0.5
    return make_compute_metrics(problem_type, threshold=threshold, label_names=label_names if multi_label else None)


def split_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    problem_type: str,
    label_names: Sequence[str],
    threshold: float,
) -> dict[str, float]:
    """
    The metrics of one split from its logits.

    Args:
        logits (`np.ndarray`):
            The model's logits, one row per example.
        labels (`np.ndarray`):
            The split's labels.
        groups (`np.ndarray`, *optional*):
            Document ids (e.g. PMIDs of sentence-level HoC): BLURB's document-level scores are added when documents
            have several rows.
        problem_type (`str`):
            The task.
        label_names (`Sequence[str]`):
            The label names (per-label F1 keys).
        threshold (`float`):
            Multi-label decision threshold.

    Returns:
        `dict[str, float]`: The metrics.
    """
    from .corpora import blurb_hoc_f1
    from .metrics import multilabel_metrics, sigmoid, single_label_metrics, softmax

    if problem_type == MULTI_LABEL:
        probs = sigmoid(logits)
        out = dict(multilabel_metrics(probs, labels, threshold=threshold, label_names=label_names))
        if groups is not None and len(np.unique(groups)) < len(groups):
            blurb = blurb_hoc_f1(probs, labels, groups, threshold=threshold)
            out.update({f"blurb_{k}": v for k, v in blurb.items()})
        out["threshold"] = float(threshold)
        return out
    if problem_type == SINGLE_LABEL:
        return dict(single_label_metrics(softmax(logits, axis=-1), labels))
    preds = logits.reshape(len(labels), -1)[:, 0]
    errors = preds.astype(np.float64) - np.asarray(labels, dtype=np.float64).reshape(-1)
    return {"mse": float(np.mean(errors**2)), "mae": float(np.mean(np.abs(errors)))}


def predict_logits(model: Any, tokenizer: Any, dataset: Any, output_dir: Path, batch_size: int) -> np.ndarray:
    """
    A model's logits on a tokenized split, with `Trainer.predict`.

    Args:
        model (`PreTrainedModel`):
            The classifier.
        tokenizer (`PreTrainedTokenizerBase`):
            Its tokenizer (padding).
        dataset (`datasets.Dataset`):
            The tokenized split.
        output_dir (`Path`):
            Scratch folder of the trainer.
        batch_size (`int`):
            Examples per forward pass.

    Returns:
        `np.ndarray`: float64 logits, one row per example.
    """
    from .trainer import DistillationTrainer

    args = DistillationTrainingArguments(
        output_dir=str(output_dir), per_device_eval_batch_size=batch_size, report_to="none", use_cpu=on_cpu()
    )
    trainer = DistillationTrainer(model=model, args=args, processing_class=tokenizer)
    output = trainer.predict(model_columns(dataset, teacher_side=False))
    predictions = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    return np.asarray(predictions, dtype=np.float64)


def evaluate_splits(
    model: Any,
    tokenizer: Any,
    splits: Mapping[str, Any],
    validation_split: str,
    problem_type: str,
    label_names: Sequence[str],
    tune: bool,
    output_dir: Path,
    batch_size: int,
) -> dict[str, dict[str, float]]:
    """
    The metrics of every split, the multi-label threshold tuned on `validation_split`.

    Args:
        model (`PreTrainedModel`):
            The classifier.
        tokenizer (`PreTrainedTokenizerBase`):
            Its tokenizer.
        splits (`Mapping[str, datasets.Dataset]`):
            Tokenized splits by name.
        validation_split (`str`):
            The split the threshold is tuned on.
        problem_type (`str`):
            The task.
        label_names (`Sequence[str]`):
            The label names.
        tune (`bool`):
            Tune the multi-label threshold (else 0.5).
        output_dir (`Path`):
            Scratch folder.
        batch_size (`int`):
            Examples per forward pass.

    Returns:
        `dict[str, dict[str, float]]`: Split -> metrics.
    """
    from .metrics import sigmoid
    from .thresholds import tune_thresholds

    raw: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    for name, dataset in splits.items():
        logits = predict_logits(model, tokenizer, dataset, output_dir, batch_size)
        labels = np.asarray(dataset[LABELS_COLUMN])
        groups = np.asarray(dataset["group"]) if "group" in dataset.column_names else None
        raw[name] = (logits, labels, groups)
    threshold = 0.5
    if tune and problem_type == MULTI_LABEL and validation_split in raw:
        logits, labels, _ = raw[validation_split]
        threshold = float(tune_thresholds(sigmoid(logits), labels))
    return {
        name: split_metrics(logits, labels, groups, problem_type, label_names, threshold)
        for name, (logits, labels, groups) in raw.items()
    }


def headline(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """
    Split-prefixed headline metrics (no per-label entries) for the report, e.g. `validation_micro_f1`.

    Args:
        metrics (`Mapping[str, Mapping[str, float]]`):
            Split -> metrics.

    Returns:
        `dict[str, float]`: The headline metrics.
    """
    out: dict[str, float] = {}
    for split, values in metrics.items():
        for key, value in values.items():
            if key.startswith("f1_") or key in ("blurb_n_documents", "threshold"):
                continue
            out[f"{split}_{key}"] = value
    return out


def result_summary(
    teacher_metrics: Mapping[str, Mapping[str, float]], student_metrics: Mapping[str, Mapping[str, float]]
) -> dict[str, Any]:
    """
    Headline metrics of both models, split-prefixed (e.g. `validation_micro_f1`, `test_micro_f1`).

    Args:
        teacher_metrics (`Mapping[str, Mapping[str, float]]`):
            The teacher's metrics per split.
        student_metrics (`Mapping[str, Mapping[str, float]]`):
            The student's metrics per split.

    Returns:
        `dict[str, Any]`: `{"teacher": {...}, "student": {...}}`.
    """
    return {"teacher": headline(teacher_metrics), "student": headline(student_metrics)}


def evaluate_model(
    config: DistillationPipelineConfig, model: str, split: str = "validation", side: str = "student"
) -> dict[str, float]:
    """
    Evaluate a saved classifier on a split of the recipe's data, with the pipeline's metrics (`hf-kd evaluate`).

    For multi-label tasks the threshold is tuned on the validation split (when `evaluation.tune_threshold`) and
    applied to `split`.

    Args:
        config ([`~hf_kd.recipe.DistillationPipelineConfig`]):
            The recipe (its data section and evaluation settings are used).
        model (`str`):
            Folder (or Hub id) of the classifier; its tokenizer is loaded from there.
        split (`str`, *optional*, defaults to `"validation"`):
            Split to report.
        side (`str`, *optional*, defaults to `"student"`):
            Which text column and maximum length to use: the student's (`text_column`, `max_length`) or the
            teacher's (`teacher_text_column`, `teacher_max_length`).

    Returns:
        `dict[str, float]`: The metrics of `split`.
    """
    if side not in ("student", "teacher"):
        raise ValueError(f"`side` must be 'student' or 'teacher', got {side!r}.")
    start_state(cpu=config.use_cpu)
    raw, label_names = load_recipe_data(config)
    validation = config.data.validation_split
    for name in {split, validation}:
        if name not in raw:
            raise ValueError(f"Split {name!r} not found; splits: {list(raw)}.")
    problem_type = problem_type_of_feature((raw["train"] if "train" in raw else raw[split]).features[LABELS_COLUMN])
    if side == "teacher":
        column = config.data.teacher_text_column or config.data.text_column
        length = config.data.teacher_max_length or config.data.max_length
    else:
        column, length = config.data.text_column, config.data.max_length
    tokenizer = load_tokenizer(model)
    splits = {
        name: tokenize_side(subset(raw[name], config.data.eval_size, config.seed), tokenizer, column, length)
        for name in dict.fromkeys([validation, split])
    }
    metrics = evaluate_splits(
        load_classifier(model, label_names, problem_type),
        tokenizer,
        splits,
        validation,
        problem_type,
        label_names,
        config.evaluation.tune_threshold,
        Path(config.output_dir) / "evaluate_tmp",
        config.evaluation.batch_size,
    )
    return metrics[split]
