"""`DistillationTrainingArguments`: `transformers.TrainingArguments` plus the fields that control the distillation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from transformers import TrainingArguments

__all__ = ["DistillationTrainingArguments"]

_SINGLE_LABEL_LOSSES = ("kl", "mse")
_MULTI_LABEL_LOSSES = ("bernoulli_kl", "mse")
_HIDDEN_LOSSES = ("mse", "cosine")
_HIDDEN_ALIGNMENTS = ("auto", "mean")
_TEACHER_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class DistillationTrainingArguments(TrainingArguments):
    r"""
    [`~transformers.TrainingArguments`] for [`DistillationTrainer`], with the fields that control the distillation.

    The training loss is `alpha · hard + (1 − alpha) · distill + Σ weight · intermediate`, where `hard` is the loss a
    plain [`~transformers.Trainer`] computes on the gold labels and `distill` matches the teacher's outputs (see
    `hf_kd.training.losses` for the formulas).

    Parameters:
        temperature (`float`, *optional*, defaults to `2.0`):
            Softening temperature `T` of the distillation term, > 0.
        alpha (`float`, *optional*, defaults to `0.5`):
            Weight of the hard-label loss, in [0, 1]. `1` is plain fine-tuning, `0` pure distillation.
        single_label_distillation_loss (`str`, *optional*, defaults to `"kl"`):
            Distillation term for single-label classification (and two-logit binary heads): `"kl"` (softened softmax
            KL) or `"mse"` (MSE between logits).
        multi_label_distillation_loss (`str`, *optional*, defaults to `"bernoulli_kl"`):
            Distillation term for multi-label classification (and one-logit binary heads): `"bernoulli_kl"`
            (per-label sigmoid KL) or `"mse"` (MSE between logits). Regression always uses MSE to the teacher.
        teacher_dtype (`str`, *optional*, defaults to `"auto"`):
            Dtype the teacher runs in: `"auto"` (as loaded), `"float32"`, `"bfloat16"` or `"float16"`. Its logits are
            cast to float32 before the loss.
        teacher_model_init_kwargs (`dict`, *optional*):
            Keyword arguments for `AutoModelForSequenceClassification.from_pretrained` when `teacher_model` is a
            path or Hub id (e.g. `{"revision": "..."}`). `trust_remote_code` stays off unless set here.
        head_learning_rate (`float`, *optional*):
            Separate learning rate for the student's newly initialised head (classifier and pooler). The encoder uses
            `learning_rate`. Only trainable parameters get it: with a `peft` (LoRA) student, the trained copy of the
            head (`modules_to_save`), while the LoRA matrices use `learning_rate`.
        precompute_teacher_logits (`bool`, *optional*, defaults to `False`):
            Run the teacher once over the training set at the start of `train()` and train from the cached
            `teacher_logits` column (see `hf_kd.cache_teacher_logits`).
        keep_teacher_logits (`bool`, *optional*, defaults to `False`):
            Train from a `teacher_logits` column that is already in the training set although a `teacher_model` is
            given. By default that combination is refused: the column may come from another teacher.
        teacher_batch_size (`int`, *optional*):
            Batch size for caching the teacher's logits. Defaults to `per_device_eval_batch_size`.
        teacher_eval_metrics (`bool`, *optional*, defaults to `False`):
            Also run the teacher during `evaluate()` and report student–teacher agreement and the distillation loss.
            Off by default, so that evaluating and predicting cost what they cost with a plain `Trainer`.
        hidden_loss_weight (`float`, *optional*, defaults to `0.0`):
            Weight of the intermediate hidden-state loss (0 disables it).
        hidden_loss (`str`, *optional*, defaults to `"mse"`):
            Hidden-state loss: `"mse"` or `"cosine"`.
        hidden_alignment (`str`, *optional*, defaults to `"auto"`):
            How hidden states are paired. `"auto"`: token by token when teacher and student share a tokenization,
            word by word (`word_ids`/`teacher_word_ids`) when their tokenizers differ on the same text. `"mean"`: the
            mean of each side's token states over its attention mask, one vector per example and mapped layer; this
            needs no pairing of tokens, so it also works when the teacher reads a translation of the student's text
            (cross-lingual parallel distillation).
        layer_mapping (`list[int]`, *optional*):
            Teacher layer matched by each student layer (`len` = number of student layers; hidden-state index 0 is
            the embeddings, index `i` the output of layer `i`). Uniform by default: student layer `i` of `m` maps to
            teacher layer `i · n / m`.
        attention_loss_weight (`float`, *optional*, defaults to `0.0`):
            Weight of the attention-map loss on the mapped layers (needs a shared tokenization).
        relation_loss_weight (`float`, *optional*, defaults to `0.0`):
            Weight of MiniLMv2's self-attention relation loss: query-query, key-key and value-value relations of
            the student's last layer against the teacher layer it maps to (`hf_kd.training.intermediate`); any head
            count and width (needs a shared tokenization, BERT-style encoders). With `alpha=1` and no labels it is the
            general distillation of a student on plain text
            (`hf_kd.pipeline.stages.general_distillation.run_general_distillation`).
        num_relation_heads (`int`, *optional*):
            Relation heads of that loss; defaults to the student's attention heads. Must divide both widths.
    """

    temperature: float = field(
        default=2.0, metadata={"help": "Softening temperature T of the distillation term (> 0)."}
    )
    alpha: float = field(
        default=0.5,
        metadata={"help": "Weight of the hard-label loss in [0, 1]; 1 is plain fine-tuning, 0 pure distillation."},
    )
    single_label_distillation_loss: str = field(
        default="kl",
        metadata={
            "help": "Distillation term for single-label (and two-logit binary) tasks.",
            "choices": list(_SINGLE_LABEL_LOSSES),
        },
    )
    multi_label_distillation_loss: str = field(
        default="bernoulli_kl",
        metadata={
            "help": "Distillation term for multi-label (and one-logit binary) tasks: per-label sigmoid KL or MSE.",
            "choices": list(_MULTI_LABEL_LOSSES),
        },
    )
    teacher_dtype: str = field(
        default="auto",
        metadata={"help": "Dtype the teacher runs in.", "choices": list(_TEACHER_DTYPES)},
    )
    teacher_model_init_kwargs: dict | None = field(
        default=None,
        metadata={"help": "Keyword arguments for loading the teacher from a path or Hub id (e.g. revision)."},
    )
    head_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Separate learning rate for the student's new head (classifier and pooler)."},
    )
    precompute_teacher_logits: bool = field(
        default=False,
        metadata={"help": "Cache the teacher's logits over the training set at the start of train()."},
    )
    keep_teacher_logits: bool = field(
        default=False,
        metadata={"help": "Train from a teacher_logits column already in the data although a teacher is given."},
    )
    teacher_batch_size: int | None = field(
        default=None,
        metadata={"help": "Batch size for caching teacher logits (defaults to per_device_eval_batch_size)."},
    )
    teacher_eval_metrics: bool = field(
        default=False,
        metadata={"help": "Run the teacher in evaluate() to report agreement and distillation loss."},
    )
    hidden_loss_weight: float = field(
        default=0.0, metadata={"help": "Weight of the intermediate hidden-state loss (0 disables it)."}
    )
    hidden_loss: str = field(default="mse", metadata={"help": "Hidden-state loss.", "choices": list(_HIDDEN_LOSSES)})
    hidden_alignment: str = field(
        default="auto",
        metadata={
            "help": "Pair hidden states token/word by word ('auto') or compare per-example mean states ('mean').",
            "choices": list(_HIDDEN_ALIGNMENTS),
        },
    )
    layer_mapping: list[int] | None = field(
        default=None,
        metadata={"help": "Teacher layer matched by each student layer; uniform when unset."},
    )
    attention_loss_weight: float = field(
        default=0.0, metadata={"help": "Weight of the attention-map loss (needs a shared tokenization)."}
    )
    relation_loss_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of MiniLMv2's query/key/value relation loss on the last layer."},
    )
    num_relation_heads: int | None = field(
        default=None, metadata={"help": "Relation heads of the relation loss (default: the student's heads)."}
    )

    @classmethod
    def from_training_arguments(cls, args: TrainingArguments | None) -> DistillationTrainingArguments:
        """
        `args` as `DistillationTrainingArguments`: returned as it is when it already is one, converted (distillation
        fields at their defaults) from plain `TrainingArguments`, and `Trainer`'s default (`output_dir="tmp_trainer"`)
        when None.

        Args:
            args (`TrainingArguments`, *optional*):
                The arguments given to the trainer.

        Returns:
            [`DistillationTrainingArguments`]: The arguments.

        Raises:
            `TypeError`: When `args` is not a `TrainingArguments` (e.g. a teacher model passed in its place).
        """
        if args is not None and not isinstance(args, TrainingArguments):
            raise TypeError(
                f"`args` must be a TrainingArguments (or DistillationTrainingArguments), got a {type(args).__name__}. "
                "`teacher_model` is keyword-only: `DistillationTrainer(model, args, ..., teacher_model=teacher)`."
            )
        if args is None:
            return cls(output_dir="tmp_trainer")
        if isinstance(args, cls):
            return args
        return cls(**{f.name: getattr(args, f.name) for f in fields(args) if f.init and hasattr(args, f.name)})

    @classmethod
    def distillation_fields(cls) -> frozenset[str]:
        """
        The fields only a distillation reads: every field this class adds to `TrainingArguments` but
        `head_learning_rate` (the head's learning rate of any training, hard-label training included). A
        hard-label run (`alpha=1`, e.g. the pipeline's student warm-up) ignores them.

        Returns:
            `frozenset[str]`: The field names.
        """
        own = {f.name for f in fields(cls)} - {f.name for f in fields(TrainingArguments)}
        return frozenset(own - {"head_learning_rate"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (
            isinstance(self.temperature, int | float) and math.isfinite(self.temperature) and self.temperature > 0
        ):
            raise ValueError(f"`temperature` must be a finite number > 0, got {self.temperature!r}.")
        if not (isinstance(self.alpha, int | float) and 0.0 <= self.alpha <= 1.0):
            raise ValueError(f"`alpha` must be in [0, 1], got {self.alpha!r}.")
        _check_choice("single_label_distillation_loss", self.single_label_distillation_loss, _SINGLE_LABEL_LOSSES)
        _check_choice("multi_label_distillation_loss", self.multi_label_distillation_loss, _MULTI_LABEL_LOSSES)
        _check_choice("teacher_dtype", self.teacher_dtype, _TEACHER_DTYPES)
        _check_choice("hidden_loss", self.hidden_loss, _HIDDEN_LOSSES)
        _check_choice("hidden_alignment", self.hidden_alignment, _HIDDEN_ALIGNMENTS)
        if self.head_learning_rate is not None and not (
            math.isfinite(self.head_learning_rate) and self.head_learning_rate > 0
        ):
            raise ValueError(f"`head_learning_rate` must be > 0 when set, got {self.head_learning_rate!r}.")
        if self.teacher_batch_size is not None and self.teacher_batch_size < 1:
            raise ValueError(f"`teacher_batch_size` must be >= 1 when set, got {self.teacher_batch_size!r}.")
        if self.num_relation_heads is not None and not (
            isinstance(self.num_relation_heads, int) and self.num_relation_heads >= 1
        ):
            raise ValueError(f"`num_relation_heads` must be an integer >= 1, got {self.num_relation_heads!r}.")
        for name in ("hidden_loss_weight", "attention_loss_weight", "relation_loss_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
        if self.layer_mapping is not None:
            if len(self.layer_mapping) == 0 or any(int(i) != i or i < 0 for i in self.layer_mapping):
                raise ValueError(
                    "`layer_mapping` must be a non-empty list of teacher layer indices >= 0, got "
                    f"{self.layer_mapping!r}."
                )
            self.layer_mapping = [int(i) for i in self.layer_mapping]
        if self.uses_intermediate_losses:
            # The layer projections are used after the student's forward: DDP must not look for unused parameters
            # (it would mark them ready before their gradients exist).
            if self.ddp_find_unused_parameters:
                raise ValueError(
                    "`ddp_find_unused_parameters=True` cannot be used with hidden-state or attention distillation: "
                    "the layer projections are used after the student's forward pass. Leave it unset."
                )
            self.ddp_find_unused_parameters = False
        if self.teacher_model_init_kwargs is not None and not isinstance(self.teacher_model_init_kwargs, dict):
            raise ValueError(
                f"`teacher_model_init_kwargs` must be a dict, got {type(self.teacher_model_init_kwargs).__name__}."
            )

    @property
    def distillation_options(self) -> dict[str, Any]:
        """The keyword arguments of `hf_kd.training.losses.distillation_loss` these arguments choose."""
        return {
            "temperature": self.temperature,
            "single_label_loss": self.single_label_distillation_loss,
            "multi_label_loss": self.multi_label_distillation_loss,
        }

    @property
    def intermediate_options(self) -> dict[str, Any]:
        """The keyword arguments of `hf_kd.training.intermediate.IntermediateDistiller` these arguments choose."""
        return {
            "layer_mapping": self.layer_mapping,
            "hidden_loss": self.hidden_loss,
            "hidden_loss_weight": self.hidden_loss_weight,
            "attention_loss_weight": self.attention_loss_weight,
            "hidden_alignment": self.hidden_alignment,
            "relation_loss_weight": self.relation_loss_weight,
            "num_relation_heads": self.num_relation_heads,
        }

    @property
    def uses_intermediate_losses(self) -> bool:
        """Whether a hidden-state, attention or relation term is enabled (they need the online teacher)."""
        return self.hidden_loss_weight > 0 or self.attention_loss_weight > 0 or self.relation_loss_weight > 0

    @property
    def needs_hidden_states(self) -> bool:
        """Whether the models must return their hidden states (hidden-state and relation terms)."""
        return self.hidden_loss_weight > 0 or self.relation_loss_weight > 0


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, choices))}, got {value!r}.")
