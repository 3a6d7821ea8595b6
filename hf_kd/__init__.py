"""hf_kd: knowledge distillation of text classifiers as a drop-in `transformers.Trainer`.

The public API is imported lazily (PEP 562), so `import hf_kd` and the `hf-kd` command start fast: each name is
imported from its subpackage on first use. The names and their subpackages are listed once, in `hf_kd/__init__.pyi`
(which type checkers read as well); each subpackage re-exports its modules' public names the same way
(`hf_kd.exports`), so `from hf_kd import DistillationTrainer`, `from hf_kd.training import DistillationTrainer` and
`from hf_kd.training.distillation_trainer import DistillationTrainer` give the same class.
"""

from __future__ import annotations

import ast
import importlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

try:
    __version__ = version("hf-kd")
except PackageNotFoundError:  # pragma: no cover - a source tree that was not installed
    __version__ = "0+unknown"


def _public_names() -> dict[str, str]:
    """Name -> subpackage, from the `from .SUBPACKAGE import NAME as NAME` lines of `__init__.pyi`."""
    stub = Path(__file__).with_suffix(".pyi")
    return {
        alias.asname or alias.name: node.module
        for node in ast.parse(stub.read_text(encoding="utf-8")).body
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        for alias in node.names
    }


_EXPORTS: dict[str, str] = _public_names()
__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hf_kd' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
