"""The student a recipe describes: built from the teacher's layers, narrow or pruned (`build_student`), with its LoRA
adapter (`new_student`), and the teacher batch a narrow student's PCA starts from (`calibration_batch`). Pipeline
side: the library modules `student`, `narrow` and `vocabulary` know nothing of recipes."""

from __future__ import annotations

from typing import Any

from ..constants import STUDENT_INPUT_COLUMNS
from ..training.narrow import narrow_student_from_teacher
from ..training.student import load_encoder, student_from_teacher
from ..training.vocabulary import prune_embeddings
from .builders import load_classifier, with_lora
from .context import PipelineRun

__all__ = ["build_student", "calibration_batch", "new_student"]


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
