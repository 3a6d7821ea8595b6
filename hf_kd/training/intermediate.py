"""Intermediate-layer distillation: hidden-state, attention-map and attention-relation terms between mapped layers.

Student hidden-state index `k` (0 is the embeddings, `k` the output of layer `k`) is matched to the teacher's
hidden-state index `mapping[k - 1]`. When the widths differ, a learned linear projection maps the student's vectors to
the teacher's width; it is registered on the student ([`attach_intermediate`]), so it is trained, clipped, synchronised
and checkpointed with it, and it is left out of the saved student.

Two positions are compared:

- with a shared tokenization, token by token over the attention mask;
- with different tokenizations, word by word: each word's sub-token vectors are averaged in both models and every
  word that both tokenizations cover is compared (`hf_kd.data.alignment`). A batch without shared words adds zero.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..data.word_pooling import aligned_word_states, mean_pool
from .losses import attention_kl_loss, attention_relation_loss, hidden_cosine_loss, hidden_mse_loss

logger = logging.getLogger(__name__)

__all__ = [
    "LAYER_COUNT_ATTRS",
    "PROJECTIONS_FILE",
    "PROJECTIONS_MODULE",
    "IntermediateDistiller",
    "attach_intermediate",
    "attention_projections",
    "layer_count",
    "load_projections",
    "save_projections",
    "uniform_layers",
]


def uniform_layers(num_teacher_layers: int, num_student_layers: int, align: str = "first") -> list[int]:
    """
    Evenly spaced teacher layers, one per student layer (0-based layer indices).

    - `align="first"` starts at the teacher's first layer: 6 → 3 gives `[0, 2, 4]`, the layers DistilBERT copies into
      its student (`hf_kd.student_from_teacher`). It needs `1 <= num_student_layers <= num_teacher_layers`.
    - `align="last"` ends at the teacher's last layer: student layer `i` (1-based) of `m` matches teacher layer
      `round(i · n / m)`, so 3 of 6 gives `[1, 3, 5]` (layers 2, 4 and 6), TinyBERT's uniform mapping and the default
      `layer_mapping` of hidden-state distillation (as hidden-state indices, `[2, 4, 6]`). A student deeper than
      its teacher maps several of its layers to one teacher layer.

    Args:
        num_teacher_layers (`int`):
            Layers in the teacher, `n`.
        num_student_layers (`int`):
            Layers in the student, `m`.
        align (`str`, *optional*, defaults to `"first"`):
            `"first"` or `"last"`.

    Returns:
        `list[int]`: One 0-based teacher layer index per student layer.
    """
    if num_student_layers < 1 or num_teacher_layers < 1:
        raise ValueError(
            f"Both models need at least one layer, got {num_student_layers} (student) and {num_teacher_layers} "
            "(teacher)."
        )
    if align == "first":
        if num_student_layers > num_teacher_layers:
            raise ValueError(
                f"`num_student_layers` must be between 1 and the teacher's {num_teacher_layers} layers, got "
                f"{num_student_layers}."
            )
        return [(i * num_teacher_layers) // num_student_layers for i in range(num_student_layers)]
    if align == "last":
        return [
            max(1, round(i * num_teacher_layers / num_student_layers)) - 1 for i in range(1, num_student_layers + 1)
        ]
    raise ValueError(f"`align` must be 'first' or 'last', got {align!r}.")


_PROJECTION_NAMES = (("query", "key", "value"), ("q_lin", "k_lin", "v_lin"))
_LAYER_ATTENTION = re.compile(r"(?:^|\.)layer\.(\d+)\.attention\.(?:self\.)?(\w+)$")


def attention_projections(model: nn.Module, layer: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    """
    The query, key and value projections of a BERT-style encoder layer (BERT, RoBERTa, ELECTRA: `attention.self.query`
    ...; DistilBERT: `attention.q_lin` ...). Applied to the layer's input states (`hidden_states[layer - 1]`), they
    give the layer's attention vectors.

    Args:
        model (`nn.Module`):
            The model (unwrapped).
        layer (`int`):
            The layer, 1-based (as its index in `hidden_states`).

    Returns:
        `tuple[nn.Module, nn.Module, nn.Module]`: The query, key and value projections.
    """
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        match = _LAYER_ATTENTION.search(name)
        if match and int(match.group(1)) == layer - 1:
            found[match.group(2)] = module
    for names in _PROJECTION_NAMES:
        if all(n in found for n in names):
            return found[names[0]], found[names[1]], found[names[2]]
    raise ValueError(
        f"The relation loss needs the query/key/value projections of layer {layer} of {type(model).__name__}, and "
        "found none (BERT-style encoders name them `layer.N.attention.self.query` or `layer.N.attention.q_lin`)."
    )


LAYER_COUNT_ATTRS = ("num_hidden_layers", "n_layers", "num_layers")
"""The config attributes that hold an encoder's number of layers (BERT, DistilBERT, others)."""


def layer_count(config: Any) -> int | None:
    """
    The number of transformer layers a model config declares, or None when it names none.

    Args:
        config (`PretrainedConfig`):
            The config.

    Returns:
        `int` or `None`: The number of layers.
    """
    for name in LAYER_COUNT_ATTRS:
        if getattr(config, name, None) is not None:
            return int(getattr(config, name))
    return None


def _num_layers(config: Any) -> int:
    count = layer_count(config)
    if count is None:
        raise ValueError(f"Cannot tell the number of layers of a `{type(config).__name__}`.")
    return count


def _hidden_size(config: Any) -> int:
    for name in ("hidden_size", "dim", "d_model"):
        if getattr(config, name, None) is not None:
            return int(getattr(config, name))
    raise ValueError(f"Cannot tell the hidden size of a `{type(config).__name__}`.")


class IntermediateDistiller(nn.Module):
    """Hidden-state and attention losses between a student's and a teacher's mapped layers.

    Args:
        student_config (`PretrainedConfig`):
            The student's config.
        teacher_config (`PretrainedConfig`):
            The teacher's config.
        layer_mapping (`Sequence[int]`, *optional*):
            Teacher hidden-state index for each student layer `1..m`; uniform when `None`.
        hidden_loss (`str`, *optional*, defaults to `"mse"`):
            `"mse"` or `"cosine"`.
        hidden_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the hidden-state term.
        attention_loss_weight (`float`, *optional*, defaults to 0.0):
            Weight of the attention-map term (shared tokenization only).
        hidden_alignment (`str`, *optional*, defaults to `"auto"`):
            `"auto"` (token by token with a shared tokenization, word by word otherwise) or `"mean"` (per-example
            mean states over each side's attention mask).
        relation_loss_weight (`float`, *optional*, defaults to 0.0):
            Weight of MiniLMv2's self-attention relation term (shared tokenization only): the query-query, key-key
            and value-value relations of the student's last layer against its mapped teacher layer
            (`losses.attention_relation_loss`, mean of the three), computed from each layer's input states through
            its own query/key/value projections (BERT-style encoders: BERT, RoBERTa, ELECTRA, DistilBERT).
        num_relation_heads (`int`, *optional*):
            Relation heads of that term; defaults to the student's attention heads. Must divide both widths.
    """

    def __init__(
        self,
        student_config: Any,
        teacher_config: Any,
        layer_mapping: Sequence[int] | None = None,
        hidden_loss: str = "mse",
        hidden_loss_weight: float = 1.0,
        attention_loss_weight: float = 0.0,
        hidden_alignment: str = "auto",
        relation_loss_weight: float = 0.0,
        num_relation_heads: int | None = None,
    ) -> None:
        super().__init__()
        n_student, n_teacher = _num_layers(student_config), _num_layers(teacher_config)
        if layer_mapping is None:
            layer_mapping = [j + 1 for j in uniform_layers(n_teacher, n_student, align="last")]
        mapping = list(layer_mapping)
        if len(mapping) != n_student:
            raise ValueError(
                f"`layer_mapping` must name one teacher layer per student layer: the student has {n_student} layers, "
                f"the mapping has {len(mapping)} entries ({mapping})."
            )
        bad = [j for j in mapping if not 0 <= j <= n_teacher]
        if bad:
            raise ValueError(
                f"`layer_mapping` refers to teacher layers {bad}, but the teacher's hidden-state indices run from 0 "
                f"to "
                f"{n_teacher}."
            )
        if hidden_loss not in ("mse", "cosine"):
            raise ValueError(f"`hidden_loss` must be 'mse' or 'cosine', got {hidden_loss!r}.")
        if hidden_alignment not in ("auto", "mean"):
            raise ValueError(f"`hidden_alignment` must be 'auto' or 'mean', got {hidden_alignment!r}.")
        self.hidden_alignment = hidden_alignment
        self.layer_mapping = mapping
        self.hidden_loss = hidden_loss
        self.hidden_loss_weight = float(hidden_loss_weight)
        self.attention_loss_weight = float(attention_loss_weight)
        d_student, d_teacher = _hidden_size(student_config), _hidden_size(teacher_config)
        self.relation_loss_weight = float(relation_loss_weight)
        heads = num_relation_heads or getattr(student_config, "num_attention_heads", None) or 1
        if self.relation_loss_weight > 0 and (d_student % heads or d_teacher % heads):
            raise ValueError(
                f"`num_relation_heads` must divide the student's width {d_student} and the teacher's {d_teacher}, "
                f"got {heads!r}."
            )
        self.num_relation_heads = int(heads)
        self.projections = nn.ModuleList(
            nn.Linear(d_student, d_teacher) if d_student != d_teacher else nn.Identity() for _ in mapping
        )
        self.batches, self.unpaired_batches = 0, 0  # word-aligned batches seen, and those without a shared word

    @property
    def needs_attentions(self) -> bool:
        """Whether the models must return attention maps."""
        return self.attention_loss_weight > 0

    def forward(
        self,
        student_outputs: Any,
        teacher_outputs: Any,
        inputs: Mapping[str, torch.Tensor],
        student: nn.Module | None = None,
        teacher: nn.Module | None = None,
    ) -> dict[str, torch.Tensor]:
        """Compute the weighted intermediate terms.

        Args:
            student_outputs (`ModelOutput`):
                Student outputs with `hidden_states` (and `attentions` when the attention term is on).
            teacher_outputs (`ModelOutput`):
                Teacher outputs, likewise.
            inputs (`Mapping[str, torch.Tensor]`):
                The batch: `attention_mask`, and with different tokenizers `word_ids` and `teacher_word_ids`.
            student (`nn.Module`, *optional*):
                The unwrapped student, for the relation term (its query/key/value projections).
            teacher (`nn.Module`, *optional*):
                The unwrapped teacher, likewise.

        Returns:
            `dict[str, torch.Tensor]`: `"hidden_loss"`, `"attention_loss"` and/or `"relation_loss"`, already weighted.
        """
        losses: dict[str, torch.Tensor] = {}
        shared = "teacher_input_ids" not in inputs
        if self.hidden_loss_weight > 0:
            s_states, t_states = student_outputs.hidden_states, teacher_outputs.hidden_states
            if s_states is None or t_states is None:
                raise ValueError("Hidden-state distillation needs `output_hidden_states=True` from both models.")
            mean = self.hidden_alignment == "mean"
            if not mean and not shared and ("word_ids" not in inputs or "teacher_word_ids" not in inputs):
                raise ValueError(
                    "The teacher reads its own tokenization, so hidden states must be aligned word by word, but the "
                    "batch has no `word_ids`/`teacher_word_ids` columns. Build the dataset with "
                    "`hf_kd.tokenize_for_distillation(..., teacher_tokenizer=...)` with both models reading the same "
                    "text column, or set `hidden_alignment='mean'` (e.g. when the teacher reads a translation)."
                )
            loss_fn = hidden_mse_loss if self.hidden_loss == "mse" else hidden_cosine_loss
            terms = []
            self.batches += not (mean or shared)
            for k, (j, proj) in enumerate(zip(self.layer_mapping, self.projections), start=1):
                student_h = proj(s_states[k])
                teacher_h = t_states[j]
                if mean:
                    teacher_mask = inputs["attention_mask"] if shared else inputs["teacher_attention_mask"]
                    terms.append(
                        loss_fn(mean_pool(student_h, inputs["attention_mask"]), mean_pool(teacher_h, teacher_mask))
                    )
                elif shared:
                    terms.append(loss_fn(student_h, teacher_h, inputs["attention_mask"]))
                else:
                    s_words, t_words = aligned_word_states(
                        student_h, inputs["word_ids"], teacher_h, inputs["teacher_word_ids"]
                    )
                    if s_words.shape[0] == 0:
                        terms.append(student_h.sum() * 0.0)  # student_h went through the projection
                        self._warn_unpaired(k)
                    else:
                        terms.append(loss_fn(s_words, t_words))
            losses["hidden_loss"] = self.hidden_loss_weight * torch.stack(terms).mean()
        if self.attention_loss_weight > 0:
            if not shared:
                raise ValueError(
                    "The attention-map loss needs a shared tokenization, but the teacher reads its own "
                    "(`teacher_input_ids`). Set `attention_loss_weight=0` or use one tokenizer."
                )
            s_att, t_att = student_outputs.attentions, teacher_outputs.attentions
            # SDPA/flash attention return no probabilities: `None` or an empty tuple, depending on the version.
            if not s_att or not t_att:
                side = "student" if not s_att else "teacher"
                raise ValueError(
                    f"The attention-map loss needs attention probabilities, but the {side} returned none; load both "
                    "models with `attn_implementation='eager'`."
                )
            # attentions[i] is layer i + 1.
            terms = [
                attention_kl_loss(s_att[k - 1], t_att[j - 1], inputs["attention_mask"])
                for k, j in enumerate(self.layer_mapping, start=1)
                if j >= 1
            ]
            losses["attention_loss"] = self.attention_loss_weight * torch.stack(terms).mean()
        if self.relation_loss_weight > 0:
            losses["relation_loss"] = self.relation_loss_weight * self._relation_term(
                student_outputs, teacher_outputs, inputs, student, teacher, shared
            )
        return losses

    def _relation_term(
        self,
        student_outputs: Any,
        teacher_outputs: Any,
        inputs: Mapping[str, torch.Tensor],
        student: Any,
        teacher: Any,
        shared: bool,
    ) -> torch.Tensor:
        if not shared:
            raise ValueError(
                "The relation loss compares token positions, so it needs a shared tokenization, but the teacher reads "
                "its own (`teacher_input_ids`). Set `relation_loss_weight=0` or use one tokenizer."
            )
        if student is None or teacher is None:
            raise ValueError("The relation loss needs the student and the teacher modules (`student=`, `teacher=`).")
        s_states, t_states = student_outputs.hidden_states, teacher_outputs.hidden_states
        if s_states is None or t_states is None:
            raise ValueError("The relation loss needs `output_hidden_states=True` from both models.")
        k, j = len(self.layer_mapping), self.layer_mapping[-1]
        if j < 1:
            raise ValueError(f"The relation loss maps the student's last layer to a teacher layer >= 1, got {j}.")
        s_proj, t_proj = attention_projections(student, k), attention_projections(teacher, j)
        mask = inputs["attention_mask"]
        terms = [
            attention_relation_loss(s(s_states[k - 1]), t(t_states[j - 1]), self.num_relation_heads, mask)
            for s, t in zip(s_proj, t_proj)
        ]
        return torch.stack(terms).mean()

    def _warn_unpaired(self, layer: int) -> None:
        """Count a batch whose hidden-state term found no word both tokenizations cover; warn the first time."""
        if layer != 1:
            return
        self.unpaired_batches += 1
        if self.unpaired_batches == 1:
            logger.warning(
                "The hidden-state term found no word covered by both tokenizations in batch %d (the first such batch "
                "of %d word-aligned batches so far), so that batch adds nothing to it: truncation may cut the texts "
                "at different words, or the text has no word boundaries the alignment knows. Raise max_length / "
                "teacher_max_length, or set hidden_alignment='mean'. This warning is shown once; the count of such "
                "batches is `unpaired_batches` of the trainer's `intermediate`.",
                self.batches,
                self.batches,
            )


PROJECTIONS_FILE = "hf_kd_projections.safetensors"
"""A checkpoint's layer projections (not part of the saved student), written by [`save_projections`]."""

PROJECTIONS_MODULE = "hf_kd_projections"
"""Name of the [`IntermediateDistiller`] registered on the student by [`attach_intermediate`]."""


def attach_intermediate(model: nn.Module, teacher_config: Any, seed: int, **kwargs: Any) -> IntermediateDistiller:
    """
    Register an [`IntermediateDistiller`] on the student, as its submodule `hf_kd_projections`.

    As part of the trained model, the layer projections are seen by everything that handles the model's parameters:
    the optimizer (Trainer's parameter groups, or DeepSpeed's from its config), gradient clipping, `zero_grad`, DDP's
    gradient averaging, DeepSpeed/FSDP sharding and checkpoints. They stay out of the student's `save_pretrained`
    (`_keys_to_ignore_on_save`), so a saved student is a plain model of its architecture. A model that already has a
    distiller for the same layer mapping keeps its projections (training twice continues with them) and takes the
    loss settings of this call (`hidden_loss`, the weights, `hidden_alignment`); for another layer mapping, it is
    replaced by a new distiller (with a warning: the old projections are dropped).

    Args:
        model (`nn.Module`):
            The student (or a `peft.PeftModel` around it), on its device.
        teacher_config (`PretrainedConfig`):
            The teacher's config.
        seed (`int`):
            Seed of the projections' initialisation.
        **kwargs:
            [`IntermediateDistiller`] arguments (`layer_mapping`, `hidden_loss`, weights, `hidden_alignment`).

    Returns:
        [`IntermediateDistiller`]: The distiller on the model.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        distiller = IntermediateDistiller(model.config, teacher_config, **kwargs)
    existing = getattr(model, PROJECTIONS_MODULE, None)
    if isinstance(existing, IntermediateDistiller):
        if existing.layer_mapping == distiller.layer_mapping:
            names = ("hidden_loss", "hidden_loss_weight", "attention_loss_weight", "hidden_alignment")
            for name in (*names, "relation_loss_weight", "num_relation_heads"):
                setattr(existing, name, getattr(distiller, name))
            return existing
        logger.warning(
            "The student's layer projections were made for layer_mapping %s; this trainer asks for %s: new "
            "projections replace them.",
            existing.layer_mapping,
            distiller.layer_mapping,
        )
    parameter = next(model.parameters(), None)
    if parameter is not None:
        distiller.to(parameter.device)
    model.add_module(PROJECTIONS_MODULE, distiller)
    ignored = list(getattr(model, "_keys_to_ignore_on_save", None) or [])
    keys = ignored + [f"{PROJECTIONS_MODULE}.{key}" for key in distiller.state_dict()]
    model._keys_to_ignore_on_save = list(dict.fromkeys(keys))
    return distiller


def save_projections(distiller: IntermediateDistiller, checkpoint: str) -> None:
    """
    Save a distiller's layer projections in a checkpoint folder ([`PROJECTIONS_FILE`]).

    Args:
        distiller ([`IntermediateDistiller`]):
            The student's distiller.
        checkpoint (`str`):
            The checkpoint folder.
    """
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in distiller.state_dict().items()}
    save_file(state, os.path.join(checkpoint, PROJECTIONS_FILE))


def load_projections(model: nn.Module, checkpoint: str, device: str) -> None:
    """
    Load the layer projections of `model`'s distiller from a checkpoint folder; nothing when it has no distiller.

    Args:
        model (`nn.Module`):
            The student.
        checkpoint (`str`):
            The checkpoint folder.
        device (`str`):
            Where to load them.

    Raises:
        `ValueError`: When the checkpoint has no projections file (trained projections never restart silently).
    """
    from safetensors.torch import load_file

    distiller = getattr(model, PROJECTIONS_MODULE, None)
    if distiller is None:
        return
    path = os.path.join(checkpoint, PROJECTIONS_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"Checkpoint {checkpoint!r} has no {PROJECTIONS_FILE} to resume from.")
    distiller.load_state_dict(load_file(path, device=device))
