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

from ..constants import SINGLE_LABEL, STUDENT_INPUT_COLUMNS, TEACHER_INPUT_COLUMNS
from .losses import distillation_loss
from .model_files import named_load_errors
from .student import layer_list

__all__ = [
    "agreement_counts",
    "check_shared_vocabulary",
    "load_teacher",
    "prepare_teacher",
    "reorder_logits",
    "run_teacher",
    "shard_teacher",
    "teacher_eval_stats",
    "teacher_label_order",
]

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

    with named_load_errors(name_or_path, f"the teacher at {name_or_path!r}"):
        return AutoModelForSequenceClassification.from_pretrained(name_or_path, **kwargs)


def prepare_teacher(teacher: nn.Module, accelerator: Any, dtype: str = "auto", deepspeed: bool = False) -> nn.Module:
    """
    Freeze the teacher and place it for the trainer's engine, as an evaluation-only model.

    - plain and DDP runs: accelerate's evaluation-mode placement (`prepare_model(evaluation_mode=True)`), which moves
      the model to the device and never wraps it in DDP;
    - DeepSpeed: a DeepSpeed inference engine (sharded under ZeRO-3, replicated otherwise);
    - FSDP: sharded over the processes with FSDP2's `fully_shard`, per transformer layer ([`shard_teacher`]): each
      process holds about 1/K of the teacher, and a layer's parameters are gathered only while it runs.

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
    elif accelerator.distributed_type == DistributedType.FSDP:
        teacher = shard_teacher(teacher.to(accelerator.device))
    else:
        teacher = accelerator.prepare_model(teacher, evaluation_mode=True)
    teacher.eval()
    return teacher


def shard_teacher(teacher: nn.Module, mesh: Any = None) -> nn.Module:
    """
    Shard a frozen teacher over the process group with FSDP2 (`torch.distributed.fsdp.fully_shard`).

    Each transformer layer is its own FSDP unit and the rest (embeddings, head) the root's, so that a forward pass
    gathers one layer at a time and frees it after (`reshard_after_forward`). The teacher is never in an optimizer,
    so nothing but its parameters is sharded. Works on the CPU under gloo as on GPUs under NCCL.

    Args:
        teacher (`nn.Module`):
            The teacher, on this process's device, frozen.
        mesh (`torch.distributed.DeviceMesh`, *optional*):
            The mesh to shard over; the default process group when None.

    Returns:
        `nn.Module`: The same teacher, sharded in place.
    """
    from torch.distributed.fsdp import fully_shard

    config = getattr(teacher, "config", None)
    counts = [getattr(config, name, None) for name in ("num_hidden_layers", "n_layers", "num_layers")]
    n_layers = next((count for count in counts if count), None)
    if n_layers:
        parent, name = layer_list(teacher, int(n_layers))
        for layer in getattr(parent, name):
            fully_shard(layer, mesh=mesh, reshard_after_forward=True)
    fully_shard(teacher, mesh=mesh, reshard_after_forward=True)
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
    give the reordering of the teacher's logits into the student's order. When only one side names its labels, the
    order cannot be checked, and that is an error: name the other side's labels (`id2label`) too.

    Args:
        student (`nn.Module`):
            The student.
        teacher (`nn.Module`):
            The teacher (possibly wrapped).

    Returns:
        `torch.Tensor` or `None`: The teacher label index for each student label, or None when the order is the same
        (or the labels are unnamed).

    Raises:
        `ValueError`: When the numbers of labels or the label sets differ (naming the labels found on one side only),
            or one side's labels are unnamed and the other's are named.
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
    s_default, t_default = (all(_DEFAULT_LABEL.match(str(n)) for n in names) for names in (s_names, t_names))
    if s_default and t_default:
        return None  # both unnamed: ids are all there is to compare
    if s_default or t_default:
        unnamed, named = ("student", t_names) if s_default else ("teacher", s_names)
        raise ValueError(
            f"The {unnamed}'s labels are unnamed (LABEL_0, ...) but the other model names them {named}: their order "
            f"cannot be checked. Set the {unnamed}'s `config.id2label` (and `label2id`) to its label names."
        )
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

    A model without a tokenizer passed is compared through the tokenizer saved in its local folder
    (`config._name_or_path`) when there is one; with no tokenizer on a side, only the configs' vocabulary sizes and
    special token ids can be compared, and a warning says so.

    Raises:
        `ValueError`: When the tokenizers' vocabularies (or, without tokenizers, the configs' vocabulary sizes and
            special token ids) differ.
    """
    teacher_cfg = getattr(extract_model_from_parallel(teacher), "config", None)
    student_cfg = getattr(student, "config", None)
    tokenizer = tokenizer if tokenizer is not None else _saved_tokenizer(student_cfg)
    teacher_tokenizer = teacher_tokenizer if teacher_tokenizer is not None else _saved_tokenizer(teacher_cfg)
    differs = False
    if tokenizer is not None and teacher_tokenizer is not None and hasattr(tokenizer, "get_vocab"):
        differs = tokenizer.get_vocab() != teacher_tokenizer.get_vocab()
    elif teacher_cfg is not None and student_cfg is not None:
        keys = ("vocab_size", "pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id")
        differs = any(getattr(teacher_cfg, k, None) != getattr(student_cfg, k, None) for k in keys)
        logger.warning(
            "No tokenizer of the %s to compare vocabularies with: only vocabulary sizes and special token ids were "
            "compared. Pass `processing_class` (and `teacher_processing_class`) to check the vocabularies.",
            "student" if tokenizer is None else "teacher",
        )
    if differs:
        raise ValueError(
            "The teacher's tokenizer/vocabulary differs from the student's, and the batch has no "
            "`teacher_input_ids`: the teacher must not read the student's token ids. Tokenize for both with "
            "`hf_kd.tokenize_for_distillation(dataset, tokenizer, teacher_tokenizer=...)`."
        )


def _saved_tokenizer(config: Any) -> Any:
    """The tokenizer saved in a model's local folder, or None (no folder, no tokenizer files, or a Hub id)."""
    import os

    folder = getattr(config, "_name_or_path", None)
    names = ("tokenizer.json", "vocab.txt", "tokenizer_config.json")
    if not folder or not os.path.isdir(folder) or not any(os.path.isfile(os.path.join(folder, n)) for n in names):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def run_teacher(teacher: nn.Module | None, inputs: dict[str, Any], hidden_states: bool, attentions: bool) -> Any:
    """
    The frozen teacher's outputs on a batch: its own `teacher_*` inputs when the batch has them, else the student's.

    Args:
        teacher (`nn.Module`):
            The prepared teacher (None raises a `ValueError` saying how to get logits).
        inputs (`dict[str, Any]`):
            The batch.
        hidden_states (`bool`):
            Return the hidden states.
        attentions (`bool`):
            Return the attention maps.

    Returns:
        `ModelOutput`: The teacher's outputs, computed without gradients in eval mode.
    """
    if teacher is None:
        raise ValueError(
            "The batch has no `teacher_logits` column and no `teacher_model` was given: pass a teacher or cache its "
            "logits with `hf_kd.cache_teacher_logits`."
        )
    if "teacher_input_ids" in inputs:
        t_inputs = {k[len("teacher_") :]: inputs[k] for k in TEACHER_INPUT_COLUMNS if k in inputs}
    else:
        t_inputs = {k: inputs[k] for k in STUDENT_INPUT_COLUMNS if k in inputs}
    if hidden_states or attentions:
        t_inputs.update(output_hidden_states=hidden_states, output_attentions=attentions)
    teacher.eval()
    with torch.no_grad():
        return teacher(**t_inputs)


def reorder_logits(logits: torch.Tensor, order: torch.Tensor | None) -> torch.Tensor:
    """
    The teacher's logits as float32, in the student's label order.

    Args:
        logits (`torch.Tensor` of shape `(batch, num_labels)`):
            The teacher's logits.
        order (`torch.Tensor`, *optional*):
            From [`teacher_label_order`]; None keeps the order.

    Returns:
        `torch.Tensor`: The logits.
    """
    logits = logits.float()
    return logits if order is None else logits[:, order.to(logits.device)]


def agreement_counts(
    student: torch.Tensor, teacher: torch.Tensor, problem_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Per example: how many predictions of the student agree with the teacher's, and how many there are.

    Single-label: the argmax (1 prediction per example); otherwise every logit's sign (one per label).

    Args:
        student (`torch.Tensor` of shape `(batch, K)`):
            The student's logits.
        teacher (`torch.Tensor`, same shape):
            The teacher's logits.
        problem_type (`str`):
            The task.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: Agreeing predictions and predictions, one value per example.
    """
    if problem_type == SINGLE_LABEL:
        agree = (student.argmax(-1) == teacher.argmax(-1)).float()
        return agree, torch.ones_like(agree)
    agree = ((student > 0) == (teacher > 0)).float().reshape(len(student), -1).sum(-1)
    return agree, torch.full_like(agree, student[0].numel())


def teacher_eval_stats(
    student: torch.Tensor, teacher: torch.Tensor, problem_type: str, distillation_options: dict[str, Any]
) -> torch.Tensor:
    """
    Per example: agreeing predictions, predictions, the distillation loss and 1 (what `evaluate` sums over the set to
    report `teacher_agreement` and `distill_loss`).

    Args:
        student (`torch.Tensor` of shape `(batch, K)`):
            The student's logits.
        teacher (`torch.Tensor`):
            The teacher's logits (reshaped to the student's shape).
        problem_type (`str`):
            The task.
        distillation_options (`dict[str, Any]`):
            `hf_kd.training.losses.distillation_loss` keyword arguments (`args.distillation_options`).

    Returns:
        `torch.Tensor` of shape `(batch, 4)`: The four values per example.
    """

    teacher = teacher.reshape(student.shape)
    agree, items = agreement_counts(student, teacher, problem_type)
    kd = distillation_loss(student, teacher, problem_type, **distillation_options).detach().float()
    return torch.stack([agree, items, kd, torch.ones_like(agree)], dim=1)
