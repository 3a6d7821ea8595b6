"""MkDocs hook: turn the transformers-style cross-references of the docstrings into links.

The docstrings follow the transformers convention: [`~hf_kd.recipe.config.RecipeParser`] (shown as `RecipeParser`),
[`DistillationPipelineConfig`] (a name of the same module) or [`~transformers.Trainer`]. mkdocstrings leaves them as
`[<code>...</code>]`, or, in the type column of an `Args:` table, as code text (``[`...`]``); this hook resolves each
name by importing it and links it to the API page of the module that defines it (mkdocstrings' anchors are the
objects' dotted paths), or to the transformers documentation. A name that does not resolve is shown as plain code.
"""

from __future__ import annotations

import importlib
import posixpath
import re
from typing import Any

_REFERENCE = re.compile(r"\[<code>(~?)([A-Za-z_][\w.]*)</code>\]")
# In the type column of an `Args:` table a reference arrives as code text, alone or among other words:
# <code>[`~hf_kd.X`]</code>, <code>`PreTrainedModel` or [`~hf_kd.Y`]</code>.
_TYPE_CELL = re.compile(r"<code>([^<]*\[`[^<]*)</code>")
_TYPE_REFERENCE = re.compile(r"\[`(~?)([A-Za-z_][\w.]*)`\]")
_TRANSFORMERS = "https://huggingface.co/docs/transformers/main/en/main_classes/"
_TRANSFORMERS_PAGES = {"Trainer": "trainer", "TrainingArguments": "trainer", "TrainerCallback": "callback"}
_API_MODULES = {"search"}  # packages documented on one page


def _resolve(dotted: str, default_module: str) -> tuple[str, str] | None:
    """The (module, qualified name) that defines `dotted`, looked up from `default_module`, then from `hf_kd`."""
    for base in (default_module, "hf_kd", ""):
        parts = (f"{base}.{dotted}" if base else dotted).split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj: Any = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attribute in parts[cut:]:
                    obj = getattr(obj, attribute)
            except AttributeError:
                break
            module = getattr(obj, "__module__", None) or ".".join(parts[:cut])
            qualname = getattr(obj, "__qualname__", None)
            if qualname is None or not isinstance(module, str):
                return ".".join(parts[:cut]), ".".join(parts[cut:])
            return module, qualname
    return None


def _page_of(module: str) -> str | None:
    """The API page of a module: `api/<subpackage>/<module>/`, `api/<module>/` on top, `api/search/` for search."""
    if not module.startswith("hf_kd.") and module != "hf_kd":
        return None
    parts = module.split(".")[1:]
    if not parts:
        return "api/index/"
    if parts[0] in _API_MODULES or len(parts) == 1:
        return f"api/{parts[0]}/"
    return f"api/{parts[0]}/{parts[1]}/"


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Replace every `[<code>name</code>]` of a page by a link, or by the name in code."""
    source = page.file.src_uri
    stem = posixpath.splitext(source)[0].removeprefix("api/").replace("/", ".")
    default = f"hf_kd.{stem}" if source.startswith("api/") and stem != "index" else "hf_kd"

    def link(match: re.Match) -> str:
        short, dotted = match.group(1) == "~", match.group(2)
        shown = dotted.rsplit(".", 1)[-1] if short else dotted
        code = f"<code>{shown}</code>"
        head = dotted.split(".")[0]
        if head == "transformers" and dotted.split(".")[-1] in _TRANSFORMERS_PAGES:
            name = dotted.split(".")[-1]
            return f'<a href="{_TRANSFORMERS}{_TRANSFORMERS_PAGES[name]}#transformers.{name}">{code}</a>'
        found = _resolve(dotted, default)
        if found is None:
            return code
        module, qualname = found
        target = _page_of(module)
        if target is None:
            return code
        href = posixpath.relpath(target, page.url or ".") + "/"
        return f'<a href="{href}#{module}.{qualname}">{code}</a>' if qualname else f'<a href="{href}">{code}</a>'

    def words(text: str) -> str:
        if "`" in text:
            return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
        return f"<code>{text}</code>" if text.strip() else text

    def cell(match: re.Match) -> str:
        pieces, at = [], 0
        text = match.group(1)
        for ref in _TYPE_REFERENCE.finditer(text):
            pieces += [words(text[at : ref.start()]), link(ref)]
            at = ref.end()
        return "".join([*pieces, words(text[at:])])

    return _TYPE_CELL.sub(cell, _REFERENCE.sub(link, html))
