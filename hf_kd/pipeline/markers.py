"""What a run folder records about itself: stage markers with the fingerprint of their inputs, and the run lock.

Each pipeline stage writes `DONE.json` in its folder when it finishes, with a fingerprint of everything it was made
from (its recipe section, the upstream stage's fingerprint, the data files, the models' files). A rerun compares
fingerprints: a stage whose inputs changed is recomputed, and so is every stage after it. The lock file
`.hf-kd.lock` holds the process id of the run that owns the folder, so that a second run into it stops at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..reporting.report import jsonable

__all__ = [
    "DONE_FILE",
    "LOCK_FILE",
    "RunLock",
    "RunLockedError",
    "digest",
    "file_digest",
    "files_identity",
    "read_json_file",
    "read_marker",
    "write_marker",
]

DONE_FILE = "DONE.json"
"""The marker a stage writes in its folder when it finishes."""

LOCK_FILE = ".hf-kd.lock"
"""The lock file of a run folder."""

# Content digests of large files already read in this process, keyed by what `os.stat` says about them: a run checks
# the same weights at several stages.
_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


class RunLockedError(RuntimeError):
    """Raised when another live run holds the output folder."""


def digest(*parts: Any) -> str:
    """
    A short SHA-256 digest of JSON-serialisable parts (dicts are sorted by key).

    Args:
        *parts (`Any`):
            The parts.

    Returns:
        `str`: 16 hex digits.
    """
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(file: Path) -> str:
    """
    The SHA-256 digest of a file's content (16 hex digits), read once per process while its size and times stay the
    same (the change time moves on every write, whatever the modification time is set to).

    Args:
        file (`Path`):
            The file.

    Returns:
        `str`: 16 hex digits.
    """
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
    if key not in _DIGESTS:
        with open(file, "rb") as handle:
            _DIGESTS[key] = hashlib.file_digest(handle, "sha256").hexdigest()[:16]
    return _DIGESTS[key]


def files_identity(path: str | os.PathLike | None) -> Any:
    """
    What identifies a local model or data folder (or file): its files' names, sizes and content digests. A copy of the
    folder with new modification times (a fresh checkout, `cp` without `-p`) keeps its identity; a file whose content
    changes does not, even at the same size. A name that is not a local path (a Hub id) is its own identity.

    Args:
        path (`str` or `os.PathLike`, *optional*):
            The folder, file or Hub id.

    Returns:
        `Any`: A JSON-serialisable identity (None for None).
    """
    if path is None:
        return None
    root = Path(path)
    if not root.exists():
        return {"name": str(path)}
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    identity = [
        [str(file.relative_to(root) if file != root else file.name), file.stat().st_size, file_digest(file)]
        for file in files
    ]
    return {"path": str(root.resolve()), "files": identity}


def read_marker(stage_dir: Path) -> dict[str, Any] | None:
    """
    A stage's `DONE.json`, or None when the stage did not finish.

    Args:
        stage_dir (`Path`):
            The stage's folder.

    Returns:
        `dict[str, Any]` or `None`: The marker.
    """
    marker = stage_dir / DONE_FILE
    if marker.is_file():
        return read_json_file(marker, f"the {stage_dir.name!r} stage's marker")
    return None


def read_json_file(path: Path, what: str) -> dict[str, Any]:
    """
    A marker or fingerprint file of a run, with an error that names the file and what to do when it is damaged.

    Args:
        path (`Path`):
            The JSON file.
        what (`str`):
            What it is, for the message (e.g. "the 'teacher' stage's marker").

    Returns:
        `dict[str, Any]`: Its content.

    Raises:
        `ValueError`: When the file is not a JSON object: naming it, and saying that deleting it recomputes the stage.
    """
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        reason = getattr(error, "msg", None) or type(error).__name__
        raise ValueError(
            f"{str(path)!r} ({what}) is damaged ({reason}): delete it, and the next run recomputes that stage."
        ) from None
    if not isinstance(content, dict):
        raise ValueError(
            f"{str(path)!r} ({what}) is damaged (not a JSON object): delete it, and the next run recomputes that "
            "stage."
        )
    return content


def write_marker(stage_dir: Path, info: Mapping[str, Any]) -> None:
    """
    Write a stage's `DONE.json` atomically (the caller writes from the main process only).

    Args:
        stage_dir (`Path`):
            The stage's folder.
        info (`Mapping[str, Any]`):
            What the stage records (its fingerprint among it).
    """

    stage_dir.mkdir(parents=True, exist_ok=True)
    tmp = stage_dir / (DONE_FILE + ".tmp")
    tmp.write_text(json.dumps(jsonable(info), indent=2) + "\n", encoding="utf-8")
    tmp.replace(stage_dir / DONE_FILE)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class RunLock:
    """
    The lock of a run folder: `output_dir/.hf-kd.lock`, created atomically, holding the owner's process id.

    A lock left on this host by a process that is gone (killed, crashed) is taken over. A lock written on another
    host (a shared filesystem: that node's run may be alive), or one that cannot be read, is never taken over unless
    `force` says so. Use it as a context manager.

    Args:
        folder (`Path`):
            The run folder.
        force (`bool`, *optional*, defaults to `False`):
            Take over a lock of another host or an unreadable one (`hf-kd distill --force-unlock`), after making sure
            no run uses the folder. A live run of this host is never taken over.
    """

    def __init__(self, folder: Path, force: bool = False) -> None:
        self.path = Path(folder) / LOCK_FILE
        self.held = False
        self.force = force

    def acquire(self) -> None:
        """
        Take the lock, or raise [`RunLockedError`] naming the folder when a live run holds it.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        for _ in range(2):
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over(me["host"])
                self.path.unlink(missing_ok=True)  # left by a process that is gone, or forced
                continue
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(me, out)
            self.held = True
            return
        raise RunLockedError(f"Could not take the lock of the output folder {str(self.path.parent)!r}.")

    def _take_over(self, host: str) -> None:
        """Raise [`RunLockedError`] naming the holder unless its lock may be removed."""
        folder = str(self.path.parent)
        try:
            owner = json.loads(self.path.read_text(encoding="utf-8"))
            pid, holder = int(owner["pid"]), str(owner["host"])
        except (OSError, ValueError, KeyError, TypeError):
            if self.force:
                return
            raise RunLockedError(
                f"The output folder {folder!r} has a lock file that cannot be read ({str(self.path)!r}). If no run "
                "uses the folder, rerun with --force-unlock (or remove the file)."
            ) from None
        started = owner.get("started", "?")
        if holder == host:
            if _alive(pid):
                raise RunLockedError(
                    f"The output folder {folder!r} is in use by another hf-kd run (process {pid} on {holder}, started "
                    f"{started}); wait for it to finish or choose another output_dir."
                )
            return
        if not self.force:
            raise RunLockedError(
                f"The output folder {folder!r} is locked by an hf-kd run on host {holder!r} (process {pid}, started "
                f"{started}), which this host cannot check. Wait for it, or, if it is gone, rerun with --force-unlock."
            )

    def release(self) -> None:
        """Remove the lock file if this process holds it."""
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


STARTED_FILE = "STARTED.json"
"""Written when a training stage starts, with its fingerprint: its checkpoints were made from these inputs."""


def write_started(stage_dir: Path, fingerprint: Mapping[str, Any]) -> None:
    """
    Record the fingerprint of a training stage as it starts (`STARTED.json`).

    Args:
        stage_dir (`Path`):
            The stage's folder.
        fingerprint (`Mapping[str, Any]`):
            Its entry of `hf_kd.pipeline.stages.stage_fingerprints`.
    """
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / STARTED_FILE).write_text(json.dumps(dict(fingerprint)), encoding="utf-8")


def changed_stages(
    root: Path, stages: tuple[str, ...], fingerprints: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, list[str]]]:
    """
    The stages of a run folder that were made (or started) from other inputs, and every existing stage made after
    one of them (its `after` stages in `hf_kd.pipeline.stages.stage_fingerprints`).

    Args:
        root (`Path`):
            The run folder.
        stages (`tuple[str, ...]`):
            The stages, in order.
        fingerprints (`Mapping[str, Mapping[str, Any]]`):
            From `hf_kd.pipeline.stages.stage_fingerprints`.

    Returns:
        `list[tuple[str, list[str]]]`: Each stage to recompute, with the inputs that changed (`"upstream"` when an
        earlier stage changed).
    """
    removed: set[str] = set()
    out = []
    for name in stages:
        if name not in fingerprints:  # a stage the recipe does not run
            continue
        folder = root / name
        marker = read_marker(folder)
        if marker is None and (folder / STARTED_FILE).is_file():
            marker = read_json_file(folder / STARTED_FILE, f"the {name!r} stage's fingerprint")
        expected = fingerprints[name]
        upstream = any(before in removed for before in expected.get("after", ()))
        if not upstream and (marker is None or marker.get("fingerprint") == expected["fingerprint"]):
            continue
        removed.add(name)
        if marker is None and not folder.exists():
            continue
        old = (marker or {}).get("inputs", {})
        reasons = [key for key, value in expected["inputs"].items() if old.get(key) != value] if marker else []
        out.append((name, reasons if reasons and not upstream else ["upstream"] if upstream else reasons))
    return out
