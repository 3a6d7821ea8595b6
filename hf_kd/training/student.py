"""Build a student from a subset of the teacher's own layers (DistilBERT-style initialisation)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn
from transformers import PreTrainedModel

from .intermediate import LAYER_COUNT_ATTRS, uniform_layers

__all__ = [
    "head_parameter_ids",
    "load_encoder",
    "layer_list",
    "set_head_learning_rate",
    "student_from_teacher",
    "uniform_layers",
]


def layer_list(model: nn.Module, n_layers: int) -> tuple[nn.Module, str]:
    """
    Where a model keeps its transformer blocks: the parent module and attribute of its first `nn.ModuleList` of
    `n_layers` entries.

    Args:
        model (`nn.Module`):
            The model.
        n_layers (`int`):
            Its number of layers (`config.num_hidden_layers`).

    Returns:
        `tuple[nn.Module, str]`: The parent module and the attribute name of the list.
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            parent_name, _, attr = name.rpartition(".")
            return model.get_submodule(parent_name) if parent_name else model, attr
    raise ValueError(f"Could not find the list of {n_layers} transformer layers in a `{type(model).__name__}`.")


def student_from_teacher(
    teacher: PreTrainedModel,
    layers: Sequence[int] | None = None,
    num_layers: int | None = None,
    keep_head: bool = True,
) -> PreTrainedModel:
    """A smaller model of the teacher's architecture, initialised from some of its layers.

    The embeddings (and the pooler and classification head when `keep_head`) are copied from the teacher, and the
    student's layer `i` is a copy of teacher layer `layers[i]`. The teacher is not modified.

    Args:
        teacher (`PreTrainedModel`):
            The teacher, e.g. a `BertForSequenceClassification`.
        layers (`Sequence[int]`, *optional*):
            0-based teacher layers to keep, in order. Defaults to `uniform_layers(n, num_layers)`.
        num_layers (`int`, *optional*):
            Number of student layers when `layers` is not given. Defaults to half the teacher's, rounded up.
        keep_head (`bool`, *optional*, defaults to `True`):
            Copy the teacher's classification head; otherwise it is newly initialised.

    Returns:
        `PreTrainedModel`: the student, with `config.num_hidden_layers` (or the architecture's equivalent) updated.
    """
    config = teacher.config
    attr = next((a for a in LAYER_COUNT_ATTRS if getattr(config, a, None) is not None), None)
    if attr is None:
        raise ValueError(f"Cannot tell how many layers a `{type(config).__name__}` has.")
    n_teacher = int(getattr(config, attr))
    if layers is None:
        layers = uniform_layers(n_teacher, num_layers if num_layers is not None else (n_teacher + 1) // 2)
    layers = [int(i) for i in layers]
    if not layers or any(not 0 <= i < n_teacher for i in layers):
        raise ValueError(f"`layers` must be non-empty 0-based indices below {n_teacher}, got {layers}.")

    student = copy.deepcopy(teacher)
    parent, name = layer_list(student, n_teacher)
    kept = nn.ModuleList(getattr(parent, name)[i] for i in layers)
    for new_index, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    setattr(parent, name, kept)
    setattr(student.config, attr, len(layers))
    if not keep_head:
        head_names = [n for n, _ in student.named_children() if n != student.base_model_prefix]
        for head_name in head_names:
            student.get_submodule(head_name).apply(student._init_weights)
    # Recorded in config.json, so that the model card says where the student came from.
    student.config.hf_kd_teacher = getattr(teacher.config, "_name_or_path", None) or None
    student.config.hf_kd_teacher_layers = layers
    student.config.name_or_path = ""
    # A teacher used by a DistillationTrainer is frozen in place; the student must train.
    student.requires_grad_(True)
    student.train()
    return student


def head_parameter_ids(model: nn.Module) -> set[int]:
    """
    Ids of the trainable parameters of a classifier's task head (outside its base model, or in its pooler).

    Args:
        model (`nn.Module`):
            A transformers classifier, or a `peft.PeftModel` around one.

    Returns:
        `set[int]`: The `id()` of each trainable head parameter.
    """
    from peft import PeftModel

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    prefix = getattr(base, "base_model_prefix", "")

    def is_head(name: str) -> bool:
        return bool(prefix and not name.startswith(prefix + ".")) or ".pooler." in f".{name}"

    return {id(p) for n, p in base.named_parameters() if p.requires_grad and is_head(n)}


def set_head_learning_rate(optimizer: Any, model: nn.Module, learning_rate: float) -> None:
    """
    Give the student's trainable head parameters their own learning rate, in every parameter group of `optimizer`.

    Each group is split in two, its head parameters (classifier and pooler, see [`head_parameter_ids`]) getting
    `learning_rate` and the others keeping the group's options.

    Args:
        optimizer (`torch.optim.Optimizer`):
            The optimizer, already built over the model's parameters.
        model (`nn.Module`):
            The student (or a `peft.PeftModel` around it).
        learning_rate (`float`):
            The head's learning rate.

    Raises:
        `ValueError`: When the student has no trainable head parameter.
    """
    head_ids = head_parameter_ids(model)
    if not head_ids:
        raise ValueError(
            "`head_learning_rate` is set but no trainable head parameters were found in the student (looked for "
            "parameters outside its base model, and its pooler; with PEFT, the head must be trainable, e.g. "
            "`task_type='SEQ_CLS'` or `modules_to_save`)."
        )
    groups = []
    for group in optimizer.param_groups:
        options = {k: v for k, v in group.items() if k != "params"}
        body = [p for p in group["params"] if id(p) not in head_ids]
        head = [p for p in group["params"] if id(p) in head_ids]
        if body:
            groups.append({**options, "params": body})
        if head:
            groups.append({**options, "params": head, "lr": learning_rate})
    optimizer.param_groups.clear()
    for group in groups:
        optimizer.add_param_group(group)


def load_encoder(model: PreTrainedModel, source: str) -> PreTrainedModel:
    """
    Load the encoder of a saved model of the same architecture into `model`, keeping `model`'s classification head:
    how a student starts from its general distillation (`student.general_distillation`), whose head was never trained.

    Args:
        model (`PreTrainedModel`):
            The student, its head initialised for the task (e.g. copied from the fine-tuned teacher).
        source (`str`):
            Folder of the saved model (safetensors).

    Returns:
        `PreTrainedModel`: `model`, its encoder weights replaced.

    Raises:
        `ValueError`: When the saved model's encoder does not have `model`'s parameter names and shapes.
    """
    from safetensors.torch import load_file

    head = {name for name, p in model.named_parameters() if id(p) in head_parameter_ids(model)}
    saved = load_file(str(Path(source) / "model.safetensors"))
    own = {k: v for k, v in model.state_dict().items() if k not in head}
    missing = sorted(k for k in own if k not in saved)
    wrong = sorted(k for k in own if k in saved and saved[k].shape != own[k].shape)
    if missing or wrong:
        raise ValueError(
            f"The model in {source} does not fit this student: {len(missing)} encoder parameter(s) missing "
            f"(e.g. {missing[:2]}), {len(wrong)} of another shape (e.g. {wrong[:2]}). Its general distillation was "
            "made for another architecture or vocabulary."
        )
    model.load_state_dict({k: saved[k] for k in own}, strict=False)
    return model
