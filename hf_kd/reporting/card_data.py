"""What a distillation model card records ([`DistillationCardData`]), and how to read it off a trainer.

Only configuration is read (arguments, configs, dataset ids, metrics): never a dataset's rows.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate.utils import extract_model_from_parallel

from ..constants import is_finite_number
from ..evaluation.tasks import TASKS, task_type
from .report import quality_metrics

__all__ = ["DistillationCardData", "card_data_from_model_card_args", "card_data_from_trainer", "trainer_card_data"]

_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")


@dataclass
class DistillationCardData:
    """
    What a distillation model card records. Every field is optional; missing ones are left out of the card.

    Args:
        model_name (`str`, *optional*):
            Name of the student (the `model-index` name and the card title). Defaults to `"distilled-student"`.
        base_model (`str`, *optional*):
            Hub id of the checkpoint the student was initialised from (`base_model` metadata). A local path is kept
            out of the metadata.
        teacher_id (`str`, *optional*):
            Hub id (or name) of the teacher.
        teacher_revision (`str`, *optional*):
            Revision (commit or tag) of the teacher.
        problem_type (`str`, *optional*):
            The student's `config.problem_type`.
        temperature (`float`, *optional*):
            Softening temperature of the distillation term.
        alpha (`float`, *optional*):
            Weight of the hard-label loss (`1 - alpha` weighs the distillation term).
        losses (`dict[str, str]`, *optional*, defaults to `{}`):
            Loss used for each term, e.g. `{"hard": "cross-entropy", "distill": "kl", "hidden": "mse"}`.
        student_layers (`list[int]`, *optional*):
            The teacher layers (0-based) the student was built from, when it was (`hf_kd.student_from_teacher`).
        layer_mapping (`list[int]`, *optional*):
            Teacher layer matched by each student layer, when intermediate layers were distilled.
        loss_weights (`dict[str, float]`, *optional*, defaults to `{}`):
            Weights of the intermediate terms, e.g. `{"hidden": 1.0, "attention": 0.0}`.
        head_learning_rate (`float`, *optional*):
            Learning rate of the student's new head, when it differed from the encoder's.
        cached_teacher_logits (`bool`, *optional*):
            Whether the student learned from cached teacher logits rather than an online teacher.
        training (`dict[str, Any]`, *optional*, defaults to `{}`):
            Other training hyperparameters to list (learning rate, epochs, batch size, seed...).
        datasets (`list[str]`, *optional*, defaults to `[]`):
            Ids (or names) of the datasets used, never their content. The first one is the evaluation dataset of the
            `model-index` unless `eval_dataset` is set.
        eval_dataset (`str`, *optional*):
            Id of the dataset the metrics were computed on.
        eval_split (`str`, *optional*):
            Split the metrics were computed on (e.g. `"test"`).
        label_names (`list[str]`, *optional*, defaults to `[]`):
            The label names, in id order.
        teacher_metrics (`dict[str, float]`, *optional*, defaults to `{}`):
            The teacher's evaluation metrics.
        student_metrics (`dict[str, float]`, *optional*, defaults to `{}`):
            The student's evaluation metrics (they make the `model-index`).
        parameter_ratio (`float`, *optional*):
            Student / teacher parameter count.
        size_ratio (`float`, *optional*):
            Student / teacher size on disk.
        speedup (`dict[str, float]`, *optional*, defaults to `{}`):
            Teacher / student latency per example, keyed by batch size (`"1"`, `"32"`).
        language (`list[str]`, *optional*, defaults to `[]`):
            ISO 639-1 codes of the languages of the training text.
        license (`str`, *optional*):
            License id of the student (e.g. `"apache-2.0"`).
        tags (`list[str]`, *optional*, defaults to `[]`):
            Tags added to [`REQUIRED_TAGS`] (e.g. `"medical"`).
    """

    model_name: str | None = None
    base_model: str | None = None
    teacher_id: str | None = None
    teacher_revision: str | None = None
    problem_type: str | None = None
    temperature: float | None = None
    alpha: float | None = None
    losses: dict[str, str] = field(default_factory=dict)
    layer_mapping: list[int] | None = None
    student_layers: list[int] | None = None
    loss_weights: dict[str, float] = field(default_factory=dict)
    head_learning_rate: float | None = None
    cached_teacher_logits: bool | None = None
    training: dict[str, Any] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    eval_dataset: str | None = None
    eval_split: str | None = None
    label_names: list[str] = field(default_factory=list)
    teacher_metrics: dict[str, float] = field(default_factory=dict)
    student_metrics: dict[str, float] = field(default_factory=dict)
    parameter_ratio: float | None = None
    size_ratio: float | None = None
    speedup: dict[str, float] = field(default_factory=dict)
    language: list[str] = field(default_factory=list)
    license: str | None = None
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("datasets", "label_names", "language", "tags"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [value])
            else:
                setattr(self, name, [str(v) for v in value])

    def with_report(self, report: Mapping[str, Any]) -> DistillationCardData:
        """
        A copy with the metrics and ratios of a [`~hf_kd.reporting.report.build_report`] result filled in where this
        one has none.

        Args:
            report (`Mapping[str, Any]`):
                The teacher-vs-student report.

        Returns:
            [`DistillationCardData`]: The completed copy.
        """
        ratios = report.get("ratios", {})
        speedup = {str(k): float(v) for k, v in ratios.get("speedup", {}).items() if is_finite_number(v)}
        return dataclasses.replace(
            self,
            teacher_metrics=self.teacher_metrics or dict(report.get("teacher", {}).get("metrics", {})),
            student_metrics=self.student_metrics or dict(report.get("student", {}).get("metrics", {})),
            parameter_ratio=self.parameter_ratio if self.parameter_ratio is not None else ratios.get("parameters"),
            size_ratio=self.size_ratio if self.size_ratio is not None else ratios.get("size"),
            speedup=self.speedup or speedup,
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict.

        Returns:
            `dict[str, Any]`: One entry per field.
        """
        return dataclasses.asdict(self)


def _name_or_path(model: Any) -> str | None:
    if model is None:
        return None
    config = getattr(extract_model_from_parallel(model), "config", None)
    value = getattr(config, "_name_or_path", None) or getattr(config, "name_or_path", None)
    return str(value) if value else None


def card_data_from_trainer(
    trainer: Any,
    teacher_id: str | None = None,
    teacher_revision: str | None = None,
    dataset_names: Sequence[str] = (),
    metrics: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> DistillationCardData:
    """
    Read the distillation settings of a [`~hf_kd.DistillationTrainer`] (its `args`, student and teacher) into a
    [`DistillationCardData`]. Only configuration is read: never the datasets' rows.

    Args:
        trainer ([`~hf_kd.DistillationTrainer`]):
            The trainer (trained or not).
        teacher_id (`str`, *optional*):
            Hub id of the teacher. Defaults to the teacher's `config._name_or_path`.
        teacher_revision (`str`, *optional*):
            Teacher revision. Defaults to `args.teacher_model_init_kwargs["revision"]` when set.
        dataset_names (`Sequence[str]`, *optional*, defaults to `()`):
            Ids or names of the datasets used (the first is the evaluation dataset of the `model-index`).
        metrics (`Mapping[str, Any]`, *optional*):
            The student's evaluation metrics (e.g. `trainer.evaluate()`); non-numeric and non-finite entries and the
            runtime, throughput and epoch entries are dropped.
        **overrides (`Any`):
            Any other [`DistillationCardData`] field (`teacher_metrics`, `language`, `license`, `eval_split`,
            `tags`, ...), taking precedence over what is read from the trainer.

    Returns:
        [`DistillationCardData`]: The card data.
    """
    args = trainer.args
    student = getattr(trainer, "model", None)
    student = None if student is None else extract_model_from_parallel(student)
    teacher = getattr(trainer, "teacher_model", None)
    config = getattr(student, "config", None)
    problem_type = getattr(config, "problem_type", None)
    if teacher_id is None and teacher is not None:
        teacher_id = _name_or_path(teacher)
    init_kwargs = getattr(args, "teacher_model_init_kwargs", None) or {}
    if teacher_revision is None and init_kwargs.get("revision"):
        teacher_revision = str(init_kwargs["revision"])
    losses, loss_weights = _losses(args, problem_type)
    intermediate = getattr(trainer, "intermediate", None)
    layer_mapping = getattr(intermediate, "layer_mapping", None) or getattr(args, "layer_mapping", None)
    train_dataset = getattr(trainer, "train_dataset", None)
    cached = bool(
        getattr(args, "precompute_teacher_logits", False)
        or "teacher_logits" in (getattr(train_dataset, "column_names", None) or [])
        or teacher is None
    )
    hub_model_id = getattr(args, "hub_model_id", None)
    # A student built from the teacher's layers records them in its config (`hf_kd.student_from_teacher`): it was
    # initialised from the teacher, not from the folder it was last loaded from.
    student_layers = getattr(config, "hf_kd_teacher_layers", None)
    base_model = (getattr(config, "hf_kd_teacher", None) or teacher_id) if student_layers else _name_or_path(student)
    data = DistillationCardData(
        model_name=hub_model_id.split("/")[-1] if hub_model_id else Path(str(args.output_dir)).name or None,
        base_model=base_model,
        student_layers=list(student_layers) if student_layers else None,
        teacher_id=teacher_id,
        teacher_revision=teacher_revision,
        problem_type=problem_type,
        temperature=float(args.temperature),
        alpha=float(args.alpha),
        losses=losses,
        layer_mapping=list(layer_mapping) if layer_mapping is not None and loss_weights else None,
        loss_weights=loss_weights,
        head_learning_rate=args.head_learning_rate,
        cached_teacher_logits=cached,
        training=_training_settings(args),
        datasets=list(dataset_names),
        label_names=_label_names(config),
        student_metrics={k: v for k, v in quality_metrics(metrics).items() if math.isfinite(v)},
    )
    return dataclasses.replace(data, **overrides) if overrides else data


def _losses(args: Any, problem_type: str | None) -> tuple[dict[str, str], dict[str, float]]:
    """The losses a distillation's arguments choose for its task, and the intermediate terms' weights (empty when it
    has none)."""
    losses: dict[str, str] = {}
    if problem_type in TASKS:
        task = task_type(problem_type)
        losses["hard"] = task.hard_loss
        field = task.distillation_loss_field
        losses["distill"] = getattr(args, field) if field else "mse"
    else:
        losses["distill (single-label)"] = args.single_label_distillation_loss
        losses["distill (multi-label)"] = args.multi_label_distillation_loss
    hidden_weight = float(getattr(args, "hidden_loss_weight", 0.0))
    attention_weight = float(getattr(args, "attention_loss_weight", 0.0))
    if hidden_weight > 0:
        losses["hidden"] = args.hidden_loss
    if hidden_weight > 0 or attention_weight > 0:
        return losses, {"hidden states": hidden_weight, "attention maps": attention_weight}
    return losses, {}


def _training_settings(args: Any) -> dict[str, Any]:
    return {
        "Learning rate": args.learning_rate,
        "Epochs": float(args.num_train_epochs),
        "Batch size per device": args.per_device_train_batch_size,
        "Gradient accumulation steps": args.gradient_accumulation_steps,
        "Seed": args.seed,
    }


def _label_names(config: Any) -> list[str]:
    """The student's label names, unless they are `transformers`' defaults (`LABEL_0`, ...)."""
    id2label = getattr(config, "id2label", None) or {}
    if id2label and not all(_DEFAULT_LABEL.match(str(v)) for v in id2label.values()):
        return [str(id2label[i]) for i in sorted(id2label)]
    return []


def card_data_from_model_card_args(
    trainer: Any,
    language: str | None = None,
    license: str | None = None,
    tags: str | list[str] | None = None,
    model_name: str | None = None,
    finetuned_from: str | None = None,
    tasks: str | list[str] | None = None,
    dataset_tags: str | list[str] | None = None,
    dataset: str | list[str] | None = None,
    dataset_args: str | list[str] | None = None,
    **overrides: Any,
) -> DistillationCardData:
    """
    The card data of `DistillationTrainer.create_model_card` (and so of `push_to_hub`), from the arguments
    `Trainer.create_model_card` takes (`language`, `license`, `tags`, `finetuned_from`, `dataset_tags`, ...); built by
    [`card_data_from_trainer`].

    The student's metrics are those of its last evaluation in `trainer.state.log_history`. Without dataset ids, the
    `model-index` names the evaluation dataset by its own name (`eval_dataset.info.dataset_name`), or "evaluation
    set" for an in-memory dataset, so that the Hub still shows the results.

    Args:
        trainer ([`~hf_kd.DistillationTrainer`]):
            The trainer.
        language (`str`, *optional*):
            Language of the training text (ISO 639-1).
        license (`str`, *optional*):
            License id.
        tags (`str` or `list[str]`, *optional*):
            Tags added to the `hf-kd` and `knowledge-distillation` ones.
        model_name (`str`, *optional*):
            The card's title.
        finetuned_from (`str`, *optional*):
            Hub id the student started from (`base_model`).
        tasks (`str` or `list[str]`, *optional*):
            Unused: the task is text classification.
        dataset_tags (`str` or `list[str]`, *optional*):
            Dataset ids.
        dataset (`str` or `list[str]`, *optional*):
            Dataset names, when `dataset_tags` is not given.
        dataset_args (`str` or `list[str]`, *optional*):
            Unused.
        **overrides (`Any`):
            Other [`DistillationCardData`] fields (e.g. `teacher_metrics`, `eval_split`).

    Returns:
        [`DistillationCardData`]: The card data.
    """
    evaluated = [entry for entry in trainer.state.log_history if any(k.startswith("eval_") for k in entry)]
    names = dataset_tags if dataset_tags is not None else dataset
    if not names and evaluated and "eval_dataset" not in overrides:
        info = getattr(getattr(trainer, "eval_dataset", None), "info", None)
        overrides["eval_dataset"] = getattr(info, "dataset_name", None) or "evaluation set"
    given = {"language": language, "license": license, "model_name": model_name, "base_model": finetuned_from}
    return card_data_from_trainer(
        trainer,
        dataset_names=[names] if isinstance(names, str) else list(names or []),
        metrics=evaluated[-1] if evaluated else None,
        tags=[tags] if isinstance(tags, str) else list(tags or []),
        **{k: v for k, v in given.items() if v is not None},
        **overrides,
    )


def trainer_card_data(trainer: Any, *args: Any, **kwargs: Any) -> DistillationCardData:
    """
    Deprecated alias of [`card_data_from_model_card_args`], kept for old imports.

    Args:
        trainer ([`~hf_kd.DistillationTrainer`]):
            The trainer.
        *args (`Any`):
            `Trainer.create_model_card`'s arguments.
        **kwargs (`Any`):
            `Trainer.create_model_card`'s keyword arguments and card fields.

    Returns:
        [`DistillationCardData`]: The card data.
    """
    warnings.warn(
        "`trainer_card_data` is deprecated; use `card_data_from_model_card_args` (or `card_data_from_trainer`).",
        FutureWarning,
        stacklevel=2,
    )
    return card_data_from_model_card_args(trainer, *args, **kwargs)
