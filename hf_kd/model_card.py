"""The distillation model card: Hub metadata and a markdown body saying what was distilled from what, and how well.

The card is built from settings, dataset ids and numbers only: no function here reads a dataset's rows, so no example
text (clinical notes, patient data) can reach a card. [`validate_model_card`] checks a written card offline, without
calling the Hub.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate.utils import extract_model_from_parallel
from huggingface_hub import EvalResult, ModelCard, ModelCardData, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results

from .report import build_report, format_table, quality_metrics

__all__ = [
    "REQUIRED_TAGS",
    "DistillationCardData",
    "build_model_card",
    "card_data_from_trainer",
    "validate_model_card",
    "write_model_card",
]

REQUIRED_TAGS: tuple[str, ...] = ("text-classification", "knowledge-distillation", "hf-kd")
"""Tags every distillation card carries (the first two also let the Hub list the model by task and method)."""

CARD_FILE = "README.md"
_METRIC_PREFIXES = ("eval_", "test_", "predict_")
_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_HARD_LOSSES = {
    "single_label_classification": "cross-entropy",
    "multi_label_classification": "binary cross-entropy",
    "regression": "MSE",
}
_DISTILL_LOSS_NAMES = {
    "kl": "softened softmax KL",
    "bernoulli_kl": "per-label sigmoid (Bernoulli) KL",
    "mse": "MSE between logits",
}


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
        A copy with the metrics and ratios of a [`~hf_kd.report.build_report`] result filled in where this one has
        none.

        Args:
            report (`Mapping[str, Any]`):
                The teacher-vs-student report.

        Returns:
            [`DistillationCardData`]: The completed copy.
        """
        ratios = report.get("ratios", {})
        speedup = {str(k): float(v) for k, v in ratios.get("speedup", {}).items() if _is_finite(v)}
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


def _is_finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _is_hub_id(value: str | None) -> bool:
    """Whether `value` looks like a Hub repo id rather than a local path."""
    if not value or value.startswith((".", "/", "~")) or "\\" in value or ".." in value:
        return False
    return bool(_REPO_ID.match(value)) and len(value) <= 96


def _metric_type(key: str) -> str:
    for prefix in _METRIC_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _eval_results(data: DistillationCardData) -> list[EvalResult]:
    dataset = data.eval_dataset or (data.datasets[0] if data.datasets else None)
    if dataset is None:
        return []
    results = []
    for key, value in quality_metrics(data.student_metrics).items():
        if not math.isfinite(value):
            continue
        results.append(
            EvalResult(
                task_type="text-classification",
                task_name="Text Classification",
                dataset_type=dataset,
                dataset_name=dataset,
                dataset_split=data.eval_split,
                metric_type=_metric_type(key),
                metric_name=key,
                metric_value=float(value),
            )
        )
    return results


def _model_link(model_id: str | None) -> str:
    if not model_id:
        return "an unnamed model"
    return f"[{model_id}](https://huggingface.co/{model_id})" if _is_hub_id(model_id) else f"`{model_id}`"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) if value else "–"
    return str(value).replace("|", "\\|")


def _settings_table(data: DistillationCardData) -> str:
    rows: list[tuple[str, Any]] = [
        ("Teacher", data.teacher_id),
        ("Teacher revision", data.teacher_revision),
        ("Student initialisation", data.base_model),
        ("Task", data.problem_type),
        ("Temperature", data.temperature),
        ("Alpha (weight of the hard-label loss)", data.alpha),
    ]
    for term, loss in data.losses.items():
        rows.append((f"Loss: {term}", _DISTILL_LOSS_NAMES.get(loss, loss) if term == "distill" else loss))
    for term, weight in data.loss_weights.items():
        rows.append((f"Weight: {term}", weight))
    if data.layer_mapping is not None:
        rows.append(("Layer mapping (teacher layer per student layer)", data.layer_mapping))
    rows.append(("Head learning rate", data.head_learning_rate))
    rows.append(("Cached teacher logits", data.cached_teacher_logits))
    rows.extend((str(k), v) for k, v in data.training.items())
    lines = ["| Setting | Value |", "|---|---|"]
    lines += [f"| {_fmt(name)} | {_fmt(value)} |" for name, value in rows if value is not None]
    return "\n".join(lines) + "\n"


def _framework_versions() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    lines = []
    for package in ("hf-kd", "transformers", "torch", "huggingface-hub"):
        try:
            lines.append(f"- {package} {version(package)}")
        except PackageNotFoundError:
            continue
    return lines


def _body(data: DistillationCardData, report: Mapping[str, Any] | None) -> str:
    name = data.model_name or "distilled-student"
    task = f" ({data.problem_type.replace('_', ' ')})" if data.problem_type else ""
    parts = [
        f"# {name}",
        "",
        f"A text classifier{task} distilled with `hf_kd` (knowledge distillation on top of `transformers.Trainer`) "
        f"from the teacher {_model_link(data.teacher_id)}"
        + (f" at revision `{data.teacher_revision}`" if data.teacher_revision else "")
        + (f", into a student initialised from {_model_link(data.base_model)}." if data.base_model else "."),
        "",
    ]
    if data.datasets:
        parts += ["Datasets: " + ", ".join(f"`{d}`" for d in data.datasets) + ".", ""]
    if data.label_names:
        parts += ["Labels: " + ", ".join(f"`{label}`" for label in data.label_names) + ".", ""]

    parts += ["## Distillation settings", "", _settings_table(data)]

    parts += ["## Teacher vs student", ""]
    if report is not None:
        parts.append(format_table(report))
    elif data.teacher_metrics or data.student_metrics:
        table_report = build_report({"metrics": data.teacher_metrics}, {"metrics": data.student_metrics})
        table_report["ratios"].update(
            parameters=data.parameter_ratio, size=data.size_ratio, speedup=dict(data.speedup)
        )
        parts.append(format_table(table_report))
    else:
        parts.append("No evaluation results were recorded.\n")
    evaluated_on = data.eval_dataset or (data.datasets[0] if data.datasets else None)
    if evaluated_on:
        split = f" ({data.eval_split} split)" if data.eval_split else ""
        parts += [f"Metrics computed on `{evaluated_on}`{split}.", ""]

    parts += [
        "## Intended use",
        "",
        "A smaller, faster stand-in for the teacher on the same task and label set, for research and for decision "
        "support reviewed by qualified people. It is not a medical device and must not make clinical decisions on "
        "its own.",
        "",
        "## Limitations",
        "",
        "- The student inherits the teacher's errors and biases, and usually scores somewhat below it (see the "
        "table); check the per-label scores before relying on rare labels.",
        "- The metrics hold for the evaluation data above; text from other institutions, specialties, languages or "
        "time periods may score lower.",
        "- Decision thresholds tuned on one dataset may not transfer to another.",
        "",
        "## Privacy",
        "",
        "This card contains no training, evaluation or example text: only dataset ids, label names, settings and "
        "aggregate metrics. Latency was measured on synthetic token ids. As with any "
        "model trained on sensitive text, memorisation cannot be ruled out; assess it before sharing the weights "
        "outside the data's governance.",
        "",
    ]
    versions = _framework_versions()
    if versions:
        parts += ["## Framework versions", "", *versions, ""]
    return "\n".join(parts)


def build_model_card(card_data: DistillationCardData, report: Mapping[str, Any] | None = None) -> ModelCard:
    """
    Build the distillation model card: Hub metadata and a markdown body.

    The metadata is produced by `huggingface_hub.ModelCardData`: `library_name: transformers`, `pipeline_tag:
    text-classification`, `tags` ([`REQUIRED_TAGS`] plus `card_data.tags`), `base_model` (when it is a Hub id),
    `datasets`, `language`, `license`, and a `model-index` with one result per finite student metric (runtime,
    throughput and epoch entries left out) on `eval_dataset`, or the first dataset (no `model-index` without a
    dataset). The body says what was distilled from what, lists the settings, the teacher-vs-student table, intended
    use, limitations and a privacy note. It never holds example text.

    Args:
        card_data ([`DistillationCardData`]):
            What to record.
        report (`Mapping[str, Any]`, *optional*):
            A [`~hf_kd.report.build_report`] result: fills the metrics and ratios `card_data` lacks, and its full
            table (sizes, latency) goes in the body.

    Returns:
        `huggingface_hub.ModelCard`: The card (save it with `card.save(path)` or [`write_model_card`]).
    """
    data = card_data.with_report(report) if report is not None else card_data
    tags = list(REQUIRED_TAGS) + [t for t in data.tags if t not in REQUIRED_TAGS]
    eval_results = _eval_results(data)
    metadata = ModelCardData(
        model_name=data.model_name or "distilled-student",
        base_model=data.base_model if _is_hub_id(data.base_model) else None,
        datasets=list(data.datasets) or None,
        language=list(data.language) or None,
        license=data.license,
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=tags,
        eval_results=eval_results or None,
    )
    content = f"---\n{metadata.to_yaml()}\n---\n\n{_body(data, report)}"
    return ModelCard(content)


def write_model_card(
    output_dir: str | Path, card_data: DistillationCardData, report: Mapping[str, Any] | None = None
) -> Path:
    """
    Write the card as `README.md` into `output_dir` (e.g. the student's `save_pretrained` folder, which
    `push_to_hub` uploads), replacing any README there, and validate it with [`validate_model_card`] (a missing
    `model-index` is allowed here).

    Args:
        output_dir (`str` or `Path`):
            The folder that will be pushed; created if needed.
        card_data ([`DistillationCardData`]):
            What to record.
        report (`Mapping[str, Any]`, *optional*):
            A [`~hf_kd.report.build_report`] result (see [`build_model_card`]).

    Returns:
        `Path`: The `README.md` written.
    """
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CARD_FILE
    build_model_card(card_data, report).save(path)
    validate_model_card(path, require_model_index=False)
    return path


def validate_model_card(
    path: str | Path, forbidden: Iterable[str] = (), require_model_index: bool = True
) -> ModelCard:
    """
    Load a written card back and check its metadata, offline (the Hub is never called).

    Checks that the YAML header parses (`huggingface_hub.metadata_load`), that `library_name` is `transformers`,
    that the tags include [`REQUIRED_TAGS`], that `base_model` and `datasets` are strings or lists of strings, and
    that the `model-index` parses into evaluation results (`model_index_to_eval_results`) with finite metric values.

    Args:
        path (`str` or `Path`):
            The `README.md`, or the folder holding it.
        forbidden (`Iterable[str]`, *optional*, defaults to `()`):
            Strings that must not appear anywhere in the card, e.g. a few training texts to prove none leaked.
        require_model_index (`bool`, *optional*, defaults to `True`):
            Whether a card without `model-index` (no metrics or no dataset were given) is invalid. A `model-index`
            that is present is always checked.

    Returns:
        `huggingface_hub.ModelCard`: The loaded card.

    Raises:
        `ValueError`: Listing every problem found.
    """
    card_path = Path(path)
    if card_path.is_dir():
        card_path = card_path / CARD_FILE
    if not card_path.is_file():
        raise ValueError(f"No model card at {card_path}.")
    problems: list[str] = []
    metadata = metadata_load(card_path)
    if metadata is None:
        raise ValueError(f"Invalid model card {card_path}: no YAML metadata header.")
    try:
        # A `Path` (not a str) so that `ModelCard.load` reads the file and never falls back to a Hub download.
        card = ModelCard.load(card_path)
    except ValueError as error:
        raise ValueError(f"Invalid model card {card_path}: the metadata does not parse ({error})") from error

    if metadata.get("library_name") != "transformers":
        problems.append(f"library_name is {metadata.get('library_name')!r}, expected 'transformers'")
    tags = metadata.get("tags") or []
    missing = [tag for tag in REQUIRED_TAGS if tag not in tags]
    if missing:
        problems.append(f"tags lack {missing}")
    for key in ("base_model", "datasets", "language"):
        value = metadata.get(key)
        if value is not None and not (
            isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            problems.append(f"{key} must be a string or a list of strings, got {value!r}")
    model_index = metadata.get("model-index")
    if model_index is None:
        if require_model_index:
            problems.append("no model-index")
    else:
        try:
            _, results = model_index_to_eval_results(model_index)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            problems.append(f"model-index does not parse: {error!r}")
        else:
            if not results:
                problems.append("model-index has no result")
            for result in results:
                if not _is_finite(result.metric_value):
                    problems.append(f"metric {result.metric_type!r} has a non-finite value {result.metric_value!r}")
    text = card_path.read_text(encoding="utf-8")
    leaked = [s for s in forbidden if s and s in text]
    if leaked:
        problems.append(f"{len(leaked)} forbidden string(s) appear in the card")
    if problems:
        raise ValueError(f"Invalid model card {card_path}: " + "; ".join(problems) + ".")
    return card


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

    losses: dict[str, str] = {}
    if problem_type in _HARD_LOSSES:
        losses["hard"] = _HARD_LOSSES[problem_type]
    if problem_type == "single_label_classification":
        losses["distill"] = args.single_label_distillation_loss
    elif problem_type == "multi_label_classification":
        losses["distill"] = args.multi_label_distillation_loss
    elif problem_type == "regression":
        losses["distill"] = "mse"
    else:
        losses["distill (single-label)"] = args.single_label_distillation_loss
        losses["distill (multi-label)"] = args.multi_label_distillation_loss
    hidden_weight = float(getattr(args, "hidden_loss_weight", 0.0))
    attention_weight = float(getattr(args, "attention_loss_weight", 0.0))
    if hidden_weight > 0:
        losses["hidden"] = args.hidden_loss
    loss_weights = {}
    if hidden_weight > 0 or attention_weight > 0:
        loss_weights = {"hidden states": hidden_weight, "attention maps": attention_weight}
    intermediate = getattr(trainer, "intermediate", None)
    layer_mapping = getattr(intermediate, "layer_mapping", None) or getattr(args, "layer_mapping", None)
    if not loss_weights:
        layer_mapping = None

    train_dataset = getattr(trainer, "train_dataset", None)
    cached = bool(
        getattr(args, "precompute_teacher_logits", False)
        or "teacher_logits" in (getattr(train_dataset, "column_names", None) or [])
        or teacher is None
    )
    label_names: list[str] = []
    id2label = getattr(config, "id2label", None) or {}
    if id2label and not all(_DEFAULT_LABEL.match(str(v)) for v in id2label.values()):
        label_names = [str(id2label[i]) for i in sorted(id2label)]

    hub_model_id = getattr(args, "hub_model_id", None)
    model_name = hub_model_id.split("/")[-1] if hub_model_id else Path(str(args.output_dir)).name or None
    student_metrics = {k: v for k, v in quality_metrics(metrics).items() if math.isfinite(v)}
    training = {
        "Learning rate": args.learning_rate,
        "Epochs": float(args.num_train_epochs),
        "Batch size per device": args.per_device_train_batch_size,
        "Gradient accumulation steps": args.gradient_accumulation_steps,
        "Seed": args.seed,
    }
    data = DistillationCardData(
        model_name=model_name,
        base_model=_name_or_path(student),
        teacher_id=teacher_id,
        teacher_revision=teacher_revision,
        problem_type=problem_type,
        temperature=float(args.temperature),
        alpha=float(args.alpha),
        losses=losses,
        layer_mapping=list(layer_mapping) if layer_mapping is not None else None,
        loss_weights=loss_weights,
        head_learning_rate=args.head_learning_rate,
        cached_teacher_logits=cached,
        training=training,
        datasets=list(dataset_names),
        label_names=label_names,
        student_metrics=student_metrics,
    )
    return dataclasses.replace(data, **overrides) if overrides else data
