"""Stage 3, `teacher_logits`: run the teacher once over the training rows and the transfer set (unlabeled rows,
`hf_kd.pipeline.splits.transfer_set`) with `cache_teacher_logits`, shared between processes; the store becomes the
stage's dataset (`save_to_disk` layout)."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets

from ...data.mapped import release_pages_of
from ...processes import barrier, is_main_process, state
from ...recipe.config import DistillationPipelineConfig
from ...training import teacher_cache
from ..context import PipelineRun
from ..markers import DONE_FILE, files_identity
from ..stage import Stage, data_identity, student_model_identity, transfer_identity

logger = logging.getLogger(__name__)

__all__ = ["TEACHER_LOGITS"]


def _inputs(config: DistillationPipelineConfig, upstream: Mapping[str, str]) -> dict[str, Any]:
    # The cached dataset holds the student's token ids too: its tokenizer (pruned or not) is an input.
    student_tokenizer: Any = student_model_identity(config)
    if config.student.tokenizer is not None:
        student_tokenizer = [student_tokenizer, files_identity(config.student.tokenizer)]
    if config.student.prune_vocabulary:
        student_tokenizer = [student_tokenizer, "pruned"]
    parts = {
        "teacher": upstream["teacher"],
        "student_tokenizer": student_tokenizer,
        "data": data_identity(config),
        "transfer": transfer_identity(config),
    }
    # `teacher_logits_dtype` is an input only when it is not the default: the fingerprints of float32 runs stay
    # what they were before the field existed.
    if config.student.teacher_logits_dtype != "float32":
        parts["logits_dtype"] = config.student.teacher_logits_dtype
    return parts


def _load_done(folder: Path) -> datasets.Dataset | None:
    """The finished stage's dataset; `None` (marker removed) when its Arrow files cannot be read."""
    data_dir = folder / "dataset"
    try:
        kept = datasets.load_from_disk(str(data_dir))
        kept[len(kept) - 1 :]  # noqa: B018 - reads the last Arrow chunk: a truncated file fails here
        release_pages_of([kept])  # what loading mapped in
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
        return None


def _run(run: PipelineRun) -> None:
    folder = run.stage_dir("teacher_logits")
    data_dir = folder / "dataset"
    if run.done("teacher_logits") is not None and (kept := _load_done(folder)) is not None:
        run.logits = kept
        return run.skip("teacher_logits", "done")
    transfer = f" and {len(run.splits.transfer)} unlabeled rows of the transfer set" if run.splits.transfer else ""
    run.banner("teacher_logits", f"caching the teacher's logits over {run.n_train} training rows{transfer}")
    teacher = run.distillation_teacher()
    started = time.perf_counter()  # the pass itself: the store's scan, the teacher's batches, the writes
    cached = teacher_cache.cache_teacher_logits(
        teacher,
        run.student_train,
        batch_size=run.config.evaluation.batch_size,
        cache_dir=str(folder / "cache"),
        accelerator=state(),
        teacher_tokenizer=run.distill_teacher_tokenizer,
        logits_dtype=run.config.student.teacher_logits_dtype,
    )
    barrier()
    if is_main_process():  # the store itself becomes the stage's dataset: moved, not copied
        shutil.rmtree(data_dir, ignore_errors=True)
        os.replace(Path(cached.cache_files[0]["filename"]).parent, data_dir)
        shutil.rmtree(folder / "cache", ignore_errors=True)
    barrier()
    run.mark_done(
        "teacher_logits", {"dataset": str(data_dir), "num_rows": len(cached), "seconds": time.perf_counter() - started}
    )
    run.stages["teacher_logits"] = "ran"
    store = datasets.load_from_disk(str(data_dir))
    release_pages_of([store])  # what loading mapped in
    run.logits = store


TEACHER_LOGITS = Stage(
    name="teacher_logits", inputs=_inputs, run=_run, outputs=("logits",), after=lambda config: ("teacher",)
)
