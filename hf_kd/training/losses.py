"""Distillation losses as pure functions of tensors.

Every function here takes logits or hidden states and returns a loss; none of them knows about models, trainers or
datasets. Each returns per-example values with `reduction="none"` so that the trainer can normalise over a whole
gradient-accumulated batch, and a mean with `reduction="mean"` (the default).

Notation: `s` are the student's logits, `t` the teacher's, `T` the temperature, `y` the labels, `σ` the sigmoid.

| task | distillation term (per example) |
| --- | --- |
| single-label (and binary with a two-logit head) | `T² · KL(softmax(t/T) ‖ softmax(s/T))` |
| multi-label (and one-logit binary) | `T² · mean over labels of KL(Bernoulli(σ(t/T)) ‖ Bernoulli(σ(s/T)))` |
| regression, or `"mse"` on any logits | `mean over outputs of (s − t)²` |

The multi-label term treats every label as its own binary distribution. A softmax over the labels, which is what most
distillation code does, would force the labels to compete for one unit of probability mass and is wrong for
multi-label data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

from ..constants import IGNORE_INDEX, MULTI_LABEL, PROBLEM_TYPES, SINGLE_LABEL
from ..evaluation.tasks import TaskType, task_type

__all__ = [
    "attention_kl_loss",
    "attention_relation_loss",
    "DISTILLATION_LOSSES",
    "HARD_LOSSES",
    "bernoulli_kd_loss",
    "distillation_loss",
    "hard_label_loss",
    "hidden_cosine_loss",
    "hidden_mse_loss",
    "labelled_counts",
    "logit_mse_loss",
    "softmax_kd_loss",
    "validate_labels",
]

Reduction = Literal["mean", "sum", "none"]


def _reduce(per_example: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return per_example.sum()
    if reduction == "mean":
        return per_example.mean() if per_example.numel() else per_example.sum()
    raise ValueError(f"`reduction` must be 'mean', 'sum' or 'none', got {reduction!r}.")


def _check_pair(student: torch.Tensor, teacher: torch.Tensor, what: str) -> None:
    if student.shape != teacher.shape:
        raise ValueError(
            f"Student and teacher {what} must have the same shape, got {tuple(student.shape)} (student) and "
            f"{tuple(teacher.shape)} (teacher)."
        )


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature!r}.")


def softmax_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 2.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Softened-softmax distillation loss for single-label classification (Hinton et al., 2015).

    Per example: `T² · Σ_c p_c (log p_c − log q_c)` with `p = softmax(t/T)` and `q = softmax(s/T)`. The `T²` factor
    keeps the gradient scale independent of the temperature.

    Args:
        student_logits (`torch.Tensor` of shape `(batch, num_classes)`):
            The student's logits.
        teacher_logits (`torch.Tensor` of shape `(batch, num_classes)`):
            The teacher's logits; no gradient flows into them.
        temperature (`float`, *optional*, defaults to 2.0):
            Softening temperature `T`, > 0.
        reduction (`str`, *optional*, defaults to `"mean"`):
            `"none"` returns one value per example, `"sum"` and `"mean"` reduce over the batch.

    Returns:
        `torch.Tensor`: the loss.
    """
    _check_pair(student_logits, teacher_logits, "logits")
    _check_temperature(temperature)
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    per_example = (log_p.exp() * (log_p - log_q)).sum(-1) * temperature**2
    return _reduce(per_example, reduction)


def bernoulli_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 2.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Per-label Bernoulli distillation loss for multi-label classification and one-logit binary heads.

    Per example: `T² · (1/L) Σ_l KL(Bernoulli(p_l) ‖ Bernoulli(q_l))` with `p = σ(t/T)`, `q = σ(s/T)` and
    `KL(p ‖ q) = p (log p − log q) + (1 − p) (log(1 − p) − log(1 − q))`. Logarithms are taken with `logsigmoid`, so
    extreme logits give finite values.

    Args:
        student_logits (`torch.Tensor` of shape `(batch, num_labels)` or `(batch,)`):
            The student's logits, one per label.
        teacher_logits (`torch.Tensor`, same shape):
            The teacher's logits; no gradient flows into them.
        temperature (`float`, *optional*, defaults to 2.0):
            Softening temperature `T`, > 0.
        reduction (`str`, *optional*, defaults to `"mean"`):
            `"none"` returns one value per example, `"sum"` and `"mean"` reduce over the batch.

    Returns:
        `torch.Tensor`: the loss.
    """
    _check_pair(student_logits, teacher_logits, "logits")
    _check_temperature(temperature)
    s = student_logits.float() / temperature
    t = teacher_logits.detach().float() / temperature
    if s.dim() == 1:
        s, t = s.unsqueeze(-1), t.unsqueeze(-1)
    log_p, log_1mp = F.logsigmoid(t), F.logsigmoid(-t)
    log_q, log_1mq = F.logsigmoid(s), F.logsigmoid(-s)
    kl = log_p.exp() * (log_p - log_q) + log_1mp.exp() * (log_1mp - log_1mq)
    per_example = kl.mean(-1) * temperature**2
    return _reduce(per_example, reduction)


def logit_mse_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Mean squared error between raw logits (or regression outputs).

    Per example: `(1/K) Σ_k (s_k − t_k)²`. Used for regression, and as an alternative to the softened losses for
    classification (it matches logits without a temperature).

    Args:
        student_logits (`torch.Tensor` of shape `(batch, K)` or `(batch,)`):
            The student's outputs.
        teacher_logits (`torch.Tensor`, same shape):
            The teacher's outputs; no gradient flows into them.
        reduction (`str`, *optional*, defaults to `"mean"`):
            `"none"` returns one value per example, `"sum"` and `"mean"` reduce over the batch.

    Returns:
        `torch.Tensor`: the loss.
    """
    _check_pair(student_logits, teacher_logits, "logits")
    diff = (student_logits.float() - teacher_logits.detach().float()) ** 2
    per_example = diff.reshape(diff.shape[0], -1).mean(-1)
    return _reduce(per_example, reduction)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    problem_type: str,
    temperature: float = 2.0,
    single_label_loss: str = "kl",
    multi_label_loss: str = "bernoulli_kl",
    reduction: Reduction = "none",
) -> torch.Tensor:
    """The distillation term of a task: the loss of the table above for `problem_type`.

    Args:
        student_logits (`torch.Tensor` of shape `(batch, K)`):
            The student's logits.
        teacher_logits (`torch.Tensor`, same number of elements):
            The teacher's logits.
        problem_type (`str`):
            `"single_label_classification"`, `"multi_label_classification"` or `"regression"`.
        temperature (`float`, *optional*, defaults to 2.0):
            Softening temperature of the KL terms.
        single_label_loss (`str`, *optional*, defaults to `"kl"`):
            `"kl"` ([`softmax_kd_loss`]) or `"mse"` ([`logit_mse_loss`]) for single-label tasks.
        multi_label_loss (`str`, *optional*, defaults to `"bernoulli_kl"`):
            `"bernoulli_kl"` ([`bernoulli_kd_loss`]) or `"mse"` for multi-label tasks.
        reduction (`str`, *optional*, defaults to `"none"`):
            `"none"` (per example), `"sum"` or `"mean"`.

    Returns:
        `torch.Tensor`: the loss.
    """
    teacher_logits = teacher_logits.reshape(student_logits.shape)
    chosen = {"single_label_distillation_loss": single_label_loss, "multi_label_distillation_loss": multi_label_loss}
    field = _task(problem_type).distillation_loss_field
    name = chosen[field] if field else "mse"
    if name not in DISTILLATION_LOSSES:
        raise ValueError(
            f"Unknown distillation loss {name!r} for {problem_type!r}: expected one of {list(DISTILLATION_LOSSES)}."
        )
    return DISTILLATION_LOSSES[name](student_logits, teacher_logits, temperature, reduction)


def _task(problem_type: str) -> TaskType:
    """The task type of a model's `problem_type`, with the losses' own error for anything else."""
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(
            f"`problem_type` must be 'single_label_classification', 'multi_label_classification' or 'regression', "
            f"got {problem_type!r}."
        )
    return task_type(problem_type)


DISTILLATION_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, float, Reduction], torch.Tensor]] = {
    "kl": softmax_kd_loss,
    "bernoulli_kl": bernoulli_kd_loss,
    "mse": lambda student, teacher, _temperature, reduction: logit_mse_loss(student, teacher, reduction=reduction),
}
"""The distillation terms by the names `DistillationTrainingArguments` chooses them with (a task's field,
`TaskType.distillation_loss_field`; `"mse"` for a task without one)."""


def hard_label_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    problem_type: str,
    reduction: Literal["sum", "none"] = "sum",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The supervised loss on gold labels, with `-100` marking missing labels.

    - `single_label_classification`: cross-entropy; examples with label `-100` are skipped.
    - `multi_label_classification`: binary cross-entropy with logits, per cell; cells equal to `-100` are skipped,
      so a row of `-100` is an unlabeled example.
    - `regression`: squared error per output; `NaN` targets are not allowed.

    The loss is returned as a sum (or per item) together with the number of items it covers, so that the caller can
    divide by the number of items in the whole gradient-accumulated batch. `sum / count` is exactly the mean loss a
    `transformers` model computes for itself.

    Args:
        logits (`torch.Tensor` of shape `(batch, num_labels)`):
            The model's logits.
        labels (`torch.Tensor`):
            `(batch,)` class ids for single-label, `(batch, num_labels)` multi-hot targets for multi-label,
            `(batch,)` or `(batch, num_labels)` targets for regression.
        problem_type (`str`):
            One of `"single_label_classification"`, `"multi_label_classification"`, `"regression"`.
        reduction (`str`, *optional*, defaults to `"sum"`):
            `"sum"` or `"none"` (the per-item losses, zero where the label is missing).

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: the loss and the number of labelled items it covers.
    """
    per_item, count = HARD_LOSSES[_task(problem_type).hard_loss](logits, labels)
    if reduction == "none":
        return per_item, count
    if reduction == "sum":
        return per_item.sum(), count
    raise ValueError(f"`reduction` must be 'sum' or 'none', got {reduction!r}.")


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    labels = labels.reshape(-1).long()
    per_item = F.cross_entropy(logits.float().reshape(labels.shape[0], -1), labels, reduction="none")
    return per_item, labels.ne(IGNORE_INDEX).sum()


def _binary_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    labels = labels.reshape(logits.shape).float()
    valid = labels.ne(IGNORE_INDEX)
    targets = torch.where(valid, labels, torch.zeros_like(labels))
    return F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none") * valid, valid.sum()


def _squared_error(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.numel() != labels.numel():
        raise ValueError(
            f"Regression labels of shape {tuple(labels.shape)} do not match the logits' shape {tuple(logits.shape)}."
        )
    per_item = (logits.float().reshape(labels.shape) - labels.float()) ** 2
    return per_item, torch.tensor(per_item.numel(), device=logits.device)


HARD_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]] = {
    "cross-entropy": _cross_entropy,
    "binary cross-entropy": _binary_cross_entropy,
    "MSE": _squared_error,
}
"""The loss on the labels by the name a task type gives it (`TaskType.hard_loss`): per item, and the number of
labelled items."""


def validate_labels(labels: torch.Tensor, problem_type: str, num_labels: int | None = None) -> torch.Tensor:
    """Check a batch's labels for the task type before any loss is computed, and cast them to the dtype it takes.

    - single-label: one integer class id per example, in `[0, num_labels)` or `-100`; multi-hot rows are refused;
    - multi-label: one row of `num_labels` entries per example, each 0, 1 (or a soft target in between) or `-100`;
      integer class ids (one per example) are refused;
    - regression: no NaN.

    Args:
        labels (`torch.Tensor`):
            The batch's labels.
        problem_type (`str`):
            One of `"single_label_classification"`, `"multi_label_classification"`, `"regression"`.
        num_labels (`int`, *optional*):
            The model's number of labels, to check the ids and the row width.

    Returns:
        `torch.Tensor`: `int64` class ids (single-label), `float32` targets (multi-label), or the labels unchanged.

    Raises:
        `ValueError`: Naming the problem: non-integer, out-of-range or negative ids, multi-hot rows for a single-label
            model, class ids for a multi-label one, values outside [0, 1], NaN.
    """
    if problem_type == SINGLE_LABEL:
        if labels.dim() > 1 and labels.shape[-1] > 1:
            raise ValueError(
                f"The labels are rows of {labels.shape[-1]} values (multi-hot) but the student is a single-label "
                "classifier; set its `problem_type='multi_label_classification'`, or give one class id per example."
            )
        labels = labels.reshape(-1)
        if labels.is_floating_point():
            if torch.isnan(labels).any() or not torch.equal(labels, labels.round()):
                raise ValueError(
                    "Single-label classification needs integer class ids in `labels`, got non-integer float values. "
                    "For multi-hot targets set `problem_type='multi_label_classification'`."
                )
            labels = labels.long()
        bad = labels[(labels < 0) & (labels != IGNORE_INDEX)]
        if bad.numel():
            raise ValueError(
                f"Label {int(bad[0])} is negative; class ids start at 0 and -100 marks an unlabeled example."
            )
        if num_labels is not None and (labels >= num_labels).any():
            raise ValueError(
                f"Label {int(labels.max())} is out of range: the student has {num_labels} classes (ids 0 to "
                f"{num_labels - 1})."
            )
        return labels
    if problem_type == MULTI_LABEL:
        if num_labels is not None and num_labels > 1 and (labels.dim() < 2 or labels.shape[-1] != num_labels):
            raise ValueError(
                f"The student is a multi-label classifier with {num_labels} labels, so each example needs a row of "
                f"{num_labels} values (multi-hot), got labels of shape {tuple(labels.shape)} (class ids?)."
            )
        labels = labels.float()
        if torch.isnan(labels).any():
            raise ValueError("`labels` contains NaN; mark a missing label with -100.")
        bad = labels[((labels < 0) | (labels > 1)) & (labels != IGNORE_INDEX)]
        if bad.numel():
            raise ValueError(
                f"Multi-hot label value {float(bad[0])} is outside [0, 1]; entries are 0, 1 (or a soft target in "
                "between), and -100 marks an unlabeled entry."
            )
        return labels
    if torch.isnan(labels.float()).any():
        raise ValueError("Regression `labels` contains NaN.")
    return labels


def labelled_counts(batches: list[dict[str, torch.Tensor]]) -> tuple[int, int]:
    """Labelled items (label entries other than `-100`) and examples in a list of batches, to normalise a loss by.

    Args:
        batches (`list[dict[str, torch.Tensor]]`):
            The batches of one optimizer step.

    Returns:
        `tuple[int, int]`: The number of labelled items and the number of examples.
    """
    labelled, examples = 0, 0
    for batch in batches:
        labels = batch.get("labels")
        if labels is not None:
            labelled += int(labels.ne(IGNORE_INDEX).sum())
        examples += len(batch["input_ids"]) if "input_ids" in batch else len(next(iter(batch.values())))
    return labelled, examples


def hidden_mse_loss(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error between hidden-state vectors, averaged over the valid positions and the features.

    `Σ_i m_i ‖h_s,i − h_t,i‖² / (H · Σ_i m_i)`; zero when no position is valid.

    Args:
        student_hidden (`torch.Tensor` of shape `(..., hidden)`):
            Student vectors, already projected to the teacher's width.
        teacher_hidden (`torch.Tensor`, same shape):
            Teacher vectors; no gradient flows into them.
        mask (`torch.Tensor` of shape `(...)`, *optional*):
            1 for positions that count (e.g. the attention mask), 0 for padding. All positions count when `None`.

    Returns:
        `torch.Tensor`: a scalar.
    """
    _check_pair(student_hidden, teacher_hidden, "hidden states")
    sq = ((student_hidden.float() - teacher_hidden.detach().float()) ** 2).mean(-1)
    return _masked_mean(sq, mask)


def hidden_cosine_loss(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """One minus the cosine similarity between hidden-state vectors, averaged over the valid positions.

    `Σ_i m_i (1 − cos(h_s,i, h_t,i)) / Σ_i m_i`; zero when no position is valid.

    Args:
        student_hidden (`torch.Tensor` of shape `(..., hidden)`):
            Student vectors, already projected to the teacher's width.
        teacher_hidden (`torch.Tensor`, same shape):
            Teacher vectors; no gradient flows into them.
        mask (`torch.Tensor` of shape `(...)`, *optional*):
            1 for positions that count, 0 for padding. All positions count when `None`.

    Returns:
        `torch.Tensor`: a scalar.
    """
    _check_pair(student_hidden, teacher_hidden, "hidden states")
    cos = F.cosine_similarity(student_hidden.float(), teacher_hidden.detach().float(), dim=-1, eps=1e-8)
    return _masked_mean(1.0 - cos, mask)


def attention_kl_loss(
    student_attention: torch.Tensor, teacher_attention: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """KL divergence between attention distributions, as in MiniLM, averaged over heads and valid query positions.

    Both models must share a tokenization (same sequence length and positions). When the numbers of heads differ,
    each model's heads are averaged first. Per valid query row `i`: `KL(A_t,i ‖ A_s,i)` over the key positions.

    Args:
        student_attention (`torch.Tensor` of shape `(batch, heads_s, seq, seq)`):
            Student attention probabilities (rows sum to 1).
        teacher_attention (`torch.Tensor` of shape `(batch, heads_t, seq, seq)`):
            Teacher attention probabilities; no gradient flows into them.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`):
            1 for real tokens, 0 for padding.

    Returns:
        `torch.Tensor`: a scalar.
    """
    if (
        student_attention.shape[-2:] != teacher_attention.shape[-2:]
        or student_attention.shape[0] != (teacher_attention.shape[0])
    ):
        raise ValueError(
            f"Attention maps must cover the same batch and positions, got {tuple(student_attention.shape)} (student) "
            f"and {tuple(teacher_attention.shape)} (teacher); attention distillation needs a shared tokenization."
        )
    s = student_attention.float()
    t = teacher_attention.detach().float()
    if s.shape[1] != t.shape[1]:
        s, t = s.mean(1, keepdim=True), t.mean(1, keepdim=True)
    eps = 1e-12
    kl = (t * (torch.log(t + eps) - torch.log(s + eps))).sum(-1)  # (batch, heads, seq)
    mask = attention_mask.to(kl.dtype).unsqueeze(1).expand_as(kl)
    return _masked_mean(kl, mask)


def attention_relation_loss(
    student_vectors: torch.Tensor,
    teacher_vectors: torch.Tensor,
    num_relation_heads: int,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """MiniLMv2's self-attention relation term: KL between the scaled dot-product relations of one kind of attention
    vectors (queries, keys or values), averaged over relation heads and valid query positions.

    Each side's vectors are split into `num_relation_heads` heads of `d / R` dimensions, whatever its own number of
    attention heads and width, and `R_r = softmax(A_r A_rᵀ / sqrt(d / R))` over the key positions (padding keys
    masked). Per valid query row `i` of head `r`: `KL(R_t,r,i ‖ R_s,r,i)`.

    Args:
        student_vectors (`torch.Tensor` of shape `(batch, seq, d_s)`):
            The student's vectors of one attention layer.
        teacher_vectors (`torch.Tensor` of shape `(batch, seq, d_t)`):
            The teacher's vectors of the same kind; no gradient flows into them.
        num_relation_heads (`int`):
            Relation heads `R`; must divide `d_s` and `d_t`.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*):
            1 for real tokens, 0 for padding.

    Returns:
        `torch.Tensor`: a scalar.
    """
    if student_vectors.shape[:2] != teacher_vectors.shape[:2]:
        raise ValueError(
            f"Relation vectors must cover the same batch and positions, got {tuple(student_vectors.shape)} (student) "
            f"and {tuple(teacher_vectors.shape)} (teacher); the relation term needs a shared tokenization."
        )
    widths = (student_vectors.shape[-1], teacher_vectors.shape[-1])
    if num_relation_heads < 1 or any(width % num_relation_heads for width in widths):
        raise ValueError(
            f"`num_relation_heads` must divide the student's and the teacher's widths {widths}, got "
            f"{num_relation_heads!r}."
        )

    def log_relations(vectors: torch.Tensor) -> torch.Tensor:
        batch, seq, width = vectors.shape
        heads = vectors.float().view(batch, seq, num_relation_heads, width // num_relation_heads).transpose(1, 2)
        scores = heads @ heads.transpose(-1, -2) / math.sqrt(width // num_relation_heads)
        if attention_mask is not None:
            keys = attention_mask[:, None, None, :].to(torch.bool)
            scores = scores.masked_fill(~keys, torch.finfo(scores.dtype).min)
        return F.log_softmax(scores, dim=-1)  # (batch, heads, seq, seq)

    log_s, log_t = log_relations(student_vectors), log_relations(teacher_vectors.detach())
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)  # (batch, heads, seq)
    mask = None if attention_mask is None else attention_mask.to(kl.dtype).unsqueeze(1).expand_as(kl)
    return _masked_mean(kl, mask)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean() if values.numel() else values.sum()
    mask = mask.to(values.dtype)
    total = mask.sum()
    return (values * mask).sum() / total.clamp(min=1.0)
