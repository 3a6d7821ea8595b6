"""`DistillationTrainer`: a drop-in `transformers.Trainer` that distills a teacher into the model it trains."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import datasets
import torch
from accelerate.utils import extract_model_from_parallel
from torch import nn
from torch.utils.data import RandomSampler
from transformers import PreTrainedModel, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from ..constants import DISTILLATION_COLUMNS, TEACHER_LOGITS_COLUMN, problem_type_of_config
from ..data.collator import DistillationDataCollator
from ..data.label_checks import check_label_column
from ..data.mapped import ShuffledIndexSampler, list_lengths
from ..reporting.card_data import card_data_from_model_card_args
from ..reporting.model_card import write_model_card
from .checkpoints import last_complete_checkpoint, mark_checkpoint_complete
from .distillation_config import DistillationTrainingArguments
from .intermediate import PROJECTIONS_MODULE, attach_intermediate, load_projections, save_projections
from .losses import distillation_loss, hard_label_loss, labelled_counts, validate_labels
from .student import set_head_learning_rate
from .teacher import (
    check_shared_vocabulary,
    load_teacher,
    prepare_teacher,
    reorder_logits,
    run_teacher,
    teacher_eval_stats,
    teacher_label_order,
)
from .teacher_cache import cache_teacher_logits

if TYPE_CHECKING:
    from .intermediate import IntermediateDistiller

__all__ = ["DistillationTrainer"]

logger = logging.get_logger(__name__)


def _split_inputs(inputs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The batch's distillation columns (teacher inputs, cached logits, word ids), and the student's inputs."""
    extra = {k: inputs[k] for k in DISTILLATION_COLUMNS if k in inputs}
    return extra, {k: v for k, v in inputs.items() if k not in extra}


class DistillationTrainer(Trainer):
    r"""
    A [`~transformers.Trainer`] that trains `model` (the student) to match `teacher_model` as well as the labels.

    Use it wherever a `Trainer` is used: the constructor takes `Trainer`'s arguments in `Trainer`'s order
    (`DistillationTrainer(model, args, collator, train, dev)` works), plus the keyword-only `teacher_model` (those
    not listed below are passed to [`~transformers.Trainer`] unchanged), and `train`, `evaluate`, `predict`,
    `push_to_hub`, callbacks, checkpoints and `accelerate launch` behave the same. The training loss is
    `alpha · hard + (1 − alpha) · distill (+ intermediate terms)` (`hf_kd.training.losses`). Evaluation and prediction
    never run the teacher unless `args.teacher_eval_metrics` asks for it. Layer projections are a submodule of the
    student (`hf_kd.training.intermediate`), left out by `save_model`; `push_to_hub` uploads the distillation card as
    README.

    Args:
        model (`PreTrainedModel` or `nn.Module`, *optional*):
            The student. Either `model` or `model_init` is required, as with `Trainer`.
        args (`DistillationTrainingArguments` or `TrainingArguments`, *optional*):
            Training arguments. Plain `TrainingArguments` are converted, with the distillation fields at their
            defaults.
        teacher_model (`PreTrainedModel` or `str`, *optional*, keyword-only):
            The teacher, or a local path / Hub id loaded with `AutoModelForSequenceClassification` (safetensors only;
            `trust_remote_code` off unless set in `args.teacher_model_init_kwargs`). May be `None` when the training
            set carries a `teacher_logits` column (see `hf_kd.cache_teacher_logits`).
        teacher_processing_class (`PreTrainedTokenizerBase`, *optional*, keyword-only):
            The teacher's tokenizer, when it differs from the student's. Used by the default collator to pad the
            `teacher_*` columns and to check that the teacher never receives the student's token ids.
    """

    _tag_names = ["hf-kd", "knowledge-distillation"]
    # compute_loss normalises by the number of items in the whole accumulated batch (see get_batch_samples).
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        model: PreTrainedModel | nn.Module | None = None,
        args: TrainingArguments | None = None,
        data_collator: Callable | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        model_init: Callable[..., PreTrainedModel] | None = None,
        compute_loss_func: Callable | None = None,
        compute_metrics: Callable | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[Any, Any] = (None, None),
        optimizer_cls_and_kwargs: tuple[type[torch.optim.Optimizer], dict[str, Any]] | None = None,
        preprocess_logits_for_metrics: Callable | None = None,
        *,
        teacher_model: PreTrainedModel | nn.Module | str | None = None,
        teacher_processing_class: Any = None,
    ) -> None:
        for name, value in (("model", model), ("teacher_model", teacher_model)):
            if isinstance(value, TrainingArguments):
                raise TypeError(f"`{name}` got a TrainingArguments object: `DistillationTrainer(model, args, ...)`.")
        args = DistillationTrainingArguments.from_training_arguments(args)
        if compute_loss_func is not None:
            raise ValueError(
                "`compute_loss_func` replaces the whole loss; DistillationTrainer computes the distillation loss "
                "itself. Choose the loss with the `DistillationTrainingArguments` fields instead."
            )
        if isinstance(teacher_model, str):
            teacher_model = load_teacher(teacher_model, args.teacher_model_init_kwargs)
        if data_collator is None and processing_class is not None and hasattr(processing_class, "pad"):
            # Without a teacher tokenizer the teacher shares the student's: it pads teacher_* columns too (e.g. a
            # teacher reading a translation with the same tokenizer).
            data_collator = DistillationDataCollator(
                processing_class, teacher_tokenizer=teacher_processing_class or processing_class
            )
        self.teacher_processing_class = teacher_processing_class
        self.teacher_model: nn.Module | None = None
        self._loss_parts: dict[str, list[float]] = defaultdict(list)
        self._teacher_eval: list[torch.Tensor] = []
        self._num_examples_in_batch: torch.Tensor | None = None
        self._teacher_label_order: torch.Tensor | None = None

        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            model_init=model_init,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        )
        self.args: DistillationTrainingArguments
        if teacher_model is not None:
            self.teacher_model = prepare_teacher(
                teacher_model, self.accelerator, dtype=self.args.teacher_dtype, deepspeed=self.is_deepspeed_enabled
            )
        elif self.args.uses_intermediate_losses:
            raise ValueError(
                "Hidden-state and attention distillation need the teacher's activations, so they need "
                "`teacher_model`; cached `teacher_logits` only hold the outputs. Pass a teacher or set "
                "`hidden_loss_weight=0` and `attention_loss_weight=0`."
            )
        if self.model is not None:
            self._prepare_student(self.model)
        self._check_teacher_logits(self.train_dataset)

    # ------------------------------------------------------------------ teacher and student

    def _prepare_student(self, model: nn.Module) -> None:
        """Check the student's label space against the teacher's; register the layer projections on it."""
        if self.teacher_model is None:
            return
        self._teacher_label_order = teacher_label_order(model, self.teacher_model)
        if self.args.uses_intermediate_losses:
            teacher_config = extract_model_from_parallel(self.teacher_model).config
            attach_intermediate(model, teacher_config, self.args.seed, **self.args.intermediate_options)

    @property
    def intermediate(self) -> IntermediateDistiller | None:
        """The student's layer projections and intermediate terms, when hidden-state or attention losses are on."""
        model = self.model
        return getattr(model, PROJECTIONS_MODULE, None) if model is not None else None

    def _check_teacher_logits(self, dataset: Any) -> None:
        columns = getattr(dataset, "column_names", None) or []
        if self.teacher_model is not None and TEACHER_LOGITS_COLUMN in columns and not self.args.keep_teacher_logits:
            raise ValueError(
                "The training set has a `teacher_logits` column and a `teacher_model` was given: the column may come "
                "from another teacher. Remove the column to distil from this teacher, or set "
                "`keep_teacher_logits=True` to train from the column."
            )

    def call_model_init(self, trial: Any = None) -> nn.Module:
        """`Trainer.call_model_init`, with each new student checked against the teacher and given its projections."""
        model = super().call_model_init(trial)
        self._prepare_student(model)
        return model

    def _teacher_forward(self, inputs: dict[str, Any], need_states: bool) -> Any:
        if self.teacher_model is not None and "teacher_input_ids" not in inputs:
            check_shared_vocabulary(
                self.model, self.teacher_model, self.processing_class, self.teacher_processing_class
            )
        hidden, attentions = need_states and self.args.needs_hidden_states, self.args.attention_loss_weight > 0
        return run_teacher(self.teacher_model, inputs, hidden, need_states and attentions)

    # ------------------------------------------------------------------ data

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        for column in DISTILLATION_COLUMNS:
            if column not in self._signature_columns:
                self._signature_columns.append(column)

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler | None:
        """`Trainer`'s sampler, in the same order, with less memory per row of a large transfer set.

        With `train_sampling_strategy="group_by_length"` and no length column, the lengths of a `datasets.Dataset`'s
        token ids are read from its Arrow offsets instead of row by row in Python (the same lengths, so the same
        order). A shuffled epoch is [`~hf_kd.data.mapped.ShuffledIndexSampler`]: the order of accelerate's seedable
        sampler, kept as a tensor instead of a Python list of every row."""
        dataset = self.train_dataset if train_dataset is None else train_dataset
        name = self.processing_class.model_input_names[0] if self.processing_class is not None else "input_ids"
        if (
            self.args.train_sampling_strategy == "group_by_length"
            and isinstance(dataset, datasets.Dataset)
            and self.args.length_column_name not in dataset.column_names
            and name in dataset.column_names
        ):
            return LengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                dataset=dataset,
                lengths=list_lengths(dataset, name).tolist(),
                model_input_name=name,
            )
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is RandomSampler and getattr(self.args.accelerator_config, "use_seedable_sampler", True):
            # accelerate would swap in its SeedableRandomSampler: the same order, without a Python list of every row.
            seed = self.args.data_seed if self.args.data_seed is not None else torch.random.initial_seed()
            return ShuffledIndexSampler(len(sampler), seed)
        return sampler

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: torch.device) -> tuple[list, Any]:
        """Collect the batches of one optimizer step, and count their labelled items and examples for `compute_loss`.

        With `average_tokens_across_devices` (the default) the counts cover every process: one large batch.
        """
        batch_samples, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        counts = torch.tensor(labelled_counts(batch_samples), dtype=torch.float32, device=device)
        if self._across_devices():
            counts = self.accelerator.reduce(counts, reduction="sum")
        self._num_examples_in_batch = counts[1]
        return batch_samples, counts[0]

    def _across_devices(self) -> bool:
        return self.args.world_size > 1 and bool(self.args.average_tokens_across_devices)

    # ------------------------------------------------------------------ loss

    def _problem_type(self, model: nn.Module, labels: torch.Tensor | None) -> str:
        return problem_type_of_config(self.accelerator.unwrap_model(model).config, labels)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """`alpha · hard + (1 − alpha) · distill + intermediate` in training; the plain `Trainer` loss otherwise.

        Args:
            model (`nn.Module`):
                The (possibly wrapped) student.
            inputs (`dict[str, torch.Tensor]`):
                The batch, with the distillation columns of `DISTILLATION_COLUMNS` next to the student's inputs.
            return_outputs (`bool`, *optional*, defaults to `False`):
                Whether to return the student's outputs too.
            num_items_in_batch (`torch.Tensor` or `int`, *optional*):
                Labelled items in the whole accumulated batch (`get_batch_samples`): the hard term is normalised by
                it and the distillation term by the examples, so that accumulation gives one large batch's gradient.
                Without it, each term is a mean over this batch, divided by the accumulation steps.

        Returns:
            The loss, and the student's outputs when `return_outputs` is `True`.
        """
        extra, student_inputs = _split_inputs(inputs)
        if not model.training:
            return super().compute_loss(model, student_inputs, return_outputs, num_items_in_batch)

        args = self.args
        labels = student_inputs.pop("labels", None)
        problem_type = self._problem_type(model, labels)
        if labels is not None:
            labels = validate_labels(labels, problem_type, self.accelerator.unwrap_model(model).config.num_labels)
        need_states = args.uses_intermediate_losses
        if need_states:
            student_inputs["output_hidden_states"] = args.needs_hidden_states
            student_inputs["output_attentions"] = args.attention_loss_weight > 0
        outputs = model(**student_inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]

        # Hard term: sum over labelled items, normalised by the accumulated count.
        zero = logits.sum() * 0.0
        if labels is not None and args.alpha > 0:
            hard_sum, hard_count = hard_label_loss(logits, labels, problem_type)
        else:
            hard_sum, hard_count = zero, torch.zeros((), device=logits.device)

        # Distillation term.
        kd_per_example, teacher_outputs = None, None
        if args.alpha < 1 or need_states:
            if TEACHER_LOGITS_COLUMN in extra and not need_states:
                teacher_logits = extra[TEACHER_LOGITS_COLUMN].to(logits.device).float()
            else:
                teacher_outputs = self._teacher_forward(inputs, need_states)
                teacher_logits = reorder_logits(teacher_outputs.logits, self._teacher_label_order)
            if teacher_logits.numel() != logits.numel():
                raise ValueError(
                    f"Teacher logits of shape {tuple(teacher_logits.shape)} do not match the student's "
                    f"{tuple(logits.shape)}."
                )
            kd_per_example = distillation_loss(logits, teacher_logits, problem_type, **args.distillation_options)

        if num_items_in_batch is not None and self._num_examples_in_batch is not None:
            hard = hard_sum / torch.as_tensor(num_items_in_batch, device=logits.device).clamp(min=1)
            examples = self._num_examples_in_batch.to(logits.device).clamp(min=1)
            kd = kd_per_example.sum() / examples if kd_per_example is not None else zero
            # DDP averages the gradients over processes; the counts already cover all of them.
            scale = float(self.args.world_size) if self._across_devices() else 1.0
            share = logits.shape[0] / float(examples)
        else:
            hard = hard_sum / hard_count.clamp(min=1)
            kd = kd_per_example.mean() if kd_per_example is not None else zero
            # Per-batch means: `loss_is_scaled_for_ga` tells Trainer not to divide, so divide here.
            scale, share = 1.0 / getattr(self, "current_gradient_accumulation_steps", 1), 1.0
        loss = args.alpha * hard + (1 - args.alpha) * kd

        # Parts for logging, as per-batch means.
        self._loss_parts["hard_loss"].append(float(hard_sum.detach() / hard_count.clamp(min=1)))
        if kd_per_example is not None:
            self._loss_parts["distill_loss"].append(float(kd_per_example.detach().mean()))
        if need_states:
            student, teacher = self.accelerator.unwrap_model(model), extract_model_from_parallel(self.teacher_model)
            terms = student.get_submodule(PROJECTIONS_MODULE)(outputs, teacher_outputs, inputs, student, teacher)
            for name, value in terms.items():
                self._loss_parts[name].append(float(value.detach()))
                # Intermediate terms are per-batch means; weight them by this batch's share of the examples.
                loss = loss + value * share
        loss = loss * scale
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean hard, distillation and intermediate loss parts since the last log to the training logs."""
        if "loss" in logs and self._loss_parts:
            for name, values in self._loss_parts.items():
                mean = torch.tensor(sum(values) / max(len(values), 1), device=self.args.device)
                if self.args.world_size > 1:
                    mean = self.accelerator.reduce(mean, reduction="mean")
                logs[name] = float(mean)
            self._loss_parts.clear()
        super().log(logs, start_time)

    # ------------------------------------------------------------------ optimizer, training, checkpoints

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """Trainer's optimizer (the projections included, as parameters of the student), the head at its own rate."""
        created = self.optimizer is None
        optimizer = super().create_optimizer(model)
        if created and self.args.head_learning_rate is not None:
            set_head_learning_rate(optimizer, self.model if model is None else model, self.args.head_learning_rate)
        return optimizer

    def train(
        self,
        resume_from_checkpoint: str | bool | None = None,
        trial: Any = None,
        ignore_keys_for_eval: list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """`Trainer.train`, after checking the labels and caching the teacher's logits when asked; with
        `resume_from_checkpoint=True`, from the last complete checkpoint (`hf_kd.training.checkpoints`)."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir, remove_incomplete=False)
            if resume_from_checkpoint is None:
                raise ValueError(f"No complete checkpoint in {self.args.output_dir!r} to resume from.")
        self._check_teacher_logits(self.train_dataset)
        if self.model is not None and self.model_init is None and hasattr(self.train_dataset, "column_names"):
            check_label_column(self.train_dataset, self.accelerator.unwrap_model(self.model).config)
        if self.args.precompute_teacher_logits and self.train_dataset is not None:
            self.train_dataset = self.with_teacher_logits(self.train_dataset)
        return super().train(
            resume_from_checkpoint=resume_from_checkpoint,
            trial=trial,
            ignore_keys_for_eval=ignore_keys_for_eval,
            **kwargs,
        )

    def with_teacher_logits(self, dataset: Any) -> Any:
        """
        `dataset` with a `teacher_logits` column: the teacher run once over it (`hf_kd.training.teacher_cache`, in the
        student's label order, shared between processes, cached under `output_dir/teacher_cache` by the teacher's
        weights). A dataset that has the column is returned as it is; a dict of datasets gets each its column.

        Args:
            dataset (`datasets.Dataset` or `dict[str, datasets.Dataset]`):
                Tokenized rows (the teacher's own columns when it reads other tokens).

        Returns:
            The dataset (or dict) with the teacher's logits.
        """
        if isinstance(dataset, dict):
            return {name: self.with_teacher_logits(part) for name, part in dataset.items()}
        if TEACHER_LOGITS_COLUMN in (getattr(dataset, "column_names", None) or []):
            return dataset
        if self.teacher_model is None:
            raise ValueError("Caching the teacher's logits (`precompute_teacher_logits`) needs a `teacher_model`.")
        return cache_teacher_logits(
            self.teacher_model,
            dataset,
            batch_size=self.args.teacher_batch_size or self.args.per_device_eval_batch_size,
            label_order=self._teacher_label_order,
            cache_dir=os.path.join(self.args.output_dir, "teacher_cache"),
            accelerator=self.accelerator,
        )

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        """`Trainer._save_checkpoint`, plus the projections, then `COMPLETE_FILE`: written last, so that a save that
        stopped midway (a full disk, a kill) leaves a checkpoint without it, which resuming skips."""
        super()._save_checkpoint(model, trial)
        folder = os.path.join(self._get_output_dir(trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.intermediate is not None and self.args.should_save:
            save_projections(self.intermediate, folder)
        self.accelerator.wait_for_everyone()  # every process's part of the checkpoint is written
        if self.args.should_save:
            mark_checkpoint_complete(folder)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_projections(model if model is not None else self.model, resume_from_checkpoint, str(self.args.device))

    # ------------------------------------------------------------------ evaluation

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """`Trainer.prediction_step` on the student alone; the teacher runs only for `teacher_eval_metrics`."""
        extra, student_inputs = _split_inputs(inputs)
        loss, logits, labels = super().prediction_step(model, student_inputs, prediction_loss_only, ignore_keys)
        if self.args.teacher_eval_metrics and (self.teacher_model is not None or TEACHER_LOGITS_COLUMN in extra):
            self._accumulate_teacher_eval(model, inputs, extra, logits)
        return loss, logits, labels

    def _accumulate_teacher_eval(self, model: nn.Module, inputs: dict[str, Any], extra: dict, logits: Any) -> None:
        """Per-example agreement and distillation loss, gathered over processes without the padded duplicates."""
        inputs = self._prepare_inputs(inputs)
        if TEACHER_LOGITS_COLUMN in extra:
            teacher = inputs[TEACHER_LOGITS_COLUMN].float()
        else:
            teacher = reorder_logits(self._teacher_forward(inputs, False).logits, self._teacher_label_order)
        if logits is None:
            with torch.no_grad():
                logits = model(**{k: v for k, v in _split_inputs(inputs)[1].items() if k != "labels"}).logits
        student = (logits[0] if isinstance(logits, tuple) else logits).float()
        problem_type = self._problem_type(model, inputs.get("labels"))
        stats = teacher_eval_stats(student, teacher, problem_type, self.args.distillation_options)
        self._teacher_eval.append(self.accelerator.gather_for_metrics(stats).sum(0).cpu())

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """`Trainer.evaluate`, plus `teacher_agreement` and `distill_loss` when `teacher_eval_metrics` is on."""
        self._teacher_eval = []
        metrics = super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        if self._teacher_eval:
            agree, items, kd, examples = torch.stack(self._teacher_eval).sum(0).tolist()
            prefix = metric_key_prefix
            extra = {f"{prefix}_teacher_agreement": agree / max(items, 1.0), f"{prefix}_distill_loss": kd / examples}
            metrics.update(extra)
            self.log(extra)
        return metrics

    # ------------------------------------------------------------------ Hub

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """
        The distillation card as `output_dir/README.md` (what `push_to_hub` uploads), from the arguments of
        `Trainer.create_model_card`: see [`~hf_kd.reporting.card_data.card_data_from_model_card_args`].
        """
        if not self.is_world_process_zero():
            return

        write_model_card(self.args.output_dir, card_data_from_model_card_args(self, *args, **kwargs))

    # ------------------------------------------------------------------ hyperparameter search

    def hyperparameter_search(
        self,
        hp_space: Any = None,
        compute_objective: Callable[[dict[str, float]], float] | None = None,
        n_trials: int = 20,
        direction: str | list[str] = "minimize",
        backend: Any = None,
        hp_name: Callable[[Any], str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """`Trainer.hyperparameter_search`, plus `backend="pso"`: a resumable particle-swarm search.

        With `backend="pso"` the arguments (and `n_particles`, `seed`, `pso_options`, `velocity_clamp` in `kwargs`)
        go to [`hf_kd.search.run_pso`], which documents them; any other backend is `Trainer.hyperparameter_search`.

        Args:
            hp_space (`dict` or `Callable`, *optional*): The search space.
            compute_objective (`Callable`, *optional*): Objective from the evaluation metrics.
            n_trials (`int`, *optional*, defaults to 20): Number of trials.
            direction (`str` or `list[str]`, *optional*, defaults to `"minimize"`): The direction.
            backend (`str` or `HPSearchBackend`, *optional*): `"pso"` or a transformers backend.
            hp_name (`Callable`, *optional*): Names a trial's run.
            kwargs (`dict[str, Any]`, *optional*): Backend options.

        Returns:
            [`~trainer_utils.BestRun`] (or a list of them for multi-objective searches with other backends).
        """
        if isinstance(backend, str) and backend.lower() == "pso":
            from ..search.pso import run_pso

            return run_pso(
                self,
                hp_space=hp_space,
                n_trials=n_trials,
                direction=direction,
                compute_objective=compute_objective,
                hp_name=hp_name,
                **kwargs,
            )
        return super().hyperparameter_search(
            hp_space=hp_space,
            compute_objective=compute_objective,
            n_trials=n_trials,
            direction=direction,
            backend=backend,
            hp_name=hp_name,
            **kwargs,
        )
