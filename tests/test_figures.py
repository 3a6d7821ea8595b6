"""Every figure in the tables of README.md, docs/src/ and recipes/*/README.md against its committed results file.

The map is `benchmarks/figures.yaml` (its header says how it is read). A table of figures that the map does not name
fails here, so that a new table cannot be published without its results key.
"""

from __future__ import annotations

import json
import re
import statistics
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FIGURES = yaml.safe_load((ROOT / "benchmarks" / "figures.yaml").read_text())
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs" / "src").rglob("*.md")), *sorted(ROOT.glob("recipes/*/README.md"))]


def cells(line: str) -> list[str]:
    """The cells of a Markdown table line, stripped of bold marks and spaces."""
    return [c.strip().replace("**", "").strip() for c in line.strip().strip("|").split("|")]


def tables(path: Path) -> list[tuple[int, str, list[str]]]:
    """`(line number, header line, body lines)` of each Markdown table in a file."""
    lines, found, i = path.read_text().splitlines(), [], 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|\s*:?-", lines[i + 1]):
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            found.append((i + 1, lines[i], lines[i + 2 : j]))
            i = j
        else:
            i += 1
    return found


def entries() -> list[tuple[str, dict[str, Any]]]:
    return [(kind, entry) for kind in ("traced", "quoted", "text") for entry in FIGURES.get(kind) or []]


def matching(path: Path, header: str) -> list[tuple[str, dict[str, Any]]]:
    rel = str(path.relative_to(ROOT))
    return [(k, e) for k, e in entries() if rel in e["docs"] and header.startswith(e["header"])]


@cache
def results(name: str) -> Any:
    return json.loads((RESULTS / name).read_text())


def lookup(data: Any, path: str) -> Any:
    """The value at `path` ("/"-joined keys, list indices, or `name[field=value;...]`: the list's items whose fields
    have those values, `*` for any)."""
    for part in path.split("/"):
        if data is None:  # a figure the run did not measure (shown as "–")
            return None
        where = re.fullmatch(r"(.*)\[(.*)\]", part)
        if where:
            name, conditions = where.groups()
            wanted = [c.split("=", 1) for c in conditions.split(";")]
            data = [item for item in data[name] if all(v == "*" or str(item.get(f)) == v for f, v in wanted)]
        else:
            data = data[int(part)] if isinstance(data, list) else data[part]
    return data


REDUCE = {"max": max, "min": min, "mean": statistics.mean, "median": statistics.median}


def column_value(entry: dict[str, Any], row: str, spec: dict[str, Any]) -> Any:
    """A column's raw value for a row: one number, or a list of them (a row that is a list of runs, or a list key)."""
    name, row = row.split(":", 1) if re.match(r"[\w.-]+\.json:", row) else (entry["results"], row)
    data = results(name)
    if "path" in spec:
        found = lookup(data, spec["path"].format(row=row))
        if "key_template" not in spec and "key" not in spec:
            return found
        key = spec["key_template"].format(row=row) if "key_template" in spec else spec["key"]
    else:
        found, key = lookup(data, row), spec["key"]
    if found is None:
        return None
    return [item[key] for item in found] if isinstance(found, list) else found[key]


def expected(entry: dict[str, Any], label: str, spec: dict[str, Any]) -> str | None:
    """The cell that the results give for a row and a column spec (`None` for a column marked `unchecked`). A spec's
    `by_row` entry overrides its fields for one row; `keys` puts several keys in one cell, each reduced by its item of
    `reduce` (a list) and formatted in turn."""
    spec = {**spec, **spec.get("by_row", {}).get(label, {})}
    if "unchecked" in spec:
        return None
    if "keys" in spec:
        reduces = spec.get("reduce") or ["mean"] * len(spec["keys"])
        numbers: list[float] = []
        for key, how in zip(spec["keys"], reduces, strict=True):
            values = column_value(entry, entry["rows"][label], {**spec, "key": key})
            values = values if isinstance(values, list) else [values]
            if how == "mean_std":
                numbers += [statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0]
            else:
                numbers.append(REDUCE[how](values))
        return spec["format"].format(*(n * spec.get("scale", 1) for n in numbers))
    value, scale, reduce = column_value(entry, entry["rows"][label], spec), spec.get("scale", 1), spec.get("reduce")
    if value is None:
        return "–"
    if "items" in spec:  # several items of one list in one cell (e.g. a mean and its std)
        return spec["format"].format(*(value[i] * scale for i in spec["items"]))
    if spec.get("range"):
        return spec["format"].format(min(value) * scale, max(value) * scale)
    if spec.get("join"):
        return spec["join"].join(spec["format"].format(v * scale) for v in value)
    if reduce == "mean_std":
        spread = statistics.stdev(value) if len(value) > 1 else 0.0
        return spec["format"].format(statistics.mean(value) * scale, spread * scale)
    if reduce:
        value = REDUCE[reduce](value)
    if "gap_from" in spec:  # the share of the gap from one value of the row to another that this value closes
        ends = []
        for end in ("gap_from", "gap_to"):
            other = {k: v for k, v in {**spec, **spec[end]}.items() if k not in ("gap_from", "gap_to")}
            found = column_value(entry, entry["rows"][label], other)
            ends.append(REDUCE[reduce](found) if reduce else found)
        value = (value - ends[0]) / (ends[1] - ends[0])
    if "minus" in spec:  # a difference between two results values of the row (e.g. int8 − fp32)
        other = column_value(
            entry, entry["rows"][label], {k: v for k, v in {**spec, **spec["minus"]}.items() if k != "minus"}
        )
        value = value - (REDUCE[reduce](other) if reduce else other)
    if "over" in spec:  # a ratio of two results values of the row (e.g. fused ONNX speed-up over PyTorch's)
        other = column_value(
            entry, entry["rows"][label], {k: v for k, v in {**spec, **spec["over"]}.items() if k != "over"}
        )
        value = value / (REDUCE[reduce](other) if reduce else other)
    if "divide_by" in spec:
        other = column_value(entry, entry["rows"][spec["divide_by"]], spec)
        value = value / (REDUCE[reduce](other) if reduce else other)
    return spec["format"].format(value * scale)


def traced_cases() -> list[tuple[str, int, str, str, str, str]]:
    cases = []
    for _, entry in [(k, e) for k, e in entries() if k == "traced"]:
        for doc in entry["docs"]:
            for line, header, body in tables(ROOT / doc):
                if not header.startswith(entry["header"]):
                    continue
                names = cells(header)
                for row in body:
                    values = cells(row)
                    label = values[0]
                    for name, value in zip(names[1:], values[1:], strict=True):
                        if name in entry["columns"]:
                            want = expected(entry, label, entry["columns"][name])
                            if want is not None:
                                cases.append((doc, line, label, name, value, want))
    return cases


# A figure in a prose cell: a decimal number, or a number followed by % or ×.
SIGN = r"(?:(?<![\w.])[+−-])?"  # a sign, not the dash of a range (82-87 %)
FIGURE = re.compile(SIGN + r"\d[\d,]*\.\d+(?:\s?[%×])?|" + SIGN + r"\d[\d,]*\s?[%×]")


def figure_token(text: str) -> str:
    """A figure as quoted, without its unit, spaces or plus sign (`+0.49 %` and `0.49` are one figure)."""
    return re.sub(r"[\s%×+]", "", text).replace("−", "-")


@cache
def traced_figures() -> frozenset[str]:
    """The figures of every traced cell (each one checked against its results value by the last test)."""
    return frozenset(figure_token(t) for case in traced_cases() for t in FIGURE.findall(case[4]))


def quoted_cases() -> list[tuple[str, int, str, str]]:
    """`(doc, line, row, figure)` for every figure in the cells (after the first column) of a `quoted` table."""
    cases = []
    for _, entry in [(k, e) for k, e in entries() if k == "quoted"]:
        for doc in entry["docs"]:
            for line, header, body in tables(ROOT / doc):
                if header.startswith(entry["header"]):
                    for row in body:
                        values = cells(row)
                        cases += [(doc, line, values[0], t) for cell in values[1:] for t in FIGURE.findall(cell)]
    return cases


def quoted_value(entry: dict[str, Any], figure: str) -> str | None:
    """What a `quoted` entry's `figures` map gives for a figure (a spec on a results file, as a traced column's), or
    None when the map does not name it."""
    spec = (entry.get("figures") or {}).get(figure)
    if spec is None:
        return None
    return expected({"results": spec["results"], "rows": {figure: spec.get("row", "")}}, figure, spec)


@pytest.mark.parametrize(("doc", "line", "row", "figure"), quoted_cases())
def test_a_quoted_figure_is_a_traced_figure_or_its_results_value(doc, line, row, figure):
    entry = next(e for k, e in matching(ROOT / doc, tables_header(ROOT / doc, line)) if k == "quoted")
    if figure_token(figure) in traced_figures() or figure in (entry.get("settings") or []):
        return
    value = quoted_value(entry, figure)
    assert value is not None, (
        f"{doc}:{line} row {row!r} quotes {figure}: no traced table shows it and benchmarks/figures.yaml names no "
        "results value or setting for it"
    )
    assert figure_token(figure) == figure_token(value), f"{doc}:{line} row {row!r}: {figure}, the results say {value}"


def test_every_mapped_quoted_figure_is_still_quoted():
    """A figure of a `figures` map or `settings` list that its table no longer shows (an edited figure) fails."""
    for _, entry in [(k, e) for k, e in entries() if k == "quoted"]:
        shown = {
            figure
            for doc, line, _, figure in quoted_cases()
            if doc in entry["docs"] and tables_header(ROOT / doc, line).startswith(entry["header"])
        }
        for figure in [*(entry.get("figures") or {}), *(entry.get("settings") or [])]:
            assert figure in shown, (
                f"{entry['header']}: benchmarks/figures.yaml maps {figure}, the table does not show it"
            )


def tables_header(path: Path, line: int) -> str:
    return next(header for number, header, _ in tables(path) if number == line)


def test_every_table_of_figures_is_mapped_once():
    unmapped, doubled = [], []
    for path in DOCS:
        for line, header, body in tables(path):
            found = matching(path, header)
            if len(found) > 1:
                doubled.append(f"{path.relative_to(ROOT)}:{line}")
            if not found and any(re.search(r"\d", c) for row in body for c in cells(row)[1:]):
                unmapped.append(f"{path.relative_to(ROOT)}:{line} {header[:80]}")
    assert not doubled, f"tables matched by more than one entry of benchmarks/figures.yaml: {doubled}"
    assert not unmapped, f"tables of figures missing from benchmarks/figures.yaml: {unmapped}"


def test_every_map_entry_names_a_table_a_committed_script_and_results_file():
    for kind, entry in entries():
        for doc in entry["docs"]:
            headers = [h for _, h, _ in tables(ROOT / doc)]
            assert any(h.startswith(entry["header"]) for h in headers), f"{kind}: no table {entry['header']} in {doc}"
        if kind == "traced":
            assert (ROOT / entry["script"]).is_file() and (RESULTS / entry["results"]).is_file(), entry["results"]
            written = results(entry["results"])  # by the script it names, or (older files) under its name
            stem = Path(entry["script"]).stem
            if written.get("script"):
                assert written["script"] == Path(entry["script"]).name, entry["results"]
            else:  # an older file: named after its script, or by the `--name` it was run with (in its settings)
                named = (
                    written["benchmark"] == (written.get("settings") or {}).get("name") == Path(entry["results"]).stem
                )
                assert named or written["benchmark"] == stem or written["benchmark"].startswith(f"{stem}_"), entry[
                    "results"
                ]


def test_every_row_and_figure_column_of_a_traced_table_is_mapped():
    for _, entry in [(k, e) for k, e in entries() if k == "traced"]:
        for doc in entry["docs"]:
            for _, header, body in tables(ROOT / doc):
                if header.startswith(entry["header"]):
                    for row in body:
                        label, values = cells(row)[0], cells(row)
                        assert label in entry["rows"], f"{doc}: row {label!r} has no results path"
                        for name, value in zip(cells(header)[1:], values[1:], strict=True):
                            if re.search(r"\d", value):
                                assert name in entry["columns"], f"{doc}: column {name!r} has no results key"


@pytest.mark.parametrize(("doc", "line", "row", "column", "shown", "value"), traced_cases())
def test_a_published_figure_equals_its_results_value(doc, line, row, column, shown, value):
    assert shown == value, f"{doc}:{line} row {row!r}, column {column!r}: shows {shown}, the results say {value}"
