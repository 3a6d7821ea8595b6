"""What the pipeline builds its runs from: tokenizers, classifiers, LoRA wrappers and training arguments.

Models are loaded with safetensors only and `trust_remote_code` off. A newly initialised classification head is drawn
from the recipe's seed, so that a recipe gives the same models whatever ran before in the process.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..processes import barrier, is_main_process, on_cpu
from ..recipe.config import DistillationPipelineConfig
from ..recipe.sections import lora_config
from ..reporting.report import jsonable
from ..training.checkpoints import last_complete_checkpoint
from ..training.distillation_config import DistillationTrainingArguments
from ..training.model_files import named_load_errors

__all__ = [
    "GENERAL_DEFAULTS",
    "general_arguments",
    "is_finetuned_on",
    "label_kwargs",
    "load_classifier",
    "load_tokenizer",
    "save_trained",
    "stage_training_args",
    "train_resuming",
    "training_args",
    "with_lora",
]


def load_tokenizer(name: str) -> Any:
    """
    Load a tokenizer (`AutoTokenizer`) from a local path or a Hub id.

    Args:
        name (`str`):
            Path or Hub id.

    Returns:
        `PreTrainedTokenizerBase`: The tokenizer.
    """
    from transformers import AutoTokenizer

    with named_load_errors(name, f"the tokenizer at {name!r}"):
        return AutoTokenizer.from_pretrained(name)


def label_kwargs(label_names: Sequence[str], problem_type: str) -> dict[str, Any]:
    """
    The config keyword arguments of a classifier for this label space.

    Args:
        label_names (`Sequence[str]`):
            Label names in id order.
        problem_type (`str`):
            The config's `problem_type`.

    Returns:
        `dict[str, Any]`: `num_labels`, `problem_type`, `id2label` and `label2id`.
    """
    return {
        "num_labels": len(label_names),
        "problem_type": problem_type,
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }


def is_finetuned_on(model_name: str, label_names: Sequence[str]) -> bool:
    """
    Whether a checkpoint's config already has this label space (same names, same order, same count).

    Args:
        model_name (`str`):
            Path or Hub id.
        label_names (`Sequence[str]`):
            The dataset's label names.

    Returns:
        `bool`: True when the checkpoint is a classifier for exactly these labels.
    """
    from transformers import AutoConfig

    try:
        model_config = AutoConfig.from_pretrained(model_name)
    except (OSError, ValueError):
        return False
    id2label = getattr(model_config, "id2label", None) or {}
    names = [id2label[i] for i in sorted(id2label, key=int)]
    return model_config.num_labels == len(label_names) and names == list(label_names)


def load_classifier(name: str, label_names: Sequence[str], problem_type: str, seed: int | None = None) -> Any:
    """
    Load a sequence classifier for this label space (a head of another size is newly initialised).

    Args:
        name (`str`):
            Path or Hub id.
        label_names (`Sequence[str]`):
            Label names in id order.
        problem_type (`str`):
            The config's `problem_type`.
        seed (`int`, *optional*):
            Draw a newly initialised head from this seed, whatever the process's RNG state.

    Returns:
        `PreTrainedModel`: The classifier.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    with (
        torch.random.fork_rng(devices=[], enabled=seed is not None),
        named_load_errors(name, f"the model at {name!r}"),
    ):
        if seed is not None:
            torch.manual_seed(seed)
        return AutoModelForSequenceClassification.from_pretrained(
            name, use_safetensors=True, ignore_mismatched_sizes=True, **label_kwargs(label_names, problem_type)
        )


def with_lora(model: Any, values: Mapping[str, Any] | None, section: str, seed: int) -> Any:
    """
    `model` wrapped by `peft.get_peft_model` when `values` (a `lora` section) is set, else `model`.

    Args:
        model (`PreTrainedModel`):
            The classifier.
        values (`Mapping[str, Any]`, *optional*):
            `peft.LoraConfig` keyword arguments.
        section (`str`):
            `"teacher"` or `"student"`, for messages.
        seed (`int`):
            Seed of the adapter's initialisation.

    Returns:
        `PreTrainedModel` or `peft.PeftModel`: The model to train.
    """
    if values is None:
        return model
    import torch
    from peft import get_peft_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, lora_config(values, section))


def training_args(
    output_dir: Path, config: DistillationPipelineConfig, overrides: Mapping[str, Any], **forced: Any
) -> DistillationTrainingArguments:
    """
    The `DistillationTrainingArguments` of one pipeline run: the pipeline's defaults, the section's fields, `forced`.

    The defaults: no reporting integration, a checkpoint every 200 steps keeping the last one (so that a killed
    stage resumes, see [`train_resuming`]), no evaluation during training, a log every 10 steps, Trainer's progress
    bar, the recipe's seed and evaluation batch size, and the CPU when the run is on the CPU. The pipeline pushes to
    the Hub itself, after its evaluation, so `push_to_hub` is off in every stage.

    Args:
        output_dir (`Path`):
            The run's `output_dir`.
        config ([`~hf_kd.recipe.config.DistillationPipelineConfig`]):
            The recipe.
        overrides (`Mapping[str, Any]`):
            The section's `DistillationTrainingArguments` fields.
        **forced (`Any`):
            Values that win over both (e.g. `alpha=1.0` for hard-label training).

    Returns:
        [`~hf_kd.DistillationTrainingArguments`]: The arguments.
    """
    values: dict[str, Any] = {
        "report_to": "none",
        "save_strategy": "steps",
        "save_steps": 200,
        "save_total_limit": 1,
        "eval_strategy": "no",
        "logging_steps": 10,
        "per_device_eval_batch_size": config.evaluation.batch_size,
        "seed": config.seed,
        "use_cpu": on_cpu(),
    }
    values.update(overrides)
    values.update(forced)
    values["output_dir"] = str(output_dir)
    values["push_to_hub"] = False
    return DistillationTrainingArguments(**values)


def train_resuming(trainer: Any) -> None:
    """
    `trainer.train()`, resumed from the last checkpoint in its `output_dir` when there is one.

    Args:
        trainer ([`~hf_kd.DistillationTrainer`]):
            The trainer.

    Raises:
        `ValueError`: For a LoRA model under DeepSpeed or FSDP (the adapter is merged into unsharded weights).
    """
    from peft import PeftModel

    if isinstance(trainer.model, PeftModel) and (trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled):
        raise ValueError(
            "`teacher.lora` / `student.lora` are not supported with DeepSpeed or FSDP in the pipeline (the adapter is "
            "merged into unsharded weights); run it single-process or with DDP, or use `DistillationTrainer` directly."
        )

    if is_main_process():
        last_complete_checkpoint(trainer.args.output_dir)  # names and removes a checkpoint cut off midway
    barrier()
    trainer.train(resume_from_checkpoint=last_complete_checkpoint(trainer.args.output_dir, remove_incomplete=False))


def save_trained(trainer: Any, folder: Path) -> str | None:
    """
    Save the trainer's model in `folder` (safetensors, with the tokenizer) and its log history beside it.

    A LoRA model is saved merged (`merge_and_unload`), its adapter in `folder/../adapter`.

    Args:
        trainer ([`~hf_kd.DistillationTrainer`]):
            The trained trainer.
        folder (`Path`):
            The model folder.

    Returns:
        `str` or `None`: The adapter folder, or None for a plain model.
    """
    from peft import PeftModel

    adapter_dir = None
    if isinstance(trainer.model, PeftModel):
        adapter_dir = folder.parent / "adapter"
        trainer.save_model(str(adapter_dir))  # adapter_model.safetensors + adapter_config.json
        trainer.model = trainer.model.merge_and_unload()
    trainer.save_model(str(folder))  # main process only, safetensors
    if is_main_process():
        (folder.parent / "log_history.json").write_text(
            json.dumps(jsonable(trainer.state.log_history), indent=2) + "\n", encoding="utf-8"
        )
    barrier()
    return str(adapter_dir) if adapter_dir is not None else None


GENERAL_DEFAULTS = {
    "hidden_loss_weight": 1.0,
    "relation_loss_weight": 1.0,
    "num_train_epochs": 3.0,
    "learning_rate": 1.0e-3,
    "per_device_train_batch_size": 32,
    "warmup_steps": 0.1,
}
"""The general distillation's `DistillationTrainingArguments` unless `student.general_distillation` sets them: the
setting chosen on HoC's validation split over 3 seeds against one epoch at 5e-4 (`benchmarks/main_job.py
--general_grid`, `benchmarks/results/deploy_narrow_offline.md`)."""


def stage_training_args(
    config: DistillationPipelineConfig, stage: str, output_dir: Path
) -> DistillationTrainingArguments:
    """
    The `DistillationTrainingArguments` of a task's training stage: `teacher` (its section, `alpha=1`),
    `student_warmup` (the student section without the distillation's own fields, `alpha=1`, `student.warmup_epochs`
    epochs) or `student` (its section). The general distillation's are [`general_arguments`].

    Args:
        config ([`~hf_kd.recipe.config.DistillationPipelineConfig`]):
            The recipe.
        stage (`str`):
            The stage.
        output_dir (`Path`):
            The stage's checkpoint folder.

    Returns:
        [`~hf_kd.DistillationTrainingArguments`]: The arguments.
    """
    if stage == "teacher":
        return training_args(output_dir, config, config.teacher.training, alpha=1.0)
    if stage == "student_warmup":
        ignored = DistillationTrainingArguments.distillation_fields()
        warmup = {k: v for k, v in config.student.training.items() if k not in ignored}
        return training_args(output_dir, config, warmup, alpha=1.0, num_train_epochs=config.student.warmup_epochs)
    if stage != "student":
        raise ValueError(f"{stage!r} is not a task's training stage (teacher, student_warmup, student).")
    return training_args(output_dir, config, config.student.training)


def general_arguments(config: DistillationPipelineConfig, output_dir: Path) -> DistillationTrainingArguments:
    """
    The general distillation's `DistillationTrainingArguments`: [`GENERAL_DEFAULTS`], then the fields of
    `student.general_distillation` (but its `teacher`), `alpha=1`.

    Args:
        config ([`~hf_kd.recipe.config.DistillationPipelineConfig`]):
            The recipe.
        output_dir (`Path`):
            The stage's checkpoint folder.

    Returns:
        [`~hf_kd.DistillationTrainingArguments`]: The arguments.
    """
    fields = {k: v for k, v in (config.student.general_distillation or {}).items() if k != "teacher"}
    return training_args(output_dir, config, {**GENERAL_DEFAULTS, **fields}, alpha=1.0)
