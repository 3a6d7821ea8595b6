"""The state a pipeline run's stages share ([`PipelineRun`]): the recipe, its splits tokenized for both models, the
tokenizers, the folders and markers, the building blocks the stages call (training arguments, the fit, evaluation,
the teacher as the distillation reads it), and the stages' outputs.

The stages themselves are declared in `hf_kd.pipeline.stages`; `hf_kd.pipeline.run.run_pipeline` runs them in order.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset

from ..constants import TEACHER_LOGITS_COLUMN, has_threshold, problem_type_of_task
from ..data.coverage import column_texts
from ..data.leakage import leakage_message
from ..data.mapped import ReleaseMappedPagesCallback
from ..data.tokenizer_identity import same_tokenization
from ..evaluation.metrics import make_compute_metrics
from ..evaluation.tasks import user_metric
from ..processes import barrier, is_main_process, start_state
from ..recipe.config import DistillationPipelineConfig
from ..training.distillation_trainer import DistillationTrainer
from ..training.vocabulary import prune_embeddings, prune_tokenizer, pruned_token_ids
from .builders import load_classifier, load_tokenizer, save_trained, stage_training_args, train_resuming
from .markers import changed_stages, read_marker, write_marker, write_started
from .preflight import check_language, check_model_path, check_run
from .scoring import evaluate_splits
from .splits import model_columns, recipe_splits, tokenize_splits
from .stage import Stage, declared_fingerprints

logger = logging.getLogger(__name__)

__all__ = ["PipelineRun"]


class PipelineRun:
    """
    The state the stages share: the recipe, the data tokenized for both models, the tokenizers and the folders.

    Building it loads and checks everything a stage needs (`hf_kd.pipeline.preflight`), so that a bad recipe fails
    before any training.

    The stages read what they need from it and set their outputs on it (each stage's `outputs`, in
    `hf_kd.pipeline.stages`): `general_model`, `teacher_path`, `teacher_metrics`, `logits`, `warm_model`,
    `student_dir` and `student_info`, `result`.

    Args:
        config ([`~hf_kd.recipe.config.DistillationPipelineConfig`]):
            The recipe.
        stages (`Sequence[hf_kd.pipeline.stage.Stage]`):
            The declared stages, in order (`hf_kd.pipeline.stages.PIPELINE`): their fingerprints are computed from
            the recipe, and their banners numbered.
    """

    def __init__(self, config: DistillationPipelineConfig, stages: Sequence[Stage]) -> None:
        self.config = config
        start_state(cpu=config.use_cpu)
        self.root = Path(config.output_dir)
        data_config = config.data
        check_model_path(str(config.teacher.model), "teacher.model")
        if config.student.model is not None:
            check_model_path(config.student.model, "student.model")
        splits = recipe_splits(config, cache_dir=str(self.root / "cache"))
        self.label_names, self.task, train = splits.label_names, splits.task, splits.train
        self.splits = splits  # the labelled, evaluated, predicted and transfer rows (`RecipeSplits`)
        self.user_metric = user_metric(config.evaluation.evaluate_metrics)
        self.problem_type = problem_type_of_task(self.task)
        self.validation_split = data_config.validation_split
        groups = train["group"] if "group" in train.column_names else None
        self.grouped = groups is not None and len(set(groups)) < len(groups)

        self.teacher_name = str(config.teacher.model)
        self.teacher_tokenizer = load_tokenizer(config.teacher.tokenizer or self.teacher_name)
        if config.student.model is not None:
            self.student_tokenizer = load_tokenizer(config.student.tokenizer or config.student.model)
        else:
            self.student_tokenizer = self.teacher_tokenizer
        # Before any training (and any pruning): can the tokenizers read the text? (`data.max_unknown_rate`)
        self.unknown_rates = check_language(config, splits, self.teacher_tokenizer, self.student_tokenizer)
        self.kept_token_ids: list[int] | None = None
        # The tokenizer the teacher reads while the student is distilled (cached logits, online teacher): with a
        # pruned vocabulary it shares, the pruned one (the teacher then reads its embedding rows of the kept tokens).
        self.distill_teacher_tokenizer = self.teacher_tokenizer
        if config.student.prune_vocabulary:
            texts = column_texts([train, splits.transfer], data_config.text_column)  # read in batches
            self.kept_token_ids = pruned_token_ids(self.student_tokenizer, texts, extra_texts=self.label_names)
            pruned = prune_tokenizer(self.student_tokenizer, self.kept_token_ids)
            same_text = data_config.teacher_text_column in (None, data_config.text_column)
            if same_text and same_tokenization(self.student_tokenizer, self.teacher_tokenizer):
                self.distill_teacher_tokenizer = pruned
            self.student_tokenizer = pruned
        check_run(
            config,
            splits,
            self.teacher_tokenizer,
            self.student_tokenizer,
            self.distill_teacher_tokenizer,
            grouped=self.grouped,
        )
        if is_main_process():
            print(f"[hf-kd] {leakage_message(splits.leakage)}", file=sys.stderr, flush=True)
        sides = tokenize_splits(
            splits, data_config, self.teacher_tokenizer, self.student_tokenizer, self.distill_teacher_tokenizer
        )
        self.teacher_train: Dataset = sides.teacher_train
        self.teacher_evals: dict[str, Dataset] = sides.teacher_evals
        self.student_train: Dataset = sides.student_train
        self.student_evals: dict[str, Dataset] = sides.student_evals
        self.student_predict: dict[str, Dataset] = sides.student_predict
        self.n_train = len(train)
        self.stage_names = tuple(stage.name for stage in stages if stage.in_recipe(config))
        self.fingerprints = declared_fingerprints(stages, config)
        self.stages: dict[str, str] = {}  # what each stage did: "ran", "skipped (...)", "disabled"
        # The stages' outputs.
        self.general_model: str | None = None  # the general distillation's student, when the recipe has one
        self.teacher_path: str = self.teacher_name
        self.teacher_metrics: dict[str, dict[str, float]] = {}
        self.logits: Dataset | None = None  # the training rows with the teacher's logits (and the transfer set)
        self.warm_model: str | None = None
        self.student_dir: str | None = None
        self.student_info: dict[str, Any] = {}
        self.result: dict[str, Any] = {}

    # ------------------------------------------------------------------ folders, markers, fingerprints

    def stage_dir(self, stage: str) -> Path:
        """The folder of a stage."""
        return self.root / stage

    def invalidate_changed_stages(self) -> None:
        """Remove every stage made from other inputs than this recipe's, and the stages after it."""
        for name, reasons in changed_stages(self.root, self.stage_names, self.fingerprints):
            self.banner(name, f"inputs changed since the folder's last run ({', '.join(reasons)}): recomputing")
            if is_main_process():
                shutil.rmtree(self.stage_dir(name), ignore_errors=True)
        barrier()

    def done(self, stage: str) -> dict[str, Any] | None:
        """The marker of a finished stage, or `None`."""
        return read_marker(self.stage_dir(stage))

    def mark_done(self, stage: str, info: Mapping[str, Any]) -> None:
        """Write the stage's marker (main process) with its fingerprint; remove its checkpoints."""
        if is_main_process():
            folder = self.stage_dir(stage)
            write_marker(folder, {**info, **self.fingerprints[stage]})
            shutil.rmtree(folder / "checkpoints", ignore_errors=True)  # the stage's model is saved
        barrier()

    def banner(self, stage: str, what: str) -> None:
        if is_main_process():  # the stages of this recipe, numbered
            shown = self.stage_names
            print(f"[hf-kd] stage {shown.index(stage) + 1}/{len(shown)} {stage}: {what}", file=sys.stderr, flush=True)

    def skip(self, stage: str, why: str) -> None:
        self.stages[stage] = f"skipped ({why})"
        self.banner(stage, self.stages[stage])

    # ------------------------------------------------------------------ building blocks

    def training_arguments(self, stage: str, output_dir: Path) -> Any:
        """The `DistillationTrainingArguments` of a training stage (`teacher`, `student_warmup` or `student`)."""
        return stage_training_args(self.config, stage, output_dir)

    def compute_metrics(self) -> Any:
        """
        The trainers' `compute_metrics` (and the search objective): the report's numbers for the evaluated split, a
        multi-label or binary task's at the threshold the recipe's rule gives on that split's predictions.
        """
        chosen = {"threshold": self.config.evaluation.threshold} if has_threshold(self.task) else {}
        names, metric = self.label_names, self.user_metric
        return make_compute_metrics(self.task, label_names=names, evaluate_metric=metric, **chosen)

    def evaluate(self, model: Any, tokenizer: Any, splits: dict[str, Any], folder: Path) -> Any:
        """Metrics (and probabilities) of `model` on each of `splits`, at the threshold chosen on validation."""
        return evaluate_splits(
            model,
            tokenizer,
            splits,
            self.validation_split,
            self.task,
            self.label_names,
            self.config.evaluation.threshold,
            folder / "tmp",
            self.config.evaluation.batch_size,
            evaluate_metric=self.user_metric,
        )

    def load_teacher(self) -> Any:
        """The fine-tuned teacher (or the given one, when stage 1 was skipped)."""
        return load_classifier(self.teacher_path, self.label_names, self.problem_type)

    def distillation_teacher(self, teacher: Any = None) -> Any:
        """`teacher` (default: the fine-tuned one) as the distillation reads it: on a shared pruned vocabulary, with
        the kept tokens' rows only (pruned in place)."""
        teacher = self.load_teacher() if teacher is None else teacher
        shared = self.distill_teacher_tokenizer is not self.teacher_tokenizer
        return prune_embeddings(teacher, self.kept_token_ids) if shared else teacher

    def fit(self, stage: str, trainer: Any) -> tuple[str, str | None, float]:
        """Train (resuming), save the model; return its folder, the adapter's folder and the seconds taken."""
        if is_main_process():  # an interrupted stage resumes only from checkpoints made from the same inputs
            write_started(self.stage_dir(stage), self.fingerprints[stage])
        barrier()
        # a memory-mapped training set (the cached logits of a large transfer set) stays out of the resident memory
        trainer.add_callback(ReleaseMappedPagesCallback([trainer.train_dataset]))
        started = time.perf_counter()
        train_resuming(trainer)
        model_dir = self.stage_dir(stage) / "model"
        adapter_dir = save_trained(trainer, model_dir)
        return str(model_dir), adapter_dir, time.perf_counter() - started

    def distillation_trainer(self, output_dir: Path, train: Any, model: Any = None, model_init: Any = None) -> Any:
        """The student's `DistillationTrainer` (stage 5 and every search trial): the online teacher only when
        `student.needs_online_teacher`, otherwise the cached `teacher_logits` column alone."""

        online = self.config.student.needs_online_teacher
        if online and TEACHER_LOGITS_COLUMN in train.column_names:
            train = train.remove_columns(TEACHER_LOGITS_COLUMN)  # every logit comes from the teacher's forward pass
        return DistillationTrainer(
            model=model,
            model_init=model_init,
            teacher_model=self.distillation_teacher() if online else None,
            args=self.training_arguments("student", output_dir),
            train_dataset=model_columns(train, teacher_side=online),
            eval_dataset=model_columns(self.student_evals[self.validation_split], teacher_side=False),
            processing_class=self.student_tokenizer,
            teacher_processing_class=self.distill_teacher_tokenizer if online else None,
            compute_metrics=self.compute_metrics(),
        )

    def start(self) -> None:
        """Before the first stage: remove the stages whose inputs changed, write `recipe.yaml`."""
        self.invalidate_changed_stages()
        if is_main_process():
            self.root.mkdir(parents=True, exist_ok=True)
            self.config.to_yaml(self.root / "recipe.yaml")
        barrier()

    def finish(self) -> None:
        """After a successful run: remove the `datasets` cache files (text copies) unless `data.keep_cache`."""
        if is_main_process() and not self.config.data.keep_cache:
            shutil.rmtree(self.root / "cache", ignore_errors=True)
        barrier()
