"""The benchmark scripts share one start (`benchmarks/_common.py`): their parser and their quiet logs.

Read from the source with `ast` (no script is run), and `benchmark_parser` called directly.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# gpu_check.py runs alone on a lent GPU machine, from the repository root, without the benchmarks' helpers.
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if p.name not in ("_common.py", "gpu_check.py"))


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location("_bench_common", BENCHMARKS / "_common.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == name or getattr(node.func, "attr", None) == name)
    ]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_each_benchmark_builds_its_parser_with_the_shared_one_named_after_itself(script):
    tree = ast.parse(script.read_text())
    assert _calls(tree, "ArgumentParser") == [], f"{script.name} builds its own ArgumentParser"
    assert _calls(tree, "set_verbosity_error") == [], f"{script.name} quiets transformers itself (use quiet_logs)"
    (call,) = _calls(tree, "benchmark_parser")
    assert isinstance(call.args[1], ast.Constant) and call.args[1].value == script.stem
    # Its results go where --name and --out say: no results file name is written in the call.
    for write in _calls(tree, "write_results"):
        assert not isinstance(write.args[0], ast.Constant), f"{script.name} writes a fixed results name"
        assert len(write.args) == 4, f"{script.name} does not pass --out to write_results"


def test_benchmark_parser_adds_the_named_shared_arguments_with_the_scripts_defaults(common):
    parser = common.benchmark_parser(
        "First line.\n\nMore.", "deploy", recipe="recipes/hoc/deploy_offline.yaml", seeds="3"
    )
    cli, rest = parser.parse_known_args(["--seeds", "42,43", "--student.alpha", "0.7"])
    assert parser.description == "First line."
    assert (cli.seeds, cli.name, cli.out) == ("42,43", "deploy", None)
    assert Path(cli.recipe) == common.ROOT / "recipes" / "hoc" / "deploy_offline.yaml"
    assert rest == ["--student.alpha", "0.7"]  # recipe overrides are left to the recipe parser
    assert not hasattr(cli, "threads")  # only the arguments the script names
    threads = common.benchmark_parser(None, "inference", threads=None).parse_args(["--threads", "3"])
    assert threads.threads == 3


def test_benchmark_parser_refuses_an_unknown_shared_argument_by_name(common):
    with pytest.raises(ValueError, match="'sead'"):
        common.benchmark_parser(None, "x", sead="3")


def test_quiet_logs_sets_hf_kds_level(common):
    logger = logging.getLogger("hf_kd")
    before = logger.level
    try:
        common.quiet_logs(logging.ERROR)
        assert logger.level == logging.ERROR
    finally:
        logger.setLevel(before)
