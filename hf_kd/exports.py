"""The public names of a package, read from its modules' own `__all__`, and imported on first use (PEP 562).

Each subpackage's `__init__.py` re-exports the public names of its modules this way, so that
`from hf_kd.training import DistillationTrainer` works as `from hf_kd.training.distillation_trainer import
DistillationTrainer` does, while `import hf_kd.recipe` (which `hf-kd --help` needs) still imports no heavy library:

    from typing import TYPE_CHECKING

    from ..exports import lazy_exports

    if TYPE_CHECKING:  # what type checkers and editors read
        from .collator import *  # noqa: F403
        ...
    __getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)

A module's `__all__` is its table of public names: it is written once, there. The names a package re-exports are
those its modules define (a name a module imports from another and lists in its `__all__` as well is exported from
the module that defines it).
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["lazy_exports", "module_exports"]


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _declared_all(tree: ast.Module, path: Path) -> list[str]:
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
            try:
                return list(ast.literal_eval(node.value))
            except ValueError:
                raise ValueError(f"{path}: `__all__` must be a literal list of names to be re-exported.") from None
    raise ValueError(f"{path} has no `__all__`: every module of a subpackage declares its public names.")


def module_exports(package_dir: str | Path) -> dict[str, str]:
    """
    The public names of a package's modules, read from their source (nothing is imported).

    Args:
        package_dir (`str` or `Path`):
            The package's folder.

    Returns:
        `dict[str, str]`: Name -> the module (its file's stem) that defines it, for each name of each module's
        `__all__` that the module defines itself. A module that defines nothing (an old path kept after a move,
        importing its names from their new home) is the home of the names it lists that no module here defines.

    Raises:
        `ValueError`: A module without a literal `__all__`, or two modules defining the same public name.
    """
    found: dict[str, str] = {}
    shims: dict[str, str] = {}
    for path in sorted(Path(package_dir).glob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        defined = _defined_names(tree)
        declared = _declared_all(tree, path)
        if not defined - {"__all__"}:  # an old path kept after a move: it re-exports what it lists
            shims.update({name: path.stem for name in declared if name not in shims})
            continue
        for name in declared:
            if name not in defined:
                continue
            if name in found:
                raise ValueError(f"{name!r} is defined by both {found[name]}.py and {path.name} in {package_dir}.")
            found[name] = path.stem
    return {**{name: home for name, home in shims.items() if name not in found}, **found}


def lazy_exports(package: str, init_file: str) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """
    The `__getattr__`, `__dir__` and `__all__` of a package that re-exports its modules' public names lazily.

    Args:
        package (`str`):
            The package's name (`__name__` in its `__init__.py`).
        init_file (`str`):
            Its `__init__.py` (`__file__`).

    Returns:
        `tuple`: `(__getattr__, __dir__, __all__)`; `__getattr__` imports the defining module on first use and keeps
        the name in the package's namespace.
    """
    homes = module_exports(Path(init_file).parent)
    names = sorted(homes)

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(names))

    return __getattr__, __dir__, names
