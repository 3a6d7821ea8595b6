"""The docs hook turns transformers-style cross-references into links, in prose and in the `Args:` type column."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

HOOKS = Path(__file__).resolve().parents[1] / "docs" / "hooks.py"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", HOOKS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _page(src_uri: str, url: str):
    return SimpleNamespace(file=SimpleNamespace(src_uri=src_uri), url=url)


def test_prose_reference_links_to_the_defining_module():
    html = _hooks().on_page_content(
        "see [<code>~hf_kd.recipe.config.RecipeParser</code>].", _page("api/cli.md", "api/cli/"), None, None
    )
    assert html == 'see <a href="../recipe/config/#hf_kd.recipe.config.RecipeParser"><code>RecipeParser</code></a>.'


def test_type_column_references_are_linked_and_other_words_stay_code():
    hooks = _hooks()
    page = _page("api/pipeline/evaluation.md", "api/pipeline/evaluation/")
    alone = hooks.on_page_content("<code>[`~hf_kd.recipe.config.DistillationPipelineConfig`]</code>", page, None, None)
    target = "../../recipe/config/#hf_kd.recipe.config.DistillationPipelineConfig"
    assert alone == f'<a href="{target}"><code>DistillationPipelineConfig</code></a>'
    mixed = hooks.on_page_content(
        "<code>`PreTrainedModel` or [`~hf_kd.export.onnx_classifier.OnnxClassifier`]</code>", page, None, None
    )
    assert mixed == (
        "<code>PreTrainedModel</code> or "
        '<a href="../../export/onnx_classifier/#hf_kd.export.onnx_classifier.OnnxClassifier">'
        "<code>OnnxClassifier</code></a>"
    )


def test_transformers_reference_links_to_its_docs_and_unknown_names_stay_code():
    hooks = _hooks()
    page = _page("api/training/distillation_trainer.md", "api/training/distillation_trainer/")
    html = hooks.on_page_content("[<code>~transformers.Trainer</code>] [<code>NoSuchName</code>]", page, None, None)
    assert html == (
        '<a href="https://huggingface.co/docs/transformers/main/en/main_classes/trainer#transformers.Trainer">'
        "<code>Trainer</code></a> <code>NoSuchName</code>"
    )
    untouched = "<code>plain_code</code> and <code>[1, 2]</code>"
    assert hooks.on_page_content(untouched, page, None, None) == untouched


def test_every_test_the_guarantees_page_names_exists():
    import re

    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "src" / "guarantees.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:\w+/)?test_\w+\.py)::(test_\w+)`", page))
    assert len(named) >= 25
    for file, test in sorted(named):
        source = (root / "tests" / file).read_text(encoding="utf-8")
        assert f"def {test}(" in source, f"{file}::{test}"
