"""The teacher inside a trainer: loading it, freezing and placing it per engine, and checking it against the student.

[`~hf_kd.DistillationTrainer`] calls these after `Trainer.__init__`, once accelerate knows the engine (plain, DDP,
DeepSpeed or FSDP). The teacher is frozen, in eval mode, never wrapped for training, never in the optimizer and never
checkpointed.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import torch
from accelerate.utils import DistributedType, extract_model_from_parallel
from torch import nn
from transformers import AutoModelForSequenceClassification, PreTrainedModel
from transformers.utils import logging

__all__ = ["check_shared_vocabulary", "load_teacher", "prepare_teacher", "teacher_label_order"]

logger = logging.get_logger(__name__)

_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_teacher(name_or_path: str, init_kwargs: dict | None = None) -> PreTrainedModel:
    """
    Load a teacher classifier from a local path or a Hub id, safetensors only, `trust_remote_code` off.

    Args:
        name_or_path (`str`):
            Local folder or Hub id.
        init_kwargs (`dict`, *optional*):
            Extra `from_pretrained` keyword arguments (e.g. `revision`; `trust_remote_code=True` only if set here).

    Returns:
        `PreTrainedModel`: The teacher.
    """
    kwargs = {"use_safetensors": True, "trust_remote_code": False, **(init_kwargs or {})}
    logger.info(f"Loading the teacher from {name_or_path}.")
    return AutoModelForSequenceClassification.from_pretrained(name_or_path, **kwargs)


def prepare_teacher(teacher: nn.Module, accelerator: Any, dtype: str = "auto", deepspeed: bool = False) -> nn.Module:
    """
    Freeze the teacher and place it for the trainer's engine, as an evaluation-only model.

    - plain and DDP runs: accelerate's evaluation-mode placement (`prepare_model(evaluation_mode=True)`), which moves
      the model to the device and never wraps it in DDP;
    - DeepSpeed: a DeepSpeed inference engine (sharded under ZeRO-3, replicated otherwise);
    - FSDP: moved to the device.

    Args:
        teacher (`nn.Module`):
            The teacher.
        accelerator (`accelerate.Accelerator`):
            The trainer's accelerator.
        dtype (`str`, *optional*, defaults to `"auto"`):
            `"auto"` (as loaded), `"float32"`, `"bfloat16"` or `"float16"`.
        deepspeed (`bool`, *optional*, defaults to `False`):
            Whether the trainer runs DeepSpeed.

    Returns:
        `nn.Module`: The prepared teacher, in eval mode, without gradients.
    """
    if dtype != "auto":
        teacher = teacher.to(_DTYPES[dtype])
    teacher.eval()
    teacher.requires_grad_(False)
    if deepspeed:
        teacher = _prepare_deepspeed_teacher(teacher, accelerator)
    else:
        teacher = accelerator.prepare_model(teacher, evaluation_mode=True)
        if accelerator.distributed_type == DistributedType.FSDP:
            teacher = teacher.to(accelerator.device)
    teacher.eval()
    return teacher


def _prepare_deepspeed_teacher(teacher: nn.Module, accelerator: Any) -> nn.Module:
    """Wrap the teacher in a DeepSpeed inference engine: sharded under ZeRO-3, replicated otherwise."""
    import deepspeed

    config = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    stage = config.get("zero_optimization", {}).get("stage", 0)
    if stage != 3:
        config["zero_optimization"] = {"stage": 0}
    for key in ("optimizer", "scheduler"):
        config.pop(key, None)
    engine, *_ = deepspeed.initialize(model=teacher, config=config)
    engine.eval()
    return engine


def teacher_label_order(student: nn.Module, teacher: nn.Module) -> torch.Tensor | None:
    """
    Check that teacher and student predict the same label space; the teacher's index of each student label.

    Label names are compared when both configs name their labels (not `LABEL_<i>`); the same names in another order
    give the reordering of the teacher's logits into the student's order.

    Args:
        student (`nn.Module`):
            The student.
        teacher (`nn.Module`):
            The teacher (possibly wrapped).

    Returns:
        `torch.Tensor` or `None`: The teacher label index for each student label, or None when the order is the same
        (or the labels are unnamed).

    Raises:
        `ValueError`: When the numbers of labels or the label sets differ (naming the labels found on one side only).
    """
    s_cfg, t_cfg = getattr(student, "config", None), getattr(extract_model_from_parallel(teacher), "config", None)
    if s_cfg is None or t_cfg is None:
        return None
    if s_cfg.num_labels != t_cfg.num_labels:
        raise ValueError(
            f"The student has {s_cfg.num_labels} labels but the teacher has {t_cfg.num_labels}; they must "
            "predict the same label space."
        )
    s_names = [s_cfg.id2label[i] for i in range(s_cfg.num_labels)]
    t_names = [t_cfg.id2label[i] for i in range(t_cfg.num_labels)]
    if any(_DEFAULT_LABEL.match(str(n)) for n in s_names + t_names):
        return None
    if set(s_names) != set(t_names):
        only_s = sorted(set(s_names) - set(t_names))
        only_t = sorted(set(t_names) - set(s_names))
        raise ValueError(
            f"Student and teacher label sets differ: only in the student {only_s}, only in the teacher {only_t}."
        )
    if s_names == t_names:
        return None
    logger.info("Teacher labels are in another order; its logits are reordered to the student's order.")
    return torch.tensor([t_names.index(name) for name in s_names], dtype=torch.long)


def check_shared_vocabulary(student: nn.Module, teacher: nn.Module, tokenizer: Any, teacher_tokenizer: Any) -> None:
    """
    Refuse to feed the student's token ids to a teacher whose vocabulary differs.

    Args:
        student (`nn.Module`):
            The student.
        teacher (`nn.Module`):
            The teacher (possibly wrapped).
        tokenizer (`PreTrainedTokenizerBase`, *optional*):
            The student's tokenizer.
        teacher_tokenizer (`PreTrainedTokenizerBase`, *optional*):
            The teacher's tokenizer.

    Raises:
        `ValueError`: When the tokenizers' vocabularies (or, without tokenizers, the configs' vocabulary sizes) differ.
    """
    teacher_cfg = getattr(extract_model_from_parallel(teacher), "config", None)
    student_cfg = getattr(student, "config", None)
    differs = False
    if tokenizer is not None and teacher_tokenizer is not None and hasattr(tokenizer, "get_vocab"):
        differs = tokenizer.get_vocab() != teacher_tokenizer.get_vocab()
    elif teacher_cfg is not None and student_cfg is not None:
        differs = getattr(teacher_cfg, "vocab_size", None) != getattr(student_cfg, "vocab_size", None)
    if differs:
        raise ValueError(
            "The teacher's tokenizer/vocabulary differs from the student's, and the batch has no "
            "`teacher_input_ids`: the teacher must not read the student's token ids. Tokenize for both with "
            "`hf_kd.tokenize_for_distillation(dataset, tokenizer, teacher_tokenizer=...)`."
        )
