"""The distillation model card: Hub metadata and a markdown body saying what was distilled from what, and how well.

The card is built from settings, dataset ids and numbers only: no function here reads a dataset's rows, so no example
text (clinical notes, patient data) can reach a card. [`validate_model_card`] checks a written card offline, without
calling the Hub.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results

from ..constants import is_finite_number
from .card_data import DistillationCardData
from .report import build_report, format_table, quality_metrics

__all__ = [
    "REQUIRED_TAGS",
    "build_model_card",
    "validate_model_card",
    "write_model_card",
]

REQUIRED_TAGS: tuple[str, ...] = ("text-classification", "knowledge-distillation", "hf-kd")
"""Tags every distillation card carries (the first two also let the Hub list the model by task and method)."""

CARD_FILE = "README.md"
_DISTILL_LOSS_NAMES = {
    "kl": "softened softmax KL",
    "bernoulli_kl": "per-label sigmoid (Bernoulli) KL",
    "mse": "MSE between logits",
}
_METRIC_PREFIXES = ("eval_", "test_", "predict_")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


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


def _initialisation(data: DistillationCardData) -> str | None:
    if data.student_layers:
        return f"layers {', '.join(map(str, data.student_layers))} of the teacher (0-based)"
    return data.base_model


def _settings_table(data: DistillationCardData) -> str:
    rows: list[tuple[str, Any]] = [
        ("Teacher", data.teacher_id),
        ("Teacher revision", data.teacher_revision),
        ("Student initialisation", _initialisation(data)),
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
            A [`~hf_kd.reporting.report.build_report`] result: fills the metrics and ratios `card_data` lacks, and its
            full table (sizes, latency) goes in the body.

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
            A [`~hf_kd.reporting.report.build_report`] result (see [`build_model_card`]).

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
                if not is_finite_number(result.metric_value):
                    problems.append(f"metric {result.metric_type!r} has a non-finite value {result.metric_value!r}")
    text = card_path.read_text(encoding="utf-8")
    leaked = [s for s in forbidden if s and s in text]
    if leaked:
        problems.append(f"{len(leaked)} forbidden string(s) appear in the card")
    if problems:
        raise ValueError(f"Invalid model card {card_path}: " + "; ".join(problems) + ".")
    return card
