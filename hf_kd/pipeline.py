"""A resumable, recipe-driven distillation pipeline: teacher fine-tuning → gate → cached logits → student → report.

[`run_pipeline`] runs a [`~hf_kd.recipe.DistillationPipelineConfig`] in six stages. Each writes under
`output_dir/<stage>/` and leaves a `DONE.json` marker when it finishes, so that a re-run (e.g. after a crash) skips
the finished stages and resumes at the first unfinished one:

1. `teacher`: fine-tune the teacher on the hard labels (`DistillationTrainer` with `alpha=1`), unless the given
   teacher is already fine-tuned on this label space (its `config.id2label` equals the dataset's label names).
2. `teacher_eval`: evaluate the teacher on the validation (and test) split; with `evaluation.min_teacher_metric`,
   stop with a [`QualityGateError`] when the teacher is below the gate.
3. `teacher_logits`: run the teacher once over the tokenized training set (`cache_teacher_logits`), saved with
   `save_to_disk`.
4. `student_warmup` (optional, `student.warmup_epochs > 0`): train the student on the hard labels only.
5. `student`: distil (`DistillationTrainer` on the cached logits; the online teacher is used only when hidden-state
   or attention losses need its activations, or `student.online_teacher` asks for it).
6. `evaluation`: evaluate the student like the teacher (`hf_kd.evaluation`), then write the report, figures and the
   student's model card (`hf_kd.run_report`).

Each stage prints a one-line banner when it starts or is skipped, and its training shows Trainer's progress bar.
Models are saved with `save_pretrained` (safetensors) together with their tokenizer. With `teacher.lora` /
`student.lora` the model is trained with a LoRA adapter (`peft`), and the stage saves the merged, plain model in
`<stage>/model/` and the adapter in `<stage>/adapter/`. Logs, reports and errors never contain example text. Under
`accelerate launch` every process runs the stages (the trainers synchronise), and only the main process writes
markers, reports and cards and prints.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .constants import LABELS_COLUMN, TEACHER_LOGITS_COLUMN, problem_type_of_feature
from .distributed import barrier, is_main_process, start_state, state
from .evaluation import evaluate_splits, trainer_compute_metrics
from .models import (
    is_finetuned_on,
    load_classifier,
    load_tokenizer,
    save_trained,
    train_resuming,
    training_args,
    with_lora,
)
from .recipe import DistillationPipelineConfig
from .recipe_data import load_recipe_data, model_columns, subset, tokenize_side
from .report import jsonable

logger = logging.getLogger(__name__)

__all__ = ["DONE_FILE", "STAGES", "PipelineRun", "QualityGateError", "run_pipeline"]

STAGES = ("teacher", "teacher_eval", "teacher_logits", "student_warmup", "student", "evaluation")
"""The pipeline's stages, in order; each writes under `output_dir/<stage>/`."""

DONE_FILE = "DONE.json"
"""The marker a stage writes in its folder when it finishes."""


class QualityGateError(RuntimeError):
    """Raised when the teacher's evaluation metric is below the recipe's gate."""


def _done(stage_dir: Path) -> dict[str, Any] | None:
    marker = stage_dir / DONE_FILE
    if marker.is_file():
        return json.loads(marker.read_text(encoding="utf-8"))
    return None


def _mark_done(stage_dir: Path, info: Mapping[str, Any]) -> None:
    if is_main_process():
        stage_dir.mkdir(parents=True, exist_ok=True)
        tmp = stage_dir / (DONE_FILE + ".tmp")
        tmp.write_text(json.dumps(jsonable(info), indent=2) + "\n", encoding="utf-8")
        tmp.replace(stage_dir / DONE_FILE)
    barrier()


class PipelineRun:
    """
    The state the stages share: the recipe, the data tokenized for both models, the tokenizers and the folders.

    Args:
        config ([`~hf_kd.recipe.DistillationPipelineConfig`]):
            The recipe.
    """

    def __init__(self, config: DistillationPipelineConfig) -> None:
        self.config = config
        start_state(cpu=config.use_cpu)
        self.root = Path(config.output_dir)
        data_config = config.data
        raw, self.label_names = load_recipe_data(config)
        if "train" not in raw:
            raise ValueError(f"The dataset has no 'train' split; splits: {list(raw)}.")
        if data_config.validation_split not in raw:
            raise ValueError(f"Validation split {data_config.validation_split!r} not found; splits: {list(raw)}.")
        self.problem_type = problem_type_of_feature(raw["train"].features[LABELS_COLUMN])
        eval_names = [data_config.validation_split]
        if data_config.test_split and data_config.test_split in raw:
            eval_names.append(data_config.test_split)
        train = subset(raw["train"], data_config.train_size, config.seed)
        evals = {name: subset(raw[name], data_config.eval_size, config.seed) for name in eval_names}
        self.validation_split = data_config.validation_split

        self.teacher_name = str(config.teacher.model)
        self.teacher_tokenizer = load_tokenizer(config.teacher.tokenizer or self.teacher_name)
        if config.student.model is not None:
            self.student_tokenizer = load_tokenizer(config.student.tokenizer or config.student.model)
        else:
            self.student_tokenizer = self.teacher_tokenizer
        teacher_column = data_config.teacher_text_column or data_config.text_column
        teacher_length = data_config.teacher_max_length or data_config.max_length

        def teacher_side(dataset: Any) -> Any:
            return tokenize_side(dataset, self.teacher_tokenizer, teacher_column, teacher_length)

        def student_side(dataset: Any) -> Any:
            return tokenize_side(dataset, self.student_tokenizer, data_config.text_column, data_config.max_length)

        from .data import tokenize_for_distillation

        self.teacher_train = model_columns(teacher_side(train))
        self.teacher_evals = {name: teacher_side(dataset) for name, dataset in evals.items()}
        self.student_evals = {name: student_side(dataset) for name, dataset in evals.items()}
        self.student_train = model_columns(
            tokenize_for_distillation(
                train,
                self.student_tokenizer,
                teacher_tokenizer=self.teacher_tokenizer,
                text_column=data_config.text_column,
                teacher_text_column=data_config.teacher_text_column,
                max_length=data_config.max_length,
                teacher_max_length=data_config.teacher_max_length,
                remove_text=True,
            )
        )
        self.n_train = len(train)
        self.teacher_path: str = self.teacher_name
        self.stages: dict[str, str] = {}

    def stage_dir(self, stage: str) -> Path:
        """The folder of a stage."""
        return self.root / stage

    def _banner(self, stage: str, what: str) -> None:
        if is_main_process():
            number = STAGES.index(stage) + 1
            print(f"[hf-kd] stage {number}/{len(STAGES)} {stage}: {what}", file=sys.stderr, flush=True)

    def _skip(self, stage: str, why: str) -> None:
        self.stages[stage] = f"skipped ({why})"
        self._banner(stage, f"skipped ({why})")

    def compute_metrics(self) -> Any:
        """The trainers' `compute_metrics` (the report's numbers, see `hf_kd.evaluation`)."""
        return trainer_compute_metrics(self.problem_type, self.label_names, self.config.evaluation.tune_threshold)

    def evaluate(self, model: Any, tokenizer: Any, splits: dict[str, Any], folder: Path) -> dict[str, dict]:
        """Metrics of `model` on each of `splits`, with the threshold tuned on the validation split as configured."""
        return evaluate_splits(
            model,
            tokenizer,
            splits,
            self.validation_split,
            self.problem_type,
            self.label_names,
            self.config.evaluation.tune_threshold,
            folder / "tmp",
            self.config.evaluation.batch_size,
        )

    def load_teacher(self) -> Any:
        """The fine-tuned teacher (or the given one, when stage 1 was skipped)."""
        return load_classifier(self.teacher_path, self.label_names, self.problem_type)

    def needs_online_teacher(self) -> bool:
        """Whether the distillation runs the teacher at every step (hidden-state/attention terms, `online_teacher`)."""
        args = self.config.student.training
        return (
            bool(self.config.student.online_teacher)
            or float(args.get("hidden_loss_weight", 0) or 0) > 0
            or float(args.get("attention_loss_weight", 0) or 0) > 0
        )

    # ------------------------------------------------------------------ stages

    def run_teacher(self) -> None:
        """Stage 1: fine-tune the teacher (unless it is already fine-tuned on this label space)."""
        from .trainer import DistillationTrainer

        folder = self.stage_dir("teacher")
        done = _done(folder)
        if done is not None:
            self.teacher_path = done["model"]
            return self._skip("teacher", "done")
        if is_finetuned_on(self.teacher_name, self.label_names):
            logger.info("Teacher is already fine-tuned on this label space; skipping its fine-tuning.")
            self.teacher_path = self.teacher_name
            _mark_done(folder, {"model": self.teacher_name, "fine_tuned": False, "reason": "already fine-tuned"})
            return self._skip("teacher", "teacher already fine-tuned")
        self._banner("teacher", "fine-tuning the teacher on the hard labels")
        model = load_classifier(self.teacher_name, self.label_names, self.problem_type, seed=self.config.seed)
        lora = self.config.teacher.lora
        model = with_lora(model, lora, "teacher", self.config.seed)
        args = training_args(folder / "checkpoints", self.config, self.config.teacher.training, alpha=1.0)
        trainer = DistillationTrainer(
            model=model,
            args=args,
            train_dataset=self.teacher_train,
            eval_dataset=model_columns(self.teacher_evals[self.validation_split]),
            processing_class=self.teacher_tokenizer,
            compute_metrics=self.compute_metrics(),
        )
        started = time.perf_counter()
        train_resuming(trainer)
        model_dir = folder / "model"
        adapter_dir = save_trained(trainer, model_dir)
        self.teacher_path = str(model_dir)
        info = {"model": str(model_dir), "fine_tuned": True, "train_seconds": time.perf_counter() - started}
        if lora is not None:
            info.update({"lora": lora, "adapter": adapter_dir})
        _mark_done(folder, info)
        self.stages["teacher"] = "ran"

    def run_teacher_eval(self) -> dict[str, dict[str, float]]:
        """Stage 2: evaluate the teacher and apply the quality gate."""
        folder = self.stage_dir("teacher_eval")
        done = _done(folder)
        if done is not None:
            metrics = done["metrics"]
            self._skip("teacher_eval", "done")
        else:
            self._banner("teacher_eval", "evaluating the teacher")
            metrics = self.evaluate(self.load_teacher(), self.teacher_tokenizer, self.teacher_evals, folder)
            _mark_done(folder, {"metrics": metrics})
            self.stages["teacher_eval"] = "ran"
        gate = self.config.evaluation.min_teacher_metric
        if gate is not None:
            name = self.config.evaluation.gate_metric
            values = metrics[self.validation_split]
            if name not in values:
                raise ValueError(f"Gate metric {name!r} is not among the teacher's metrics: {sorted(values)}.")
            if values[name] < gate:
                raise QualityGateError(
                    f"Teacher quality gate failed: {self.validation_split} {name} = {values[name]:.4f} < "
                    f"min_teacher_metric = {gate}. Fix the teacher (or lower the gate) before distilling."
                )
        return metrics

    def run_teacher_logits(self) -> Any:
        """Stage 3: cache the teacher's logits over the training set."""
        import datasets

        from .teacher_cache import cache_teacher_logits

        folder = self.stage_dir("teacher_logits")
        data_dir = folder / "dataset"
        if _done(folder) is not None:
            self._skip("teacher_logits", "done")
            return datasets.load_from_disk(str(data_dir))
        self._banner("teacher_logits", "caching the teacher's logits over the training set")
        started = time.perf_counter()
        cached = cache_teacher_logits(
            self.load_teacher(),
            self.student_train,
            batch_size=self.config.evaluation.batch_size,
            cache_dir=str(folder / "cache"),
            accelerator=state(),
        )
        if is_main_process():
            if data_dir.exists():
                shutil.rmtree(data_dir)
            cached.save_to_disk(str(data_dir))
        barrier()
        seconds = time.perf_counter() - started
        _mark_done(folder, {"dataset": str(data_dir), "num_rows": len(cached), "seconds": seconds})
        self.stages["teacher_logits"] = "ran"
        return datasets.load_from_disk(str(data_dir))

    def new_student(self, warm_model: str | None = None) -> Any:
        """A fresh student (from `warm_model` when given), wrapped with LoRA when `student.lora` is set."""
        from .student import student_from_teacher

        student_config = self.config.student
        if warm_model is not None:
            model = load_classifier(warm_model, self.label_names, self.problem_type, seed=self.config.seed)
        elif student_config.model is not None:
            model = load_classifier(student_config.model, self.label_names, self.problem_type, seed=self.config.seed)
        else:
            model = student_from_teacher(
                self.load_teacher(), layers=student_config.from_teacher_layers, num_layers=student_config.num_layers
            )
        return with_lora(model, student_config.lora, "student", self.config.seed)

    def run_student_warmup(self, train: Any) -> str | None:
        """Stage 4 (optional): train the student on the hard labels only."""
        from .trainer import DistillationTrainer

        epochs = self.config.student.warmup_epochs
        if not epochs:
            self.stages["student_warmup"] = "disabled"
            return None
        folder = self.stage_dir("student_warmup")
        done = _done(folder)
        if done is not None:
            self._skip("student_warmup", "done")
            return done["model"]
        self._banner("student_warmup", f"{epochs:g} epoch(s) of hard-label training of the student")
        overrides = {
            k: v
            for k, v in self.config.student.training.items()
            if k not in ("hidden_loss_weight", "attention_loss_weight")
        }
        args = training_args(folder / "checkpoints", self.config, overrides, alpha=1.0, num_train_epochs=epochs)
        trainer = DistillationTrainer(
            model=self.new_student(),
            args=args,
            train_dataset=model_columns(train.remove_columns([TEACHER_LOGITS_COLUMN]), teacher_side=False),
            processing_class=self.student_tokenizer,
            compute_metrics=self.compute_metrics(),
        )
        train_resuming(trainer)
        model_dir = folder / "model"
        adapter_dir = save_trained(trainer, model_dir)
        _mark_done(folder, {"model": str(model_dir), **({"adapter": adapter_dir} if adapter_dir else {})})
        self.stages["student_warmup"] = "ran"
        return str(model_dir)

    def distillation_trainer(self, output_dir: Path, train: Any, model: Any = None, model_init: Any = None) -> Any:
        """The student's `DistillationTrainer` (stage 5 and every search trial): the online teacher only when
        `needs_online_teacher()`, otherwise the cached `teacher_logits` column alone."""
        from .trainer import DistillationTrainer

        online = self.needs_online_teacher()
        if self.config.student.online_teacher and TEACHER_LOGITS_COLUMN in train.column_names:
            train = train.remove_columns(TEACHER_LOGITS_COLUMN)  # every logit comes from the teacher's forward pass
        return DistillationTrainer(
            model=model,
            model_init=model_init,
            teacher_model=self.load_teacher() if online else None,
            args=training_args(output_dir, self.config, self.config.student.training),
            train_dataset=model_columns(train, teacher_side=online),
            eval_dataset=model_columns(self.student_evals[self.validation_split], teacher_side=False),
            processing_class=self.student_tokenizer,
            teacher_processing_class=self.teacher_tokenizer if online else None,
            compute_metrics=self.compute_metrics(),
        )

    def run_student(self, train: Any, warm_model: str | None) -> tuple[str, dict[str, Any]]:
        """Stage 5: distil the student."""
        folder = self.stage_dir("student")
        done = _done(folder)
        if done is not None:
            self._skip("student", "done")
            return done["model"], done
        online = self.needs_online_teacher()
        source = "the online teacher" if online else "the cached teacher logits"
        self._banner("student", f"distilling the student from {source}")
        trainer = self.distillation_trainer(folder / "checkpoints", train, model=self.new_student(warm_model))
        started = time.perf_counter()
        train_resuming(trainer)
        model_dir = folder / "model"
        adapter_dir = save_trained(trainer, model_dir)
        info = {
            "model": str(model_dir),
            "online_teacher": online,
            "train_seconds": time.perf_counter() - started,
            "args": dict(self.config.student.training),
        }
        if adapter_dir is not None:
            info.update({"lora": self.config.student.lora, "adapter": adapter_dir})
        _mark_done(folder, info)
        self.stages["student"] = "ran"
        return str(model_dir), info

    def run_evaluation(self, student_dir: str, teacher_metrics: dict[str, dict[str, float]]) -> dict[str, Any]:
        """Stage 6: evaluate the student, write the report, the figures and the model card."""
        from .run_report import write_run_report

        folder = self.stage_dir("evaluation")
        done = _done(folder)
        if done is not None:
            self._skip("evaluation", "done")
            return done
        self._banner("evaluation", "evaluating the student and writing the report")
        student = load_classifier(student_dir, self.label_names, self.problem_type)
        student_metrics = self.evaluate(student, self.student_tokenizer, self.student_evals, folder)
        result: dict[str, Any] = {"teacher": teacher_metrics, "student": student_metrics}
        if is_main_process():
            result["report"] = write_run_report(self, student, student_dir, teacher_metrics, student_metrics, folder)
        _mark_done(folder, result)
        self.stages["evaluation"] = "ran"
        return result


def run_pipeline(config: DistillationPipelineConfig) -> dict[str, Any]:
    """
    Run (or resume) the distillation recipe `config`; see the module docstring for the stages.

    Args:
        config ([`~hf_kd.recipe.DistillationPipelineConfig`]):
            The recipe.

    Returns:
        `dict[str, Any]`: `output_dir`, `stages` (what each stage did: `"ran"`, `"skipped (...)"` or
        `"disabled"`), `teacher_model` and `student_model` (paths), `teacher` and `student` (metrics per split) and
        `report` (the `hf_kd.report` report when written in this run, else None).

    Raises:
        [`QualityGateError`]: When the teacher is below `evaluation.min_teacher_metric`.
    """
    run = PipelineRun(config)
    if is_main_process():
        run.root.mkdir(parents=True, exist_ok=True)
        config.to_yaml(run.root / "recipe.yaml")
    barrier()
    run.run_teacher()
    teacher_metrics = run.run_teacher_eval()
    train = run.run_teacher_logits()
    warm = run.run_student_warmup(train)
    student_dir, _ = run.run_student(train, warm)
    result = run.run_evaluation(student_dir, teacher_metrics)
    return {
        "output_dir": str(run.root),
        "stages": dict(run.stages),
        "teacher_model": run.teacher_path,
        "student_model": student_dir,
        "teacher": result["teacher"],
        "student": result["student"],
        "report": result.get("report"),
    }
