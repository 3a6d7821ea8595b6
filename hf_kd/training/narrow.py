"""Narrow students: fewer layers *and* a smaller hidden size than the teacher, initialised from its weights.

[`narrow_student_from_teacher`] builds a BERT-architecture student with `hidden_size` < the teacher's, keeping whole
attention heads (each of the teacher's head size) and some of the feed-forward neurons of the chosen teacher layers.
The residual stream is mapped to the smaller width by one matrix `P` (`hidden_size × teacher_hidden_size`, orthonormal
rows) shared by every layer, so that the student's layers still add up in one basis:

- `init="pca"`: `P` holds the top principal directions (uncentred) of the teacher's hidden states on a calibration
  batch of training inputs, the subspace where the teacher's residual stream lives;
- `init="slice"`: `P` keeps the first `hidden_size` coordinates (weight selection);
- `init="random"`: no teacher weight at all, the architecture's own initialisation (from the seed).

With `P`, a weight reading the residual stream becomes `W Pᵀ`, one writing it `P W`; heads are kept by the norm of
their output projection and feed-forward neurons by the product of their input and output norms; a LayerNorm's
scale becomes `(P ∘ P) γ` and its shift `P β` (exact for `slice`). The classification head is carried over the same
way. The student is then distilled with the logit terms and, through the trainer's width projections, hidden-state
terms (`hidden_loss_weight`). The default, `slice`, was chosen by measurement (`benchmarks/narrow_init.py`, in
`docs/src/benchmarks.md`): PCA starts closer to the teacher, but the sliced student ends better after distillation.

Only BERT-architecture classifiers (`model_type` `"bert"`: BERT, MiniLM, PubMedBERT, BioBERT, ...) are supported;
another architecture is refused with an error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn
from transformers import PreTrainedModel

from ..constants import NARROW_INITS, STUDENT_INPUT_COLUMNS
from .intermediate import uniform_layers

__all__ = ["NARROW_INITS", "narrow_student_from_teacher", "residual_basis"]


def residual_basis(
    teacher: PreTrainedModel, calibration: Mapping[str, torch.Tensor], hidden_size: int, layers: Sequence[int]
) -> torch.Tensor:
    """
    The top `hidden_size` principal directions (uncentred) of the teacher's residual stream on a calibration batch.

    The states pooled are the embeddings' output and the outputs of `layers`, at every non-padding token.

    Args:
        teacher (`PreTrainedModel`):
            The teacher.
        calibration (`Mapping[str, torch.Tensor]`):
            A batch of its inputs (`input_ids`, `attention_mask`, ...).
        hidden_size (`int`):
            Number of directions.
        layers (`Sequence[int]`):
            0-based teacher layers whose outputs are pooled.

    Returns:
        `torch.Tensor`: `P`, of shape `(hidden_size, teacher_hidden_size)`, orthonormal rows.
    """
    was_training = teacher.training
    teacher.eval()
    device = next(teacher.parameters()).device
    inputs = {k: v.to(device) for k, v in calibration.items() if k in STUDENT_INPUT_COLUMNS}
    with torch.no_grad():
        states = teacher(**inputs, output_hidden_states=True).hidden_states
    teacher.train(was_training)
    mask = inputs.get("attention_mask", torch.ones_like(inputs["input_ids"])).bool()
    pooled = torch.cat([states[0][mask]] + [states[i + 1][mask] for i in layers]).float()
    # Right singular vectors of the stacked states: eigenvectors of their second-moment matrix, largest first.
    _, _, vh = torch.linalg.svd(pooled, full_matrices=False)
    return vh[:hidden_size].contiguous()


def _check_bert(teacher: PreTrainedModel) -> None:
    model_type = getattr(teacher.config, "model_type", None)
    if model_type != "bert" or not hasattr(teacher, "bert"):
        raise ValueError(
            f"Narrow students support BERT-architecture classifiers (model_type 'bert'); the teacher is "
            f"{model_type!r} (`{type(teacher).__name__}`). Use `student_from_teacher` (fewer layers, same width) or a "
            "pretrained student."
        )


def _top(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the `count` largest scores, in increasing index order."""
    return torch.sort(torch.topk(scores, count).indices).values


def _layer_norm(target: nn.LayerNorm, source: nn.LayerNorm, basis: torch.Tensor) -> None:
    target.weight.copy_((basis * basis) @ source.weight)
    target.bias.copy_(basis @ source.bias)


def _reads(target: nn.Linear, source: nn.Linear, basis: torch.Tensor, rows: torch.Tensor | None = None) -> None:
    """`target` reads the residual stream: `W[rows] Pᵀ`."""
    weight, bias = source.weight, source.bias
    if rows is not None:
        weight, bias = weight[rows], bias[rows]
    target.weight.copy_(weight @ basis.T)
    target.bias.copy_(bias)


def _writes(target: nn.Linear, source: nn.Linear, basis: torch.Tensor, columns: torch.Tensor | None = None) -> None:
    """`target` writes the residual stream: `P W[:, columns]`."""
    weight = source.weight if columns is None else source.weight[:, columns]
    target.weight.copy_(basis @ weight)
    target.bias.copy_(basis @ source.bias)


def _copy_layer(
    target: nn.Module, source: nn.Module, basis: torch.Tensor, heads: int, head_size: int, ffn: int
) -> None:
    attention = source.attention
    output_weight = attention.output.dense.weight  # (hidden, heads * head_size): columns by head
    n_heads = output_weight.shape[1] // head_size
    head_scores = output_weight.reshape(output_weight.shape[0], n_heads, head_size).norm(dim=(0, 2))
    kept_heads = _top(head_scores, heads)
    offsets = torch.arange(head_size, device=kept_heads.device)
    rows = (kept_heads[:, None] * head_size + offsets[None, :]).reshape(-1)
    for name in ("query", "key", "value"):
        _reads(getattr(target.attention.self, name), getattr(attention.self, name), basis, rows)
    _writes(target.attention.output.dense, attention.output.dense, basis, rows)
    _layer_norm(target.attention.output.LayerNorm, attention.output.LayerNorm, basis)
    inner, outer = source.intermediate.dense, source.output.dense
    neuron_scores = inner.weight.norm(dim=1) * outer.weight.norm(dim=0)
    neurons = _top(neuron_scores, ffn)
    _reads(target.intermediate.dense, inner, basis, neurons)
    _writes(target.output.dense, outer, basis, neurons)
    _layer_norm(target.output.LayerNorm, source.output.LayerNorm, basis)


def narrow_student_from_teacher(
    teacher: PreTrainedModel,
    hidden_size: int,
    layers: Sequence[int] | None = None,
    num_layers: int | None = None,
    num_attention_heads: int | None = None,
    intermediate_size: int | None = None,
    init: Literal["pca", "slice", "random"] = "slice",
    calibration: Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> PreTrainedModel:
    """
    A BERT student narrower (and shallower) than its teacher, initialised from it (see the module docstring).

    Args:
        teacher (`PreTrainedModel`):
            A BERT-architecture sequence classifier; not modified.
        hidden_size (`int`):
            The student's width, below the teacher's and a multiple of the teacher's head size (for `pca` and
            `slice`).
        layers (`Sequence[int]`, *optional*):
            0-based teacher layers the student's layers start from. Defaults to `uniform_layers(n, num_layers)`.
        num_layers (`int`, *optional*):
            Number of layers when `layers` is not given. Defaults to half the teacher's, rounded up.
        num_attention_heads (`int`, *optional*):
            Defaults to `hidden_size // teacher_head_size` (whole teacher heads are kept).
        intermediate_size (`int`, *optional*):
            Feed-forward width. Defaults to the teacher's ratio (`4 × hidden_size` for BERT).
        init (`str`, *optional*, defaults to `"slice"`):
            `"pca"`, `"slice"` or `"random"`.
        calibration (`Mapping[str, torch.Tensor]`, *optional*):
            A batch of teacher inputs (e.g. 256 training sequences), required by `init="pca"`.
        seed (`int`, *optional*, defaults to 0):
            Seed of the weights not taken from the teacher (all of them for `random`).

    Returns:
        `PreTrainedModel`: The student, with `config.hf_kd_teacher_layers` and `config.hf_kd_narrow_init` recorded.

    Raises:
        `ValueError`: On a non-BERT teacher, an unknown `init`, a width not below the teacher's or not made of
            whole heads, out-of-range layers, or `init="pca"` without `calibration`.
    """
    _check_bert(teacher)
    if init not in NARROW_INITS:
        raise ValueError(f"`init` must be one of {list(NARROW_INITS)}, got {init!r}.")
    config = teacher.config
    head_size = int(config.hidden_size) // int(config.num_attention_heads)
    heads, ffn = _narrow_shape(config, hidden_size, num_attention_heads, intermediate_size, init)
    n_teacher = int(config.num_hidden_layers)
    if layers is None:
        layers = uniform_layers(n_teacher, num_layers if num_layers is not None else (n_teacher + 1) // 2)
    layers = [int(i) for i in layers]
    if not layers or any(not 0 <= i < n_teacher for i in layers):
        raise ValueError(f"`layers` must be non-empty 0-based indices below {n_teacher}, got {layers}.")
    if init == "pca" and calibration is None:
        raise ValueError("init='pca' needs a `calibration` batch of teacher inputs.")
    student_config = type(config).from_dict(config.to_dict())
    student_config.update(
        {
            "hidden_size": hidden_size,
            "num_attention_heads": heads,
            "intermediate_size": ffn,
            "num_hidden_layers": len(layers),
        }
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = type(teacher)(student_config)
    if init != "random":
        device = next(teacher.parameters()).device
        if init == "pca":
            basis = residual_basis(teacher, calibration, hidden_size, layers).to(device)
        else:
            basis = torch.eye(int(config.hidden_size), device=device)[:hidden_size]
        student.to(device)
        _copy_projected(student, teacher, basis.to(next(teacher.parameters()).dtype), layers, heads, head_size, ffn)
    student.config.hf_kd_teacher = getattr(config, "_name_or_path", None) or None
    student.config.hf_kd_teacher_layers = layers
    student.config.hf_kd_narrow_init = init
    student.config.name_or_path = ""
    student.requires_grad_(True)
    student.train()
    return student


def _narrow_shape(
    config: Any, hidden_size: int, num_attention_heads: int | None, intermediate_size: int | None, init: str
) -> tuple[int, int]:
    """The student's heads and feed-forward width, checked against the teacher's (whole heads unless `random`)."""
    teacher_hidden = int(config.hidden_size)
    head_size = teacher_hidden // int(config.num_attention_heads)
    if not 0 < hidden_size < teacher_hidden:
        raise ValueError(
            f"`hidden_size` must be positive and below the teacher's {teacher_hidden}, got {hidden_size}."
        )
    heads = num_attention_heads if num_attention_heads is not None else hidden_size // head_size
    if heads <= 0 or hidden_size % heads:
        raise ValueError(f"`hidden_size` {hidden_size} is not divisible by `num_attention_heads` {heads}.")
    if init != "random" and (hidden_size // heads != head_size or heads > config.num_attention_heads):
        raise ValueError(
            f"init={init!r} keeps whole teacher heads of size {head_size}: `hidden_size` must be a multiple of "
            f"{head_size} with at most {config.num_attention_heads} heads; got hidden_size={hidden_size}, "
            f"num_attention_heads={heads}."
        )
    ratio = int(config.intermediate_size) / teacher_hidden
    ffn = intermediate_size if intermediate_size is not None else round(ratio * hidden_size)
    if not 0 < ffn <= int(config.intermediate_size):
        raise ValueError(f"`intermediate_size` must be in 1..{config.intermediate_size}, got {ffn}.")
    return heads, ffn


@torch.no_grad()
def _copy_projected(
    student: PreTrainedModel,
    teacher: PreTrainedModel,
    basis: torch.Tensor,
    layers: list[int],
    heads: int,
    head_size: int,
    ffn: int,
) -> None:
    """The teacher's embeddings, chosen layers, pooler and head copied into the student through `basis`
    (`(hidden_size, teacher_hidden)`, orthonormal rows)."""
    source, target = teacher.bert.embeddings, student.bert.embeddings
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        if hasattr(source, name):
            getattr(target, name).weight.copy_(getattr(source, name).weight @ basis.T)
    _layer_norm(target.LayerNorm, source.LayerNorm, basis)
    for index, teacher_layer in enumerate(layers):
        source_layer = teacher.bert.encoder.layer[teacher_layer]
        _copy_layer(student.bert.encoder.layer[index], source_layer, basis, heads, head_size, ffn)
    if teacher.bert.pooler is not None and student.bert.pooler is not None:
        pooler_source, pooler_target = teacher.bert.pooler.dense, student.bert.pooler.dense
        pooler_target.weight.copy_(basis @ pooler_source.weight @ basis.T)
        pooler_target.bias.copy_(basis @ pooler_source.bias)
    classifier = getattr(teacher, "classifier", None)
    if isinstance(classifier, nn.Linear):
        student.classifier.weight.copy_(classifier.weight @ basis.T)
        student.classifier.bias.copy_(classifier.bias)
