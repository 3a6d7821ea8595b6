"""The checks of a whole recipe before any stage runs: each stage's arguments, the models against the data and the
recipe, the metrics the gate and the search read.

A mistake found here costs seconds; found after the teacher's fine-tuning, it costs minutes on a CPU and hours on a
real teacher. Only configs are read (`AutoConfig`), never weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transformers import AutoConfig

from ..data.coverage import check_unknown_rates, sample_texts, unknown_token_rate
from ..data.tokenizer_identity import same_tokenization
from ..evaluation.model_stats import usable_positions
from ..evaluation.tasks import default_metric, metric_names
from ..recipe.config import DistillationPipelineConfig
from ..training.intermediate import layer_count
from ..training.model_files import diagnose_model_folder
from .builders import general_arguments, stage_training_args
from .splits import RecipeSplits

__all__ = ["check_language", "check_model_path", "check_run"]

# Tokenizers without a real limit report a huge sentinel `model_max_length`.
_MAX_REAL_MODEL_LENGTH = 1_000_000


def check_model_path(name: str, field: str) -> Any:
    """
    Load a model's config, with an error that says when a local path does not exist.

    Args:
        name (`str`):
            Local path or Hub id.
        field (`str`):
            The recipe field that names it (e.g. `teacher.model`), for the message.

    Returns:
        `PretrainedConfig`: The config.

    Raises:
        `ValueError`: When a local path does not exist, or no config can be loaded from `name`.
    """

    path = Path(os.path.expanduser(name))
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if not path.exists() and looks_local:
        raise ValueError(f"`{field}`: the path {name!r} does not exist.")
    if path.is_dir() and (problem := diagnose_model_folder(path)) is not None:
        raise ValueError(f"`{field}`: {problem}.")
    try:
        return AutoConfig.from_pretrained(str(path) if path.exists() else name)
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        where = "the local folder" if path.exists() else "a local folder, and the Hub"
        raise ValueError(f"`{field}`: no model config could be read from {name!r} ({where}: {first})") from None


def check_language(config: Any, splits: Any, teacher_tokenizer: Any, student_tokenizer: Any) -> dict[str, Any]:
    """
    Measure each tokenizer's unknown-token rate on a sample of the training text and of the transfer set, warn above
    1 % and refuse above `data.max_unknown_rate` (`hf_kd.data.coverage`).

    Args:
        config (`hf_kd.recipe.config.DistillationPipelineConfig`):
            The recipe.
        splits (`hf_kd.pipeline.splits.RecipeSplits`):
            The run's splits.
        teacher_tokenizer (`PreTrainedTokenizerBase`):
            The teacher's tokenizer.
        student_tokenizer (`PreTrainedTokenizerBase`):
            The student's tokenizer before any pruning (the same object as the teacher's when it shares it).

    Returns:
        `dict[str, Any]`: `{"teacher": {"tokenizer", "train", "transfer set"}, "student": {...}}`, rates in [0, 1]
        (`None` where a split has no text); the report records it.

    Raises:
        `ValueError`: Naming the tokenizer, the split and the rate, when a rate is above `data.max_unknown_rate`.
    """

    data = config.data
    sides = {"teacher": (teacher_tokenizer, data.teacher_text_column or data.text_column, config.teacher.tokenizer)}
    if student_tokenizer is not teacher_tokenizer or data.text_column != sides["teacher"][1]:
        sides["student"] = (student_tokenizer, data.text_column, config.student.tokenizer or config.student.model)
    rates: dict[str, Any] = {}
    for side, (tokenizer, column, name) in sides.items():
        name = name or (config.teacher.tokenizer or config.teacher.model)
        rates[side] = {"tokenizer": str(name)}
        for split, dataset in (("train", splits.train), ("transfer set", splits.transfer)):
            rates[side][split] = unknown_token_rate(tokenizer, sample_texts(dataset, column, seed=config.seed))
    named = {
        f"{side} tokenizer ({values['tokenizer']})": {k: v for k, v in values.items() if k != "tokenizer"}
        for side, values in rates.items()
    }
    check_unknown_rates(named, data.max_unknown_rate)
    return rates


def _check_length(length: int | None, config: Any, tokenizer: Any, field: str, model: str) -> None:
    positions = usable_positions(config)
    if positions is None:
        return
    if length is None:
        limit = getattr(tokenizer, "model_max_length", None)
        if limit is None or limit > _MAX_REAL_MODEL_LENGTH or limit > positions:
            raise ValueError(
                f"`{field}` is unset and the {model}'s tokenizer has no limit within the model's {positions} "
                f"positions: set `{field}` (at most {positions})."
            )
    elif length > positions:
        raise ValueError(
            f"`{field}` is {length} but the {model} takes at most {positions} tokens (max_position_embeddings): "
            f"lower `{field}`."
        )


def _check_general(config: DistillationPipelineConfig, student_tokenizer: Any, distill_teacher_tokenizer: Any) -> None:
    """`student.general_distillation`: its training arguments and teacher, or the reused model's folder."""
    settings = config.student.general_distillation
    if settings is None:
        return
    if not isinstance(settings, dict):
        raise ValueError(f"`student.general_distillation` must be a mapping, got {settings!r}.")
    if settings.get("model") is not None:
        if set(settings) != {"model"}:
            raise ValueError(
                "`student.general_distillation`: `model` reuses a finished general distillation, so it takes no "
                f"other field; got {sorted(k for k in settings if k != 'model')}."
            )
        if not (Path(settings["model"]) / "model.safetensors").is_file():
            raise ValueError(f"`student.general_distillation.model`: no model.safetensors in {settings['model']!r}.")
        if (problem := diagnose_model_folder(settings["model"])) is not None:
            raise ValueError(f"`student.general_distillation.model`: {problem}.")
        return
    try:
        args = general_arguments(config, Path(config.output_dir))
    except (ValueError, TypeError) as error:
        raise ValueError(f"`student.general_distillation`: {error}") from None
    if not args.uses_intermediate_losses:
        raise ValueError(
            "`student.general_distillation` sets `hidden_loss_weight` and `relation_loss_weight` to 0: it would "
            "learn nothing (it has no labels and no logit term)."
        )
    data = config.data
    if args.relation_loss_weight > 0 and (
        data.teacher_text_column not in (None, data.text_column)
        or not same_tokenization(student_tokenizer, distill_teacher_tokenizer)
    ):
        raise ValueError(
            "`student.general_distillation`: the relation term compares token positions, but the teacher reads other "
            "tokens than the student (another tokenizer or text column). Set `relation_loss_weight: 0` in it (the "
            "hidden-state term is then aligned word by word)."
        )
    if settings.get("teacher") is not None:
        own = check_model_path(str(settings["teacher"]), "student.general_distillation.teacher")
        main = check_model_path(str(config.teacher.model), "teacher.model")
        keys = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
        differ = [k for k in keys if getattr(own, k, None) != getattr(main, k, None)]
        if differ:
            raise ValueError(
                "`student.general_distillation.teacher` must have `teacher.model`'s architecture and vocabulary (the "
                f"student stages load its encoder into a student built from the fine-tuned teacher); {differ[0]} is "
                f"{getattr(own, differ[0], None)!r} there and {getattr(main, differ[0], None)!r} in teacher.model."
            )


def check_run(
    config: DistillationPipelineConfig,
    splits: RecipeSplits,
    teacher_tokenizer: Any,
    student_tokenizer: Any,
    distill_teacher_tokenizer: Any,
    grouped: bool = False,
) -> None:
    """
    Check a pipeline run before its first stage; raise a `ValueError` naming the field at fault.

    Checked: every stage's `DistillationTrainingArguments` (temperature, alpha, learning rates...); the teacher and
    a pretrained student exist and their configs load; `student.from_teacher_layers` / `num_layers` fit the teacher's
    layers; `data.max_length` / `teacher_max_length` fit both models' position embeddings; the gate and search
    metrics are metrics the task reports; every evaluation split has examples; `student.general_distillation`.

    Args:
        config ([`~hf_kd.recipe.config.DistillationPipelineConfig`]):
            The recipe.
        splits ([`~hf_kd.pipeline.splits.RecipeSplits`]):
            Its splits (task, label names, evaluated splits).
        teacher_tokenizer (`PreTrainedTokenizerBase`):
            The teacher's tokenizer.
        student_tokenizer (`PreTrainedTokenizerBase`):
            The student's (pruned when the recipe prunes).
        distill_teacher_tokenizer (`PreTrainedTokenizerBase`):
            The tokenizer the teacher reads during the distillation.
        grouped (`bool`, *optional*, defaults to `False`):
            Whether the training rows come in groups (HoC's sentences of an abstract): the metrics it reports.
    """
    for stage in ("teacher", "student_warmup", "student"):
        if stage == "student_warmup" and not config.student.warmup_epochs:
            continue
        section = "teacher" if stage == "teacher" else "student"
        try:
            stage_training_args(config, stage, Path(config.output_dir) / stage / "checkpoints")
        except (ValueError, TypeError) as error:
            raise ValueError(f"`{section}` section: {error}") from None
    _check_general(config, student_tokenizer, distill_teacher_tokenizer)
    teacher_config = check_model_path(str(config.teacher.model), "teacher.model")
    n_teacher = layer_count(teacher_config)
    student = config.student
    if student.model is not None:
        student_config = check_model_path(student.model, "student.model")
    else:
        student_config = teacher_config
        if n_teacher is not None and student.from_teacher_layers is not None:
            bad = [i for i in student.from_teacher_layers if not 0 <= int(i) < n_teacher]
            if bad or not student.from_teacher_layers:
                raise ValueError(
                    f"`student.from_teacher_layers` {student.from_teacher_layers} must be 0-based layers of the "
                    f"teacher, which has {n_teacher} (0 to {n_teacher - 1})."
                )
        if n_teacher is not None and student.num_layers is not None and not 1 <= student.num_layers <= n_teacher:
            raise ValueError(
                f"`student.num_layers` is {student.num_layers} but the teacher has {n_teacher} layers to take from."
            )
    data = config.data
    _check_length(
        data.teacher_max_length or data.max_length,
        teacher_config,
        teacher_tokenizer,
        "data.teacher_max_length" if data.teacher_max_length else "data.max_length",
        "teacher",
    )
    _check_length(data.max_length, student_config, student_tokenizer, "data.max_length", "student")

    task = splits.task
    names = metric_names(task, splits.label_names, grouped=grouped)
    gate = config.evaluation.gate_metric or default_metric(task, grouped)
    if config.evaluation.min_teacher_metric is not None and gate is None:
        raise ValueError(f"A {task} task has no default gate metric: set `evaluation.gate_metric`.")
    checks = [("evaluation.gate_metric", config.evaluation.gate_metric), ("search.metric", config.search.metric)]
    for field, metric in checks:
        if metric is not None and metric not in names:
            raise ValueError(
                f"`{field}` is {metric!r}, which a {task} task does not report; its metrics are "
                f"{', '.join(n for n in names if not n.startswith('f1_'))} and the per-label f1_<label>."
            )
    for name, dataset in splits.evals.items():
        if len(dataset) == 0:
            raise ValueError(f"The {name!r} split has no example to evaluate.")
