"""Damaged model folders named: which file of a teacher, a student or a reused stage cannot be read, and why.

`from_pretrained` on a truncated `model.safetensors` ends in `SafetensorError: Error while deserializing header:
incomplete metadata, file not fully covered`, on a damaged `config.json` in a JSON error; neither names the file.
[`named_load_errors`] turns such a failure into one `ValueError` that names the file and what is wrong with it, found
by [`diagnose_model_folder`], which reads each file the way the loaders do (JSON, the safetensors header).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

__all__ = ["JSON_FILES", "diagnose_model_folder", "named_load_errors"]

JSON_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.safetensors.index.json",
)
"""The JSON files of a model folder that [`diagnose_model_folder`] parses."""


def diagnose_model_folder(folder: str | Path) -> str | None:
    """
    The first damaged file of a model folder, and what is wrong with it; None when every file reads.

    Args:
        folder (`str` or `Path`):
            A folder written by `save_pretrained` (or `hf-kd distill`).

    Returns:
        `str` or `None`: `"'<file>' is ..."`, or None.
    """
    from safetensors import safe_open

    folder = Path(folder)
    for name in JSON_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            reason = getattr(error, "msg", None) or "not UTF-8"
            return f"{str(path)!r} is not valid JSON ({reason}, {path.stat().st_size} bytes)"
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():
                    handle.get_slice(key).get_shape()
        except Exception as error:  # noqa: BLE001 - safetensors' own error type varies by version
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            size = path.stat().st_size
            return f"{str(path)!r} cannot be read as safetensors ({first}; {size} bytes): truncated or damaged"
    return None


@contextlib.contextmanager
def named_load_errors(folder: str | Path, what: str) -> Iterator[None]:
    """
    Re-raise a failure to load a model or tokenizer from a local folder as one `ValueError` naming the damaged file.

    A failure whose cause no file of the folder shows (a missing file, an unknown architecture) is raised unchanged,
    except that a size mismatch between the weights and `config.json` is named too.

    Args:
        folder (`str` or `Path`):
            The folder being loaded (nothing is done for a Hub id).
        what (`str`):
            What it is, for the message (e.g. "`teacher.model`").

    Raises:
        `ValueError`: `"<what>: '<file>' is ..."`.
    """
    try:
        yield
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        path = Path(folder)
        if not path.is_dir():
            raise
        problem = diagnose_model_folder(path)
        if problem is None and "size mismatch" in str(error):
            first = str(error).strip().splitlines()[0]
            problem = f"the weights in {str(path)!r} do not fit its config.json ({first[:200]})"
        if problem is None:
            raise
        raise ValueError(f"{what}: {problem}.") from None
    except Exception as error:
        if type(error).__name__ != "SafetensorError":
            raise
        problem = diagnose_model_folder(folder) if Path(folder).is_dir() else None
        if problem is None:
            raise
        raise ValueError(f"{what}: {problem}.") from None
