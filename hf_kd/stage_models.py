"""The models of a recipe's stages: the student a recipe describes (`build_student`, built from the teacher's layers,
narrow, pruned), the teacher batch a narrow student's PCA starts from (`calibration_batch`), and the export stage
(`export_student`). Pipeline side: the library modules `student`, `narrow`, `vocabulary` and `export` know nothing of
recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .constants import STUDENT_INPUT_COLUMNS
from .models import load_classifier

__all__ = ["build_student", "calibration_batch", "export_student"]


def calibration_batch(run: Any, size: int = 256) -> dict[str, Any]:
    """
    The first `size` training sequences of a pipeline run as one padded teacher batch (a narrow student's PCA basis).

    Args:
        run (`hf_kd.pipeline.PipelineRun`):
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


def build_student(run: Any, warm_model: str | None = None) -> Any:
    """
    The student of a pipeline run, before LoRA: loaded from `warm_model` (the warm-up's, already pruned) or
    `student.model`, or built from the teacher's layers (narrow when `student.hidden_size` is set,
    `hf_kd.narrow`), then its vocabulary pruned to the run's kept tokens when `student.prune_vocabulary`.

    Args:
        run (`hf_kd.pipeline.PipelineRun`):
            The run: its recipe, label space, teacher and kept token ids.
        warm_model (`str`, *optional*):
            A saved student to continue from.

    Returns:
        `PreTrainedModel`: The student.
    """
    config, seed = run.config.student, run.config.seed
    if warm_model is not None:
        return load_classifier(warm_model, run.label_names, run.problem_type, seed=seed)
    if config.model is not None:
        model = load_classifier(config.model, run.label_names, run.problem_type, seed=seed)
    elif config.hidden_size is not None:
        from .narrow import narrow_student_from_teacher

        model = narrow_student_from_teacher(
            run.load_teacher(),
            config.hidden_size,
            layers=config.from_teacher_layers,
            num_layers=config.num_layers,
            intermediate_size=config.intermediate_size,
            init=config.narrow_init,
            calibration=calibration_batch(run) if config.narrow_init == "pca" else None,
            seed=seed,
        )
    else:
        from .student import student_from_teacher

        model = student_from_teacher(
            run.load_teacher(), layers=config.from_teacher_layers, num_layers=config.num_layers
        )
    if config.model is None:
        model.config.hf_kd_teacher = run.teacher_name
    if run.kept_token_ids is not None:
        from .vocabulary import prune_embeddings

        model = prune_embeddings(model, run.kept_token_ids)
    return model


def export_student(run: Any, student_dir: str, folder: Path, threshold: float | None) -> dict[str, Any]:
    """
    The pipeline's `evaluation.export`: export the student to ONNX in `folder/export/`, and evaluate it through
    onnxruntime on the run's splits at the student's threshold.

    Args:
        run (`hf_kd.pipeline.PipelineRun`):
            The run.
        student_dir (`str`):
            The student's folder.
        folder (`Path`):
            The evaluation stage's folder.
        threshold (`float`, *optional*):
            The student's operating threshold (multi-label and binary tasks).

    Returns:
        `dict[str, Any]`: `metrics` (per split), `export` (what [`export_onnx`] wrote) and `classifier` (the loaded
        [`~hf_kd.onnx_classifier.OnnxClassifier`]).
    """
    import torch

    from .evaluation import evaluate_splits
    from .export import export_onnx
    from .onnx_classifier import OnnxClassifier

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
