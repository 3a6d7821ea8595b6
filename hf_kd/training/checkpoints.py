"""Checkpoints that a full disk or a kill cannot leave half-written for a resume to trip on.

[`DistillationTrainer`] writes [`COMPLETE_FILE`] into a checkpoint after everything else in it (weights, optimizer,
scheduler, RNG states, trainer state, layer projections), written under a temporary name and renamed. A checkpoint
without it was cut off midway; [`last_complete_checkpoint`] skips and removes such checkpoints, naming them, and
returns the newest complete one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

__all__ = ["COMPLETE_FILE", "last_complete_checkpoint", "mark_checkpoint_complete"]

logger = logging.getLogger(__name__)

COMPLETE_FILE = "hf_kd_complete.json"
"""The file a checkpoint gets once everything in it is written."""
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def mark_checkpoint_complete(folder: str | os.PathLike) -> None:
    """
    Mark a checkpoint folder complete (main process only): `COMPLETE_FILE`, written under a temporary name and
    renamed.

    Args:
        folder (`str` or `os.PathLike`):
            The checkpoint folder.
    """
    folder = Path(folder)
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    temporary = folder / (COMPLETE_FILE + ".tmp")
    temporary.write_text(json.dumps({"files": files}) + "\n", encoding="utf-8")
    os.replace(temporary, folder / COMPLETE_FILE)


def last_complete_checkpoint(output_dir: str | os.PathLike, remove_incomplete: bool = True) -> str | None:
    """
    The newest complete checkpoint of a training run's folder; incomplete ones are named in one log line each and,
    by default, removed (they hold no state a resume can use, and take the disk space a rerun needs).

    Args:
        output_dir (`str` or `os.PathLike`):
            The trainer's `output_dir`.
        remove_incomplete (`bool`, *optional*, defaults to `True`):
            Remove the incomplete checkpoints (call it on the main process only).

    Returns:
        `str` or `None`: The checkpoint folder, or None when there is no complete one.
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = sorted(
        (int(m.group(1)), path) for path in folder.iterdir() if path.is_dir() and (m := _CHECKPOINT.match(path.name))
    )
    complete = None
    for _, path in reversed(found):
        if (path / COMPLETE_FILE).is_file():
            complete = complete or str(path)
            continue
        if complete is None:  # newer than every complete checkpoint: a save that did not finish
            logger.warning("Skipping the incomplete checkpoint %s (its save did not finish).", path)
            if remove_incomplete:
                shutil.rmtree(path, ignore_errors=True)
    return complete
