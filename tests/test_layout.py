"""The package's layout contract: small modules, imports that only run downwards, no private names across modules,
and a light `import hf_kd` / `hf-kd --help`.

Imports are read from the source with `ast`, lazy ones (inside functions) included, so that a cycle hidden by a
function-level import is found as well.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hf_kd"
ARCHITECTURE = PACKAGE.parent / "docs" / "src" / "architecture.md"
MAX_LINES = 600
HEAVY = ("torch", "transformers", "matplotlib", "pyswarms", "optuna")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name of the module a `from ... import` statement reads from."""
    if node.level == 0:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _imports(module: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str | None]]:
    """`(imported module, imported name or None)` for every import of a package module, lazy ones included."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.split(".")[0] == "hf_kd"]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, path, node)
            if source.split(".")[0] != "hf_kd":
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.append((submodule, None) if submodule in known else (source, alias.name))
    return found


def test_every_import_of_the_package_names_a_module_that_exists():
    """A function-level `from ..export import ...` left behind by a move fails only when that function runs."""
    known = _modules()
    missing = [
        f"{module} imports {source}"
        for module, path in known.items()
        for source, _ in _imports(module, path, known)
        if source not in known
    ]
    assert missing == []


def test_no_module_is_over_the_line_limit():
    long = {name: n for name, p in _modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"


def test_no_module_imports_another_modules_private_name():
    known = _modules()
    private = [
        f"{module} imports {name} from {source}"
        for module, path in known.items()
        for source, name in _imports(module, path, known)
        if name is not None and name.startswith("_") and not name.startswith("__") and source != module
    ]
    assert private == []


def test_package_imports_have_no_cycle():
    known = _modules()
    graph = {
        module: {source for source, _ in _imports(module, path, known) if source in known and source != module}
        for module, path in known.items()
    }
    # A package's __init__ re-exporting its submodules is not a cycle of concerns: leave the parent->child edges out.
    graph = {m: {s for s in deps if not s.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            assert (cycle := visit(module)) is None, " -> ".join(cycle)


def _floors() -> dict[str, int]:
    """The floor of each subpackage (or top module), read from the table of `docs/src/architecture.md`."""
    import re

    text = ARCHITECTURE.read_text()
    table = text[text.index("## The floors") : text.index("## The modules")]
    floors = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].isdigit():
            for name in re.findall(r"`([\w]+)`", cells[1]):
                floors[name] = int(cells[0])
    return floors


def _unit(module: str) -> str:
    """The subpackage (or top module) a module belongs to; `__init__` for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _order_violations(known: dict[str, Path], floors: dict[str, int], imports=None) -> list[str]:
    bad = []
    for module, path in known.items():
        unit = _unit(module)
        for source, _ in (imports or _imports)(module, path, known):
            other = _unit(source if source in known else source.rpartition(".")[0] or source)
            if other != unit and not floors[other] < floors[unit]:
                bad.append(f"{module} (floor {floors[unit]}) imports {source} (floor {floors[other]})")
    return bad


def test_every_subpackage_has_a_floor_and_imports_only_from_lower_floors():
    known, floors = _modules(), _floors()
    units = {_unit(m) for m in known}
    assert units == set(floors), (
        f"subpackages without a floor: {units - set(floors)}; floors of nothing: {set(floors) - units}"
    )
    assert _order_violations(known, floors) == []


def test_the_order_check_finds_an_import_upwards_and_one_beside():
    """A lower floor importing a higher one, or a neighbour on its own floor, is reported."""
    known = {
        "hf_kd.data.a": PACKAGE / "x.py",
        "hf_kd.evaluation.b": PACKAGE / "y.py",
        "hf_kd.training.c": PACKAGE / "z.py",
    }
    floors = {"data": 1, "evaluation": 1, "training": 3}

    def fake_imports(module, path, known):
        return {"hf_kd.data.a": [("hf_kd.training.c", None), ("hf_kd.evaluation.b", None)]}.get(module, [])

    assert _order_violations(known, floors, fake_imports) == [
        "hf_kd.data.a (floor 1) imports hf_kd.training.c (floor 3)",
        "hf_kd.data.a (floor 1) imports hf_kd.evaluation.b (floor 1)",
    ]


def test_the_checker_sees_lazy_imports_and_private_names(tmp_path):
    """The reader above must catch a function-level import and a private name, or the two tests above prove nothing."""
    pkg = tmp_path / "hf_kd"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import _helper\n    return _helper\n")
    (pkg / "b.py").write_text("from . import a\n")
    known = {"hf_kd": pkg / "__init__.py", "hf_kd.a": pkg / "a.py", "hf_kd.b": pkg / "b.py"}
    assert _imports("hf_kd.a", pkg / "a.py", known) == [("hf_kd.b", "_helper")]
    assert _imports("hf_kd.b", pkg / "b.py", known) == [("hf_kd.a", None)]


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)), file=sys.stderr)"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr.split()
    return {name.split(".")[0] for name in out}


def test_import_hf_kd_loads_no_heavy_library():
    loaded = _loaded_after("import hf_kd\nhf_kd.__version__")
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize(
    ("argv", "heavy"),
    [
        (["--help"], HEAVY),
        # A command's help lists the recipe's fields through transformers' HfArgumentParser, but needs no torch.
        (["distill", "--help"], ("torch", "matplotlib", "pyswarms", "optuna")),
    ],
)
def test_cli_help_loads_no_heavy_library(argv, heavy):
    code = (
        "import contextlib, io\n"
        "from hf_kd.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    try:\n        main({argv!r})\n    except SystemExit as e:\n        assert e.code in (0, None), e.code\n"
        "assert 'usage' in out.getvalue()\n"
    )
    loaded = _loaded_after(code)
    assert "hf_kd" in loaded
    assert loaded.isdisjoint(heavy), sorted(loaded & set(heavy))


PUBLIC_NAMES = {  # what `from hf_kd import ...` gave before the subpackages: every name must stay
    "DistillationCardData", "DistillationDataCollator", "DistillationPipelineConfig", "DistillationTrainer",
    "DistillationTrainingArguments", "__version__", "build_model_card", "cache_teacher_logits", "evaluate_model",
    "load_classification_dataset", "load_codiesp", "load_hoc", "make_compute_metrics", "run_pipeline", "run_search",
    "student_from_teacher", "tokenize_for_distillation", "write_model_card",
}  # fmt: skip


def test_every_public_name_still_imports_from_hf_kd_its_subpackage_and_its_module():
    import importlib

    import hf_kd
    from hf_kd.exports import module_exports

    assert PUBLIC_NAMES <= set(hf_kd.__all__)
    for name, subpackage in hf_kd._EXPORTS.items():
        home = module_exports(PACKAGE / subpackage)[name]  # the module that defines it: its old import path
        value = importlib.import_module(f"hf_kd.{subpackage}.{home}").__dict__[name]
        assert getattr(hf_kd, name) is value, name
        assert getattr(importlib.import_module(f"hf_kd.{subpackage}"), name) is value, name


MOVED = [  # (old module, new home, name): the renames of the second review round
    ("hf_kd.pipeline.evaluation", "hf_kd.pipeline.scoring", "evaluate_model"),
    ("hf_kd.pipeline.evaluation", "hf_kd.pipeline.scoring", "apply_gate"),
    ("hf_kd.pipeline.stage_models", "hf_kd.pipeline.students", "build_student"),
    ("hf_kd.pipeline.stage_models", "hf_kd.pipeline.stages.general_distillation", "run_general_distillation"),
    ("hf_kd.pipeline.stage_models", "hf_kd.pipeline.stages.evaluation", "export_student"),
    ("hf_kd.pipeline.run_report", "hf_kd.pipeline.push", "push_student"),
    ("hf_kd.training.distributed", "hf_kd.processes", "is_main_process"),
    ("hf_kd.training.distributed", "hf_kd.processes", "leave_process_group"),
    ("hf_kd.data.alignment", "hf_kd.data.word_pooling", "aligned_word_states"),
    ("hf_kd.data.alignment", "hf_kd.data.tokenizer_identity", "same_tokenization"),
    ("hf_kd.evaluation.task_metrics", "hf_kd.evaluation.tasks", "split_metrics"),
    # deprecated in place: still importable from their module and their subpackage
    ("hf_kd.evaluation.task_metrics", "hf_kd.evaluation.task_metrics", "trainer_compute_metrics"),
    ("hf_kd.reporting.card_data", "hf_kd.reporting.card_data", "trainer_card_data"),
]


@pytest.mark.parametrize(("old", "new", "name"), MOVED)
def test_a_moved_name_still_imports_from_its_old_module_and_its_old_subpackage(old, new, name):
    import importlib

    value = getattr(importlib.import_module(new), name)
    assert getattr(importlib.import_module(old), name) is value
    assert getattr(importlib.import_module(old.rsplit(".", 1)[0]), name) is value  # `from hf_kd.training import ...`


@pytest.mark.parametrize("subpackage", sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
def test_each_subpackage_re_exports_every_public_name_its_modules_define(subpackage):
    import importlib

    from hf_kd.exports import module_exports

    package = importlib.import_module(f"hf_kd.{subpackage}")
    modules = sorted(p.stem for p in (PACKAGE / subpackage).glob("*.py") if p.name != "__init__.py")
    defined = {}
    for stem in modules:
        module = importlib.import_module(f"hf_kd.{subpackage}.{stem}")
        for name in module.__all__:  # its functions and classes (a constant does not say where it was defined)
            if getattr(module.__dict__[name], "__module__", None) == module.__name__:
                defined[name] = module.__dict__[name]
    assert set(package.__all__) == set(module_exports(PACKAGE / subpackage))
    assert set(defined) <= set(package.__all__)
    for name, value in defined.items():
        assert getattr(package, name) is value, f"hf_kd.{subpackage}.{name}"
    with pytest.raises(AttributeError, match="no_such_name"):
        package.no_such_name  # noqa: B018


def test_module_exports_names_the_defining_module_and_refuses_a_module_without_all(tmp_path):
    from hf_kd.exports import module_exports

    (tmp_path / "a.py").write_text("from .b import shared\n__all__ = ['mine', 'shared']\ndef mine(): ...\n")
    (tmp_path / "b.py").write_text("__all__ = ['shared', 'LIMIT']\nLIMIT: int = 3\ndef shared(): ...\n")
    assert module_exports(tmp_path) == {"mine": "a", "shared": "b", "LIMIT": "b"}
    # A module that defines nothing is an old path kept after a move: it is the home of the names it lists that no
    # module here defines (`moved`), not of those one does (`mine` stays a's).
    (tmp_path / "d.py").write_text("from .a import mine\nfrom ..other import moved\n__all__ = ['mine', 'moved']\n")
    assert module_exports(tmp_path) == {"mine": "a", "shared": "b", "LIMIT": "b", "moved": "d"}
    (tmp_path / "d.py").unlink()
    (tmp_path / "c.py").write_text("def loose(): ...\n")
    with pytest.raises(ValueError, match=r"c\.py has no `__all__`"):
        module_exports(tmp_path)
    (tmp_path / "c.py").write_text("__all__ = ['mine']\ndef mine(): ...\n")
    with pytest.raises(ValueError, match="'mine' is defined by both a.py and c.py"):
        module_exports(tmp_path)
