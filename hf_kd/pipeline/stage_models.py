"""The models of a recipe's stages: the student a recipe describes (`build_student`, built from the teacher's layers,
narrow, pruned), the teacher batch a narrow student's PCA starts from (`calibration_batch`), and the export stage
(`export_student`). Pipeline side: the library modules `student`, `narrow`, `vocabulary` and `export` know nothing of
recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..constants import LABELS_COLUMN, STUDENT_INPUT_COLUMNS
from ..training.distillation_trainer import DistillationTrainer
from ..training.narrow import narrow_student_from_teacher
from ..training.student import load_encoder, student_from_teacher
from ..training.vocabulary import prune_embeddings
from .builders import GENERAL_DEFAULTS, general_arguments, load_classifier, with_lora
from .context import PipelineRun
from .evaluation import evaluate_splits
from .splits import model_columns

__all__ = [
    "GENERAL_DEFAULTS",
    "build_student",
    "calibration_batch",
    "export_student",
    "general_arguments",
    "new_student",
    "run_general_distillation",
]


def calibration_batch(run: PipelineRun, size: int = 256) -> dict[str, Any]:
    """
    The first `size` training sequences of a pipeline run as one padded teacher batch (a narrow student's PCA basis).

    Args:
        run ([`~hf_kd.pipeline.context.PipelineRun`]):
            The run.
        size (`int`, *optional*, defaults to 256):
            Number of sequences.

    Returns:
        `dict[str, torch.Tensor]`: The teacher's inputs.
    """
    rows = run.teacher_train.select(range(min(size, len(run.teacher_train))))
    names = [n for n in STUDENT_INPUT_COLUMNS if n in rows.column_names]
    features = [{n: row[n] for n in names} for row in rows]
    return dict(run.teacher_tokenizer.pad(features, padding=True, return_tensors="pt"))


def build_student(run: PipelineRun, warm_model: str | None = None, teacher: Any = None) -> Any:
    """
    The student of a pipeline run, before LoRA: loaded from `warm_model` (the warm-up's, already pruned) or
    `student.model`, or built from the teacher's layers (narrow when `student.hidden_size` is set,
    `hf_kd.training.narrow`), then its vocabulary pruned to the run's kept tokens when `student.prune_vocabulary`,
    then its encoder replaced by the general distillation's (`run.general_model`) unless `teacher` is given.

    Args:
        run ([`~hf_kd.pipeline.context.PipelineRun`]):
            The run: its recipe, label space, teacher and kept token ids.
        warm_model (`str`, *optional*):
            A saved student to continue from.
        teacher (`PreTrainedModel`, *optional*):
            The teacher to build from; defaults to the run's fine-tuned teacher (the general distillation builds
            from the pretrained one).

    Returns:
        `PreTrainedModel`: The student.
    """
    config, seed = run.config.student, run.config.seed
    if warm_model is not None:
        return load_classifier(warm_model, run.label_names, run.problem_type, seed=seed)
    source = teacher if teacher is not None else run.load_teacher() if config.model is None else None
    if config.model is not None:
        model = load_classifier(config.model, run.label_names, run.problem_type, seed=seed)
    elif config.hidden_size is not None:
        model = narrow_student_from_teacher(
            source,
            config.hidden_size,
            layers=config.from_teacher_layers,
            num_layers=config.num_layers,
            intermediate_size=config.intermediate_size,
            init=config.narrow_init,
            calibration=calibration_batch(run) if config.narrow_init == "pca" else None,
            seed=seed,
        )
    else:
        model = student_from_teacher(source, layers=config.from_teacher_layers, num_layers=config.num_layers)
    if config.model is None:
        model.config.hf_kd_teacher = run.teacher_name
    if run.kept_token_ids is not None:
        model = prune_embeddings(model, run.kept_token_ids)
    if teacher is None and run.general_model is not None:
        model = load_encoder(model, run.general_model)
    return model


def new_student(run: PipelineRun, warm_model: str | None = None) -> Any:
    """
    A fresh student of the run ([`build_student`]), with LoRA when `student.lora` is set.

    Args:
        run ([`~hf_kd.pipeline.context.PipelineRun`]):
            The run.
        warm_model (`str`, *optional*):
            A saved student to continue from (the warm-up's).

    Returns:
        `PreTrainedModel`: The student.
    """
    return with_lora(build_student(run, warm_model), run.config.student.lora, "student", run.config.seed)


def run_general_distillation(run: PipelineRun) -> str | None:
    """
    The pipeline's optional first stage, `general_distillation` (`student.general_distillation`): build the student
    from the pretrained teacher (`teacher.model`, or the section's `teacher`, e.g. the base an already fine-tuned
    `teacher.model` was fine-tuned from) and distil its encoder on the run's text (the
    labelled training rows and the transfer set, labels unused) with the hidden-state and MiniLMv2 relation terms
    (`alpha=1` and no labels: no logit term). The task stages then start from its encoder
    ([`~hf_kd.training.student.load_encoder`]); `model: <path>` in the section reuses another run's output instead.

    Args:
        run ([`~hf_kd.pipeline.context.PipelineRun`]):
            The run.

    Returns:
        `str` or `None`: The general-distilled student's folder, or `None` when the recipe has no such stage.
    """
    stage, settings = "general_distillation", run.config.student.general_distillation
    if settings is None:
        run.stages[stage] = "disabled"
        return None
    if settings.get("model") is not None:
        run.skip(stage, f"reusing {settings['model']}")
        return str(settings["model"])
    done = run.done(stage)
    if done is not None:
        run.skip(stage, "done")
        return str(done["model"])
    rows = model_columns(run.student_train)  # the teacher_* columns stay when the teacher reads its own tokens
    rows = rows.remove_columns([c for c in (LABELS_COLUMN,) if c in rows.column_names])
    run.banner(stage, f"distilling the student from the pretrained teacher on {len(rows)} texts, no labels")
    source = str(settings.get("teacher") or run.teacher_name)
    pretrained = load_classifier(source, run.label_names, run.problem_type, seed=run.config.seed)
    student = build_student(run, teacher=pretrained)  # a copy: pruning the teacher below leaves the student alone
    teacher = run.distillation_teacher(pretrained)
    folder = run.stage_dir(stage)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=general_arguments(run.config, folder / "checkpoints"),
        train_dataset=rows,
        processing_class=run.student_tokenizer,
        teacher_processing_class=run.distill_teacher_tokenizer,
    )
    model_dir, _, seconds = run.fit(stage, trainer)
    run.mark_done(stage, {"model": model_dir, "num_rows": len(rows), "train_seconds": seconds})
    run.stages[stage] = "ran"
    return model_dir


def export_student(run: PipelineRun, student_dir: str, folder: Path, threshold: float | None) -> dict[str, Any]:
    """
    The pipeline's `evaluation.export`: export the student to ONNX in `folder/export/`, and evaluate it through
    onnxruntime on the run's splits at the student's threshold.

    Args:
        run ([`~hf_kd.pipeline.context.PipelineRun`]):
            The run.
        student_dir (`str`):
            The student's folder.
        folder (`Path`):
            The evaluation stage's folder.
        threshold (`float`, *optional*):
            The student's operating threshold (multi-label and binary tasks).

    Returns:
        `dict[str, Any]`: `metrics` (per split), `export` (what [`export_onnx`] wrote) and `classifier` (the loaded
        [`~hf_kd.export.onnx_classifier.OnnxClassifier`]).
    """
    import torch

    from ..export.onnx import export_onnx
    from ..export.onnx_classifier import OnnxClassifier

    config = run.config.evaluation
    target = folder / "export"
    quantize = None if config.export == "fp32" else config.export
    # Static int8 calibrates its activation ranges on the first training texts (read in memory, never written).
    calibration = run.splits.train[run.config.data.text_column][:256] if quantize == "int8-static" else None
    info = export_onnx(student_dir, target, quantize=quantize, calibration_texts=calibration)
    classifier = OnnxClassifier.from_pretrained(target, num_threads=torch.get_num_threads())
    metrics, _ = evaluate_splits(
        classifier,
        run.student_tokenizer,
        run.student_evals,
        run.validation_split,
        run.task,
        run.label_names,
        config.threshold,
        folder / "tmp",
        config.batch_size,
        fixed_threshold=threshold,
    )
    return {"metrics": metrics, "export": info, "classifier": classifier}
