"""`DistillationTrainer`: a drop-in `transformers.Trainer` that distills a teacher into the model it trains."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import torch
from accelerate.utils import extract_model_from_parallel
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedModel, Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from .config import DistillationTrainingArguments
from .constants import DISTILLATION_COLUMNS, IGNORE_INDEX, TEACHER_INPUT_COLUMNS, problem_type_of_config
from .intermediate import IntermediateDistiller, ProjectionGradSyncCallback
from .losses import distillation_loss, hard_label_loss, validate_labels
from .student import set_head_learning_rate
from .teacher import check_shared_vocabulary, load_teacher, prepare_teacher, teacher_label_order

__all__ = ["PROJECTIONS_FILE", "DistillationTrainer"]

logger = logging.get_logger(__name__)

PROJECTIONS_FILE = "hf_kd_projections.safetensors"
"""File of a checkpoint that holds the layer projections of intermediate distillation (not part of the student)."""


class DistillationTrainer(Trainer):
    r"""
    A [`~transformers.Trainer`] that trains `model` (the student) to match `teacher_model` as well as the labels.

    Use it wherever a `Trainer` is used: the constructor takes the same arguments plus `teacher_model` (those not
    listed below are passed to [`~transformers.Trainer`] unchanged), and `train`, `evaluate`, `predict`,
    `push_to_hub`, callbacks, checkpoints and `accelerate launch` behave the same. The training loss is
    `alpha · hard + (1 − alpha) · distill (+ intermediate terms)`, with the distillation term chosen from the
    student's `config.problem_type` (see `hf_kd.losses`). Evaluation and prediction never run the teacher unless
    `args.teacher_eval_metrics` asks for it, and `eval_loss` is the student's own hard-label loss.

    Args:
        model (`PreTrainedModel` or `nn.Module`, *optional*):
            The student. Either `model` or `model_init` is required, as with `Trainer`.
        teacher_model (`PreTrainedModel` or `str`, *optional*):
            The teacher, or a local path / Hub id loaded with `AutoModelForSequenceClassification` (safetensors only;
            `trust_remote_code` off unless set in `args.teacher_model_init_kwargs`). May be `None` when the training
            set carries a `teacher_logits` column (see `hf_kd.cache_teacher_logits`).
        args (`DistillationTrainingArguments` or `TrainingArguments`, *optional*):
            Training arguments. Plain `TrainingArguments` are converted, with the distillation fields at their
            defaults.
        teacher_processing_class (`PreTrainedTokenizerBase`, *optional*):
            The teacher's tokenizer, when it differs from the student's. Used by the default collator to pad the
            `teacher_*` columns and to check that the teacher never receives the student's token ids.
    """

    _tag_names = ["hf-kd", "knowledge-distillation"]
    # compute_loss normalises by the number of items in the whole accumulated batch (see get_batch_samples).
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        model: PreTrainedModel | nn.Module | None = None,
        teacher_model: PreTrainedModel | nn.Module | str | None = None,
        args: DistillationTrainingArguments | None = None,
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
        teacher_processing_class: Any = None,
    ) -> None:
        if args is None:
            args = DistillationTrainingArguments(output_dir="tmp_trainer")
        elif not isinstance(args, DistillationTrainingArguments):
            args = DistillationTrainingArguments(
                **{f.name: getattr(args, f.name) for f in fields(args) if f.init and hasattr(args, f.name)}
            )
        if compute_loss_func is not None:
            raise ValueError(
                "`compute_loss_func` replaces the whole loss; DistillationTrainer computes the distillation loss "
                "itself. Choose the loss with the `DistillationTrainingArguments` fields instead."
            )
        if isinstance(teacher_model, str):
            teacher_model = load_teacher(teacher_model, args.teacher_model_init_kwargs)
        if data_collator is None and processing_class is not None and hasattr(processing_class, "pad"):
            from .collator import DistillationDataCollator

            # Without a teacher tokenizer the teacher shares the student's: it pads teacher_* columns too (e.g. a
            # teacher reading a translation with the same tokenizer).
            data_collator = DistillationDataCollator(
                processing_class, teacher_tokenizer=teacher_processing_class or processing_class
            )
        self.teacher_processing_class = teacher_processing_class
        self._loss_parts: dict[str, list[float]] = defaultdict(list)
        self._teacher_eval: dict[str, float] = defaultdict(float)
        self._num_examples_in_batch: torch.Tensor | None = None
        self._teacher_label_order: torch.Tensor | None = None
        self.intermediate: IntermediateDistiller | None = None

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

        self.teacher_model = self._prepare_teacher(teacher_model) if teacher_model is not None else None
        if self.teacher_model is not None:
            self._check_label_spaces(self.model, self.teacher_model)
        elif self.args.uses_intermediate_losses:
            raise ValueError(
                "Hidden-state and attention distillation need the teacher's activations, so they need "
                "`teacher_model`; cached `teacher_logits` only hold the outputs. Pass a teacher or set "
                "`hidden_loss_weight=0` and `attention_loss_weight=0`."
            )
        if self.args.uses_intermediate_losses:
            self.add_callback(ProjectionGradSyncCallback(self))

    # ------------------------------------------------------------------ teacher

    def _prepare_teacher(self, teacher: nn.Module) -> nn.Module:
        """Freeze the teacher and place it like accelerate places an evaluation-only model (never DDP-wrapped)."""
        return prepare_teacher(
            teacher, self.accelerator, dtype=self.args.teacher_dtype, deepspeed=self.is_deepspeed_enabled
        )

    def _check_label_spaces(self, student: nn.Module, teacher: nn.Module) -> None:
        """Check that teacher and student share a label space; reorder the teacher's logits to the student's order."""
        self._teacher_label_order = teacher_label_order(student, teacher)

    def _teacher_forward(self, inputs: dict[str, Any], need_states: bool) -> Any:
        """Run the frozen teacher on the batch's teacher inputs (or the student's, when they share a vocabulary)."""
        if self.teacher_model is None:
            raise ValueError(
                "The batch has no `teacher_logits` column and no `teacher_model` was given: pass a teacher or cache "
                "its logits with `hf_kd.cache_teacher_logits`."
            )
        if "teacher_input_ids" in inputs:
            t_inputs = {k[len("teacher_") :]: inputs[k] for k in TEACHER_INPUT_COLUMNS if k in inputs}
        else:
            check_shared_vocabulary(
                self.model, self.teacher_model, self.processing_class, self.teacher_processing_class
            )
            t_inputs = {k: inputs[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in inputs}
        if need_states:
            t_inputs["output_hidden_states"] = self.args.hidden_loss_weight > 0
            t_inputs["output_attentions"] = self.args.attention_loss_weight > 0
        self.teacher_model.eval()
        with torch.no_grad():
            return self.teacher_model(**t_inputs)

    def _teacher_logits(self, teacher_outputs: Any) -> torch.Tensor:
        logits = teacher_outputs.logits.float()
        if self._teacher_label_order is not None:
            logits = logits[:, self._teacher_label_order.to(logits.device)]
        return logits

    # ------------------------------------------------------------------ data

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        for column in DISTILLATION_COLUMNS:
            if column not in self._signature_columns:
                self._signature_columns.append(column)

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: torch.device) -> tuple[list, Any]:
        """Collect the batches of one optimizer step and count their labelled items and examples.

        The counts cover every process, so that `compute_loss` normalises by the whole gradient-accumulated batch:
        `num_items_in_batch` is the number of labelled items (examples for single-label, label cells for
        multi-label), and the number of examples normalises the distillation term.
        """
        batch_samples, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        labeled, examples = 0, 0
        for batch in batch_samples:
            labels = batch.get("labels")
            if labels is not None:
                labeled += int(labels.ne(IGNORE_INDEX).sum())
            examples += len(batch["input_ids"]) if "input_ids" in batch else len(next(iter(batch.values())))
        counts = torch.tensor([labeled, examples], dtype=torch.float32, device=device)
        if self.args.world_size > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
        self._num_examples_in_batch = counts[1]
        return batch_samples, counts[0]

    # ------------------------------------------------------------------ loss

    def _problem_type(self, model: nn.Module, labels: torch.Tensor | None) -> str:
        return problem_type_of_config(self.accelerator.unwrap_model(model).config, labels)

    def _distill_per_example(self, student: torch.Tensor, teacher: torch.Tensor, problem_type: str) -> torch.Tensor:
        args = self.args
        return distillation_loss(
            student,
            teacher,
            problem_type,
            args.temperature,
            args.single_label_distillation_loss,
            args.multi_label_distillation_loss,
        )

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
                Labelled items in the whole accumulated batch (from `get_batch_samples`). When given, the hard term
                is normalised by it and the distillation term by the number of examples, so that gradient
                accumulation and multi-process training give the gradient of one large batch.

        Returns:
            The loss, and the student's outputs when `return_outputs` is `True`.
        """
        extra = {k: inputs[k] for k in DISTILLATION_COLUMNS if k in inputs}
        student_inputs = {k: v for k, v in inputs.items() if k not in extra}
        if not model.training:
            return super().compute_loss(model, student_inputs, return_outputs, num_items_in_batch)

        args = self.args
        labels = student_inputs.pop("labels", None)
        problem_type = self._problem_type(model, labels)
        if labels is not None:
            labels = validate_labels(labels, problem_type)
        need_states = args.uses_intermediate_losses
        if need_states:
            student_inputs["output_hidden_states"] = args.hidden_loss_weight > 0
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
            if "teacher_logits" in extra and not need_states:
                teacher_logits = extra["teacher_logits"].to(logits.device).float()
            else:
                teacher_outputs = self._teacher_forward(inputs, need_states)
                teacher_logits = self._teacher_logits(teacher_outputs)
            if teacher_logits.shape != logits.shape and teacher_logits.numel() != logits.numel():
                raise ValueError(
                    f"Teacher logits of shape {tuple(teacher_logits.shape)} do not match the student's "
                    f"{tuple(logits.shape)}."
                )
            kd_per_example = self._distill_per_example(logits, teacher_logits.reshape(logits.shape), problem_type)

        if num_items_in_batch is not None and self._num_examples_in_batch is not None:
            hard = hard_sum / torch.as_tensor(num_items_in_batch, device=logits.device).clamp(min=1)
            kd = (
                kd_per_example.sum() / self._num_examples_in_batch.to(logits.device).clamp(min=1)
                if kd_per_example is not None
                else zero
            )
            scale = self.args.world_size if self.args.world_size > 1 else 1
        else:
            hard = hard_sum / hard_count.clamp(min=1)
            kd = kd_per_example.mean() if kd_per_example is not None else zero
            scale = 1
        loss = args.alpha * hard + (1 - args.alpha) * kd

        # Parts for logging, as per-batch means.
        self._loss_parts["hard_loss"].append(float(hard_sum.detach() / hard_count.clamp(min=1)))
        if kd_per_example is not None:
            self._loss_parts["distill_loss"].append(float(kd_per_example.detach().mean()))
        if need_states and self.intermediate is not None:
            terms = self.intermediate(outputs, teacher_outputs, inputs)
            for name, value in terms.items():
                self._loss_parts[name].append(float(value.detach()))
                # Intermediate terms are per-batch means; weight them by this batch's share of the examples.
                loss = loss + value * self._batch_share(logits.shape[0])
        loss = loss * scale
        return (loss, outputs) if return_outputs else loss

    def _batch_share(self, batch_size: int) -> float:
        if self._num_examples_in_batch is None:
            return 1.0
        return batch_size / max(float(self._num_examples_in_batch), 1.0)

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

    # ------------------------------------------------------------------ optimizer

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """Trainer's optimizer, with the student's new head at `head_learning_rate` and the projections added."""
        created = self.optimizer is None
        optimizer = super().create_optimizer(model)
        if not created:
            return optimizer
        opt_model = self.model if model is None else model
        head_lr = self.args.head_learning_rate
        if head_lr is not None:
            set_head_learning_rate(optimizer, opt_model, head_lr)
        if self.intermediate is not None:
            params = [p for p in self.intermediate.parameters() if p.requires_grad]
            if params:
                lr = head_lr if head_lr is not None else self.args.learning_rate
                optimizer.add_param_group({"params": params, "lr": lr, "weight_decay": 0.0})
        return optimizer

    # ------------------------------------------------------------------ training

    def train(
        self,
        resume_from_checkpoint: str | bool | None = None,
        trial: Any = None,
        ignore_keys_for_eval: list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """`Trainer.train`, after caching the teacher's logits (when asked) and building the layer projections."""
        if self.args.precompute_teacher_logits and self.train_dataset is not None:
            if self.teacher_model is None:
                raise ValueError("`precompute_teacher_logits=True` needs a `teacher_model`.")
            if "teacher_logits" not in getattr(self.train_dataset, "column_names", []):
                from .teacher_cache import cache_teacher_logits

                self.train_dataset = cache_teacher_logits(
                    self.teacher_model,
                    self.train_dataset,
                    batch_size=self.args.teacher_batch_size or self.args.per_device_eval_batch_size,
                    label_order=self._teacher_label_order,
                    cache_dir=os.path.join(self.args.output_dir, "teacher_cache"),
                    accelerator=self.accelerator,
                )
        if self.args.uses_intermediate_losses:
            self._build_intermediate()
        return super().train(
            resume_from_checkpoint=resume_from_checkpoint,
            trial=trial,
            ignore_keys_for_eval=ignore_keys_for_eval,
            **kwargs,
        )

    def _build_intermediate(self) -> None:
        teacher_cfg = extract_model_from_parallel(self.teacher_model).config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.args.seed)
            self.intermediate = IntermediateDistiller(
                self.model.config,
                teacher_cfg,
                layer_mapping=self.args.layer_mapping,
                hidden_loss=self.args.hidden_loss,
                hidden_loss_weight=self.args.hidden_loss_weight,
                attention_loss_weight=self.args.attention_loss_weight,
                hidden_alignment=self.args.hidden_alignment,
            ).to(self.args.device)

    def call_model_init(self, trial: Any = None) -> nn.Module:
        """`Trainer.call_model_init`, checking each new student's label space against the teacher."""
        model = super().call_model_init(trial)
        if getattr(self, "teacher_model", None) is not None:
            self._check_label_spaces(model, self.teacher_model)
        return model

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if self.intermediate is not None and self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            state = {k: v.detach().contiguous().cpu() for k, v in self.intermediate.state_dict().items()}
            save_file(state, os.path.join(folder, PROJECTIONS_FILE))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, PROJECTIONS_FILE)
        if self.intermediate is not None and os.path.isfile(path):
            self.intermediate.load_state_dict(load_file(path, device=str(self.args.device)))

    # ------------------------------------------------------------------ evaluation

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """`Trainer.prediction_step` on the student alone; the teacher runs only for `teacher_eval_metrics`."""
        extra = {k: inputs[k] for k in DISTILLATION_COLUMNS if k in inputs}
        student_inputs = {k: v for k, v in inputs.items() if k not in extra}
        loss, logits, labels = super().prediction_step(model, student_inputs, prediction_loss_only, ignore_keys)
        if self.args.teacher_eval_metrics and (self.teacher_model is not None or "teacher_logits" in extra):
            self._accumulate_teacher_eval(model, inputs, extra, logits)
        return loss, logits, labels

    def _accumulate_teacher_eval(
        self, model: nn.Module, inputs: dict[str, Any], extra: dict[str, Any], logits: Any
    ) -> None:
        inputs = self._prepare_inputs(inputs)
        if "teacher_logits" in extra:
            teacher = inputs["teacher_logits"].float()
        else:
            teacher = self._teacher_logits(self._teacher_forward(inputs, need_states=False))
        if logits is None:
            with torch.no_grad():
                student_inputs = {k: v for k, v in inputs.items() if k not in DISTILLATION_COLUMNS and k != "labels"}
                logits = model(**student_inputs).logits
        student = (logits[0] if isinstance(logits, tuple) else logits).float()
        problem_type = self._problem_type(model, inputs.get("labels"))
        teacher = teacher.reshape(student.shape)
        if problem_type == "single_label_classification":
            agree = (student.argmax(-1) == teacher.argmax(-1)).float().sum()
            items = student.shape[0]
        else:
            agree = ((student > 0) == (teacher > 0)).float().sum()
            items = student.numel()
        kd = self._distill_per_example(student, teacher, problem_type).sum()
        self._teacher_eval["agree"] += float(agree)
        self._teacher_eval["items"] += items
        self._teacher_eval["kd"] += float(kd)
        self._teacher_eval["examples"] += student.shape[0]

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """`Trainer.evaluate`, plus `teacher_agreement` and `distill_loss` when `teacher_eval_metrics` is on."""
        self._teacher_eval.clear()
        metrics = super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        if self._teacher_eval:
            totals = torch.tensor(
                [self._teacher_eval[k] for k in ("agree", "items", "kd", "examples")], device=self.args.device
            )
            if self.args.world_size > 1:
                totals = self.accelerator.reduce(totals, reduction="sum")
            extra = {
                f"{metric_key_prefix}_teacher_agreement": float(totals[0] / totals[1].clamp(min=1)),
                f"{metric_key_prefix}_distill_loss": float(totals[2] / totals[3].clamp(min=1)),
            }
            metrics.update(extra)
            self.log(extra)
        return metrics

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """`Trainer.create_model_card` with the `hf-kd` and `knowledge-distillation` tags."""
        tags = kwargs.get("tags") or []
        tags = [tags] if isinstance(tags, str) else list(tags)
        kwargs["tags"] = tags + [t for t in self._tag_names if t not in tags]
        return super().create_model_card(*args, **kwargs)

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
        go to [`hf_kd.search.run_pso`], which documents them: `hp_space` is a dict field -> `(low, high)`,
        `(low, high, "log")` or `(low, high, "int")` over `DistillationTrainingArguments` fields. Any other backend
        (`"optuna"`, `"ray"`, `"wandb"`, or the installed one) is `Trainer.hyperparameter_search`, unchanged.

        Args:
            hp_space (`dict` or `Callable`, *optional*):
                The search space.
            compute_objective (`Callable[[dict[str, float]], float]`, *optional*):
                Objective from the evaluation metrics (transformers' `default_compute_objective` by default).
            n_trials (`int`, *optional*, defaults to 20):
                Number of trials.
            direction (`str` or `list[str]`, *optional*, defaults to `"minimize"`):
                `"minimize"` or `"maximize"`.
            backend (`str` or `HPSearchBackend`, *optional*):
                `"pso"` or a transformers backend.
            hp_name (`Callable`, *optional*):
                Names a trial's run.
            kwargs (`dict[str, Any]`, *optional*):
                Backend options.

        Returns:
            [`~trainer_utils.BestRun`] (or a list of them for multi-objective searches with other backends).
        """
        if isinstance(backend, str) and backend.lower() == "pso":
            from .search.pso import run_pso

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
