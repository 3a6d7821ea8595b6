"""A resumable, recipe-driven distillation pipeline: teacher fine-tuning → gate → cached logits → student → report.

[`run_pipeline`] runs a [`~hf_kd.recipe.config.DistillationPipelineConfig`] in up to seven stages, each writing under
`output_dir/<stage>/` and leaving a `DONE.json` marker with the fingerprint of its inputs (`hf_kd.pipeline.markers`):

0. `general_distillation` (optional): the student distilled from the pretrained teacher on text (`stage_models`).
1. `teacher`: fine-tune the teacher on the hard labels (`DistillationTrainer` with `alpha=1`), unless the given
   teacher is already fine-tuned on this label space (its `config.id2label` equals the dataset's label names).
2. `teacher_eval`: evaluate the teacher on the labelled validation (and test) split; with
   `evaluation.min_teacher_metric`, stop with a `QualityGateError` when the teacher is below the gate.
3. `teacher_logits`: run the teacher once over the training rows and the transfer set (unlabeled rows,
   `hf_kd.pipeline.splits.transfer_set`) with `cache_teacher_logits`, shared between processes; saved with
   `save_to_disk`.
4. `student_warmup` (optional, `student.warmup_epochs > 0`): train the student on the labelled rows only.
5. `student`: distil (`DistillationTrainer` on the cached logits, the transfer set with the distillation term only;
   the online teacher only when hidden-state or attention terms or `student.online_teacher` ask for it).
6. `evaluation`: evaluate the student like the teacher (`hf_kd.pipeline.evaluation`), predict an unlabeled test split,
   save the operating threshold in `config.json`, write the report, figures and card (`hf_kd.pipeline.run_report`),
   and push the student to the Hub when the student section names a `hub_model_id` (or sets `push_to_hub`).

Before the first stage, the whole recipe is checked (`hf_kd.pipeline.preflight`), the folder is locked against a
second run, and every stage whose inputs changed since its marker was written is removed, with those made from it, so
that a rerun recomputes exactly what a changed field affects and skips the rest. Training stages save a checkpoint
every 200 steps (the last one kept) and resume from it when the stage was interrupted. Each stage prints a one-line
banner, and its training shows Trainer's progress bar. The `datasets` cache files (copies of the text) are kept in
`output_dir/cache/` and removed when the run succeeds, unless `data.keep_cache`. Logs, reports and errors never
contain example text. Under `accelerate launch` every process runs the stages, and only the main process writes
markers, reports and cards and prints.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..constants import BINARY, MULTI_LABEL, TEACHER_LOGITS_COLUMN, THRESHOLD_KEY, problem_type_of_task
from ..data.coverage import column_texts
from ..data.leakage import leakage_message
from ..data.mapped import ReleaseMappedPagesCallback, release_pages_of
from ..evaluation.task_metrics import default_metric, trainer_compute_metrics, user_metric
from ..recipe.config import DistillationPipelineConfig
from ..training.distributed import barrier, is_main_process, start_state, state
from .builders import (
    is_finetuned_on,
    load_classifier,
    load_tokenizer,
    save_trained,
    train_resuming,
    training_args,
    with_lora,
)
from .evaluation import QualityGateError, apply_gate, evaluate_splits
from .markers import (
    DISTILLATION_ONLY,
    DONE_FILE,
    RunLock,
    changed_stages,
    read_marker,
    stage_fingerprints,
    write_marker,
    write_started,
)
from .splits import model_columns, recipe_splits, tokenize_splits
from .stage_models import run_general_distillation

logger = logging.getLogger(__name__)

__all__ = ["DONE_FILE", "STAGES", "PipelineRun", "QualityGateError", "run_pipeline"]

STAGES = (
    "general_distillation", "teacher", "teacher_eval", "teacher_logits", "student_warmup", "student", "evaluation",
)  # fmt: skip
"""The pipeline's stages, in order; each writes under `output_dir/<stage>/`."""


class PipelineRun:
    """
    The state the stages share: the recipe, the data tokenized for both models, the tokenizers and the folders.

    Building it loads and checks everything a stage needs (`hf_kd.pipeline.preflight`), so that a bad recipe fails
    before any training.

    Args:
        config ([`~hf_kd.recipe.config.DistillationPipelineConfig`]):
            The recipe.
    """

    def __init__(self, config: DistillationPipelineConfig) -> None:
        from .preflight import check_language, check_model_path, check_run

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
            from ..data.alignment import same_tokenization
            from ..training.vocabulary import prune_tokenizer, pruned_token_ids

            texts = column_texts([train, splits.transfer], data_config.text_column)  # read in batches
            self.kept_token_ids = pruned_token_ids(self.student_tokenizer, texts, extra_texts=self.label_names)
            pruned = prune_tokenizer(self.student_tokenizer, self.kept_token_ids)
            same_text = data_config.teacher_text_column in (None, data_config.text_column)
            if same_text and same_tokenization(self.student_tokenizer, self.teacher_tokenizer):
                self.distill_teacher_tokenizer = pruned
            self.student_tokenizer = pruned
        check_run(self)
        if is_main_process():
            print(f"[hf-kd] {leakage_message(splits.leakage)}", file=sys.stderr, flush=True)
        sides = tokenize_splits(
            splits, data_config, self.teacher_tokenizer, self.student_tokenizer, self.distill_teacher_tokenizer
        )
        for name, dataset in sides.items():  # teacher_train, teacher_evals, student_train, student_evals, ...
            setattr(self, name, dataset)
        self.n_train = len(train)
        self.teacher_path: str = self.teacher_name
        self.general_model: str | None = None  # the general distillation's student, when the recipe has one
        self.stages: dict[str, str] = {}
        self.fingerprints = stage_fingerprints(config)

    # ------------------------------------------------------------------ folders, markers, fingerprints

    def stage_dir(self, stage: str) -> Path:
        """The folder of a stage."""
        return self.root / stage

    def invalidate_changed_stages(self) -> None:
        """Remove every stage made from other inputs than this recipe's, and the stages after it."""
        for name, reasons in changed_stages(self.root, STAGES, self.fingerprints):
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
            shown = STAGES if self.config.student.general_distillation is not None else STAGES[1:]
            print(f"[hf-kd] stage {shown.index(stage) + 1}/{len(shown)} {stage}: {what}", file=sys.stderr, flush=True)

    def skip(self, stage: str, why: str) -> None:
        self.stages[stage] = f"skipped ({why})"
        self.banner(stage, self.stages[stage])

    # ------------------------------------------------------------------ building blocks

    def training_arguments(self, stage: str, output_dir: Path) -> Any:
        """The `DistillationTrainingArguments` of a training stage (`teacher`, `student_warmup` or `student`)."""
        if stage == "teacher":
            return training_args(output_dir, self.config, self.config.teacher.training, alpha=1.0)
        if stage == "student_warmup":
            warmup = {k: v for k, v in self.config.student.training.items() if k not in DISTILLATION_ONLY}
            return training_args(
                output_dir, self.config, warmup, alpha=1.0, num_train_epochs=self.config.student.warmup_epochs
            )
        return training_args(output_dir, self.config, self.config.student.training)

    def compute_metrics(self) -> Any:
        """The trainers' `compute_metrics` (the report's numbers, see `hf_kd.pipeline.evaluation`)."""
        return trainer_compute_metrics(self.task, self.label_names, self.config.evaluation.threshold, self.user_metric)

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
        from ..training.vocabulary import prune_embeddings

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

    # ------------------------------------------------------------------ stages

    def run_teacher(self) -> None:
        """Stage 1: fine-tune the teacher (unless it is already fine-tuned on this label space)."""
        from ..training.distillation_trainer import DistillationTrainer

        done = self.done("teacher")
        if done is not None:
            self.teacher_path = done["model"]
            return self.skip("teacher", "done")
        if is_finetuned_on(self.teacher_name, self.label_names):
            logger.info("Teacher is already fine-tuned on this label space; skipping its fine-tuning.")
            self.teacher_path = self.teacher_name
            self.mark_done(
                "teacher", {"model": self.teacher_name, "fine_tuned": False, "reason": "already fine-tuned"}
            )
            return self.skip("teacher", "teacher already fine-tuned")
        self.banner("teacher", "fine-tuning the teacher on the hard labels")
        model = load_classifier(self.teacher_name, self.label_names, self.problem_type, seed=self.config.seed)
        lora = self.config.teacher.lora
        trainer = DistillationTrainer(
            model=with_lora(model, lora, "teacher", self.config.seed),
            args=self.training_arguments("teacher", self.stage_dir("teacher") / "checkpoints"),
            train_dataset=self.teacher_train,
            eval_dataset=model_columns(self.teacher_evals[self.validation_split]),
            processing_class=self.teacher_tokenizer,
            compute_metrics=self.compute_metrics(),
        )
        self.teacher_path, adapter_dir, seconds = self.fit("teacher", trainer)
        info = {"model": self.teacher_path, "fine_tuned": True, "train_seconds": seconds}
        if lora is not None:
            info.update({"lora": lora, "adapter": adapter_dir})
        self.mark_done("teacher", info)
        self.stages["teacher"] = "ran"

    def run_teacher_eval(self) -> dict[str, dict[str, float]]:
        """Stage 2: evaluate the teacher and apply the quality gate."""
        done = self.done("teacher_eval")
        if done is not None:
            metrics = done["metrics"]
            self.skip("teacher_eval", "done")
        else:
            from .run_report import save_predictions

            self.banner("teacher_eval", "evaluating the teacher")
            folder = self.stage_dir("teacher_eval")
            metrics, outputs = self.evaluate(self.load_teacher(), self.teacher_tokenizer, self.teacher_evals, folder)
            save_predictions(folder, outputs)
            self.mark_done("teacher_eval", {"metrics": metrics})
            self.stages["teacher_eval"] = "ran"
        gate = self.config.evaluation.min_teacher_metric
        if gate is not None:
            name = self.config.evaluation.gate_metric or default_metric(self.task, self.grouped)
            apply_gate(metrics[self.validation_split].get(name), gate, name, self.validation_split)
        return metrics

    def run_teacher_logits(self) -> Any:
        """Stage 3: cache the teacher's logits over the training set."""
        import datasets

        from ..training.teacher_cache import cache_teacher_logits

        folder = self.stage_dir("teacher_logits")
        data_dir = folder / "dataset"
        if self.done("teacher_logits") is not None:
            try:
                kept = datasets.load_from_disk(str(data_dir))
                kept[len(kept) - 1 :]  # noqa: B018 - reads the last Arrow chunk: a truncated file fails here
                release_pages_of([kept])  # what loading mapped in
                self.skip("teacher_logits", "done")
                return kept
            except (OSError, ValueError) as error:  # damaged or missing Arrow files: computed again, and said so
                logger.warning(
                    "The cached teacher logits in %s cannot be read (%s): computing them again.",
                    data_dir,
                    type(error).__name__,
                )
                barrier()
                if is_main_process():
                    (folder / DONE_FILE).unlink(missing_ok=True)
                    shutil.rmtree(data_dir, ignore_errors=True)
                barrier()
        transfer = (
            f" and {len(self.splits.transfer)} unlabeled rows of the transfer set" if self.splits.transfer else ""
        )
        self.banner("teacher_logits", f"caching the teacher's logits over {self.n_train} training rows{transfer}")
        teacher = self.distillation_teacher()
        started = time.perf_counter()  # the pass itself: the store's scan, the teacher's batches, the writes
        cached = cache_teacher_logits(
            teacher,
            self.student_train,
            batch_size=self.config.evaluation.batch_size,
            cache_dir=str(folder / "cache"),
            accelerator=state(),
            teacher_tokenizer=self.distill_teacher_tokenizer,
            logits_dtype=self.config.student.teacher_logits_dtype,
        )
        barrier()
        if is_main_process():  # the store itself becomes the stage's dataset: moved, not copied
            shutil.rmtree(data_dir, ignore_errors=True)
            os.replace(Path(cached.cache_files[0]["filename"]).parent, data_dir)
            shutil.rmtree(folder / "cache", ignore_errors=True)
        barrier()
        self.mark_done(
            "teacher_logits",
            {"dataset": str(data_dir), "num_rows": len(cached), "seconds": time.perf_counter() - started},
        )
        self.stages["teacher_logits"] = "ran"
        store = datasets.load_from_disk(str(data_dir))
        release_pages_of([store])  # what loading mapped in
        return store

    def new_student(self, warm_model: str | None = None) -> Any:
        """A fresh student (`hf_kd.pipeline.stage_models.build_student`), with LoRA when `student.lora` is set."""
        from .stage_models import build_student

        return with_lora(build_student(self, warm_model), self.config.student.lora, "student", self.config.seed)

    def run_student_warmup(self, train: Any) -> str | None:
        """Stage 4 (optional): train the student on the hard labels only."""
        from ..training.distillation_trainer import DistillationTrainer

        epochs = self.config.student.warmup_epochs
        if not epochs:
            self.stages["student_warmup"] = "disabled"
            return None
        done = self.done("student_warmup")
        if done is not None:
            self.skip("student_warmup", "done")
            return done["model"]
        self.banner("student_warmup", f"{epochs:g} epoch(s) of hard-label training of the student")
        trainer = DistillationTrainer(
            model=self.new_student(),
            args=self.training_arguments("student_warmup", self.stage_dir("student_warmup") / "checkpoints"),
            # the labelled rows only: the transfer set (after them) has no hard label to learn
            train_dataset=model_columns(
                train.select(range(self.n_train)).remove_columns([TEACHER_LOGITS_COLUMN]), teacher_side=False
            ),
            processing_class=self.student_tokenizer,
            compute_metrics=self.compute_metrics(),
        )
        model_dir, adapter_dir, _ = self.fit("student_warmup", trainer)
        self.mark_done("student_warmup", {"model": model_dir, **({"adapter": adapter_dir} if adapter_dir else {})})
        self.stages["student_warmup"] = "ran"
        return model_dir

    def distillation_trainer(self, output_dir: Path, train: Any, model: Any = None, model_init: Any = None) -> Any:
        """The student's `DistillationTrainer` (stage 5 and every search trial): the online teacher only when
        `student.needs_online_teacher`, otherwise the cached `teacher_logits` column alone."""
        from ..training.distillation_trainer import DistillationTrainer

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

    def run_student(self, train: Any, warm_model: str | None) -> tuple[str, dict[str, Any]]:
        """Stage 5: distil the student."""
        done = self.done("student")
        if done is not None:
            self.skip("student", "done")
            return done["model"], done
        online = self.config.student.needs_online_teacher
        self.banner("student", f"distilling the student from {'the online teacher' if online else 'cached logits'}")
        trainer = self.distillation_trainer(
            self.stage_dir("student") / "checkpoints", train, self.new_student(warm_model)
        )
        model_dir, adapter_dir, seconds = self.fit("student", trainer)
        info = {
            "model": model_dir,
            "online_teacher": online,
            "train_seconds": seconds,
            "args": dict(self.config.student.training),
        }
        if adapter_dir is not None:
            info.update({"lora": self.config.student.lora, "adapter": adapter_dir})
        self.mark_done("student", info)
        self.stages["student"] = "ran"
        return model_dir, info

    def run_evaluation(self, student_dir: str, teacher_metrics: dict[str, dict[str, float]]) -> dict[str, Any]:
        """Stage 6: evaluate the student; write its threshold, the report, figures and card; push it when asked."""
        from .run_report import push_student, save_predictions, write_run_report

        done = self.done("evaluation")
        if done is not None:
            self.skip("evaluation", "done")
            return done
        self.banner("evaluation", "evaluating the student and writing the report")
        folder = self.stage_dir("evaluation")
        student = load_classifier(student_dir, self.label_names, self.problem_type)
        student_metrics, outputs = self.evaluate(student, self.student_tokenizer, self.student_evals, folder)
        save_predictions(folder, outputs)
        result: dict[str, Any] = {"teacher": teacher_metrics, "student": student_metrics}
        threshold = None
        if self.task in (MULTI_LABEL, BINARY):  # the operating point travels with the model
            threshold = student_metrics[self.validation_split]["threshold"]
        if self.student_predict:
            from .run_report import predict_unlabeled

            result["predicted"] = predict_unlabeled(self, student, folder, threshold)
        if is_main_process():
            if threshold is not None:
                student.config.update({THRESHOLD_KEY: threshold})
                student.config.save_pretrained(student_dir)
            if self.config.data.max_length:  # `hf-kd export` and `hf-kd predict` truncate where training did
                self.student_tokenizer.model_max_length = int(self.config.data.max_length)
                self.student_tokenizer.save_pretrained(student_dir)
            from .stage_models import export_student  # onnx is imported only when exporting

            exported = export_student(self, student_dir, folder, threshold) if self.config.evaluation.export else None
            if exported is not None:
                result["exported"] = exported["metrics"]
            result["report"] = write_run_report(
                self, student, student_dir, teacher_metrics, student_metrics, folder, exported=exported
            )
            result["pushed_to"] = push_student(self, student_dir)
        self.mark_done("evaluation", result)
        self.stages["evaluation"] = "ran"
        return result

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


def run_pipeline(config: DistillationPipelineConfig, force_unlock: bool = False) -> dict[str, Any]:
    """
    Run (or resume) the distillation recipe `config`; see the module docstring for the stages.

    Args:
        config ([`~hf_kd.recipe.config.DistillationPipelineConfig`]):
            The recipe.
        force_unlock (`bool`, *optional*, defaults to `False`):
            Take over a lock of `output_dir` from another host or unreadable (`--force-unlock`, `RunLock`).

    Returns:
        `dict[str, Any]`: `output_dir`, `stages` (what each stage did: `"ran"`, `"skipped (...)"` or
        `"disabled"`), `teacher_model` and `student_model` (paths), `teacher` and `student` (metrics per split) and
        `report` (the `hf_kd.reporting.report` report when written in this run, else None).

    Raises:
        [`QualityGateError`]: When the teacher is below `evaluation.min_teacher_metric`.
        [`~hf_kd.pipeline.markers.RunLockedError`]: When another live run (or another host's) holds `output_dir`.
        `ValueError`: When the recipe does not fit its data or models (before any stage runs).
    """
    start_state(cpu=config.use_cpu)  # the main process holds the folder's lock for the processes of its launch
    with RunLock(Path(config.output_dir), force_unlock) if is_main_process() else contextlib.nullcontext():
        run = PipelineRun(config)
        run.start()
        run.general_model = run_general_distillation(run)
        run.run_teacher()
        teacher_metrics = run.run_teacher_eval()
        train = run.run_teacher_logits()
        warm = run.run_student_warmup(train)
        student_dir, _ = run.run_student(train, warm)
        result = run.run_evaluation(student_dir, teacher_metrics)
        run.finish()
    return {
        "output_dir": str(run.root),
        "stages": dict(run.stages),
        "teacher_model": run.teacher_path,
        "student_model": student_dir,
        "teacher": result["teacher"],
        "student": result["student"],
        "report": result.get("report"),
    }
