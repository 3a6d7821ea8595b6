"""Teacher-vs-student report: quality metrics, size, CPU latency, ratios, a markdown table, `report.json`/`report.md`.

Everything here works on numbers and names only. Latency is measured on synthetic token ids, and no function of this
module reads, stores or prints example text, so a report can be shared for a model trained on clinical notes.

Typical use:

```python
from hf_kd.evaluation.model_stats import measure_latency, model_size

teacher_side = {"metrics": teacher_metrics, **model_size(teacher), "latency": measure_latency(teacher, tokenizer)}
student_side = {"metrics": student_metrics, **model_size(student), "latency": measure_latency(student, tokenizer)}
report = build_report(teacher_side, student_side)
write_report(report, "out/report")
```
"""

from __future__ import annotations

import json
import math
import numbers
import statistics
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import torch

from ..constants import is_number
from ..data.leakage import leakage_message

__all__ = [
    "build_report",
    "format_table",
    "jsonable",
    "print_report",
    "quality_metrics",
    "write_report",
]

REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
# Keys that `Trainer.evaluate` adds next to the quality metrics; they are not compared.
_BOOKKEEPING_SUFFIXES = ("runtime", "samples_per_second", "steps_per_second", "model_preparation_time")
_BOOKKEEPING_KEYS = ("epoch",)


# ----------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------


def _is_bookkeeping(key: str) -> bool:
    return key in _BOOKKEEPING_KEYS or key.endswith(_BOOKKEEPING_SUFFIXES)


def quality_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """Numeric metrics, without the runtime/throughput/preparation-time/epoch entries `Trainer.evaluate` adds."""
    return {str(k): float(v) for k, v in (metrics or {}).items() if is_number(v) and not _is_bookkeeping(str(k))}


def _ratio(numerator: Any, denominator: Any) -> float | None:
    if not (is_number(numerator) and is_number(denominator)):
        return None
    numerator, denominator = float(numerator), float(denominator)
    if denominator == 0 or not (math.isfinite(numerator) and math.isfinite(denominator)):
        return None
    return numerator / denominator


def _latency_per_example(latency: Mapping[str, Any] | None) -> dict[str, float]:
    """`{batch size: ms per example}` from a `measure_latency` result (or its JSON round trip)."""
    if not latency:
        return {}
    per_batch = latency.get("per_batch_size", {})
    return {
        str(size): float(entry["ms_per_example"])
        for size, entry in per_batch.items()
        if isinstance(entry, Mapping) and is_number(entry.get("ms_per_example"))
    }


def _rounds_per_example(latency: Mapping[str, Any] | None) -> dict[str, list[float]]:
    """`{batch size: each round's ms per example}` from an [`~hf_kd.evaluation.model_stats.interleaved_latency`]
    result (empty for a single timing)."""
    per_batch = (latency or {}).get("per_batch_size", {})
    return {
        str(size): [float(v) for v in entry["rounds_ms_per_example"]]
        for size, entry in per_batch.items()
        if isinstance(entry, Mapping) and entry.get("rounds_ms_per_example")
    }


def _speedups(teacher: Mapping[str, Any] | None, side: Mapping[str, Any] | None) -> dict[str, tuple[Any, Any]]:
    """`{batch size: (speed-up, [min, max] or None)}`: teacher / side latency per example. Timed in interleaved
    rounds, it is the median of the rounds' ratios, with their range; else the ratio of the two medians."""
    t_latency, s_latency = _latency_per_example(teacher), _latency_per_example(side)
    t_rounds, s_rounds = _rounds_per_example(teacher), _rounds_per_example(side)
    out: dict[str, tuple[Any, Any]] = {}
    for size in t_latency:
        if size not in s_latency:
            continue
        pairs = list(zip(t_rounds.get(size, []), s_rounds.get(size, []), strict=False))
        ratios = [r for r in (_ratio(t, s) for t, s in pairs) if r is not None]
        if ratios and len(t_rounds[size]) == len(s_rounds[size]) == len(ratios):
            out[size] = (statistics.median(ratios), [min(ratios), max(ratios)])
        else:
            out[size] = (_ratio(t_latency[size], s_latency[size]), None)
    return out


def _check_side(side: Mapping[str, Any], name: str) -> dict[str, Any]:
    if not isinstance(side, Mapping):
        raise TypeError(f"`{name}` must be a dict with a `metrics` entry, got {type(side).__name__}.")
    metrics = side.get("metrics")
    if metrics is not None and not isinstance(metrics, Mapping):
        raise TypeError(f"`{name}['metrics']` must be a dict of metric values, got {type(metrics).__name__}.")
    for key in ("parameters", "size_mb"):
        value = side.get(key)
        if value is not None and not is_number(value):
            raise TypeError(f"`{name}['{key}']` must be a number, got {value!r}.")
    result = dict(side)
    result["metrics"] = quality_metrics(metrics)
    return result


def _ratios(teacher_side: Mapping[str, Any], side: Mapping[str, Any]) -> dict[str, Any]:
    t_metrics, s_metrics = teacher_side["metrics"], side["metrics"]
    speedups = _speedups(teacher_side.get("latency"), side.get("latency"))
    ratios = {
        "metrics": {key: _ratio(s_metrics[key], t_metrics[key]) for key in t_metrics if key in s_metrics},
        "parameters": _ratio(side.get("parameters"), teacher_side.get("parameters")),
        "size": _ratio(side.get("size_mb"), teacher_side.get("size_mb")),
        "speedup": {size: value for size, (value, _) in speedups.items()},
    }
    ranges = {size: spread for size, (_, spread) in speedups.items() if spread is not None}
    if ranges:
        ratios["speedup_min_max"] = ranges
    return ratios


def build_report(
    teacher: Mapping[str, Any],
    student: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    exported: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """
    The teacher-vs-student comparison: both sides as given, plus the student/teacher ratios.

    Args:
        teacher (`Mapping[str, Any]`):
            `{"metrics": {...}, "parameters": int, "size_mb": float, "latency": {...}}`, where `metrics` holds the
            evaluation metrics (non-numeric entries and the `*_runtime`, `*_per_second`, `*_model_preparation_time`
            and `epoch` entries of `Trainer.evaluate` are dropped), `parameters` and `size_mb` come from
            [`model_size`] and `latency` from [`measure_latency`]. Every entry but `metrics` may be left out; other
            entries are kept as they are.
        student (`Mapping[str, Any]`):
            The same for the student.
        extra (`Mapping[str, Any]`, *optional*):
            Anything else to record (task, dataset ids, hardware...), stored under `"extra"`. Never put example text
            here.
        exported (`Mapping[str, Any]`, *optional*):
            The same for the student's deployed export (`hf_kd.export.onnx`, timed with
            `hf_kd.export.onnx_classifier.onnx_latency`), with a `format` entry (e.g. `"ONNX int8"`).

    Returns:
        `dict[str, Any]`: `{"teacher", "student", "ratios", "extra"}` (and `"exported"`, `"exported_ratios"` when
        `exported` is given), where `ratios` holds `metrics` (student / teacher value for each metric both sides
        report), `parameters` and `size` (student / teacher), and `speedup` (teacher / student latency per example,
        keyed by batch size as a string; with latencies timed in interleaved rounds, the median of the rounds'
        ratios, and `speedup_min_max` their range); `exported_ratios` the same for the export against the teacher.
        A ratio whose denominator is missing, zero or not finite is `None`.
    """
    teacher_side, student_side = _check_side(teacher, "teacher"), _check_side(student, "student")
    report = {
        "teacher": teacher_side,
        "student": student_side,
        "ratios": _ratios(teacher_side, student_side),
        "extra": dict(extra or {}),
    }
    if exported is not None:
        exported_side = _check_side(exported, "exported")
        report.update({"exported": exported_side, "exported_ratios": _ratios(teacher_side, exported_side)})
    return report


def _cell(value: Any, kind: str = "metric") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "parameters":
        value = float(value)
        return f"{value / 1e6:.2f}M" if value >= 1e5 else f"{int(value):,}"
    if kind == "size":
        return f"{float(value):.1f}" if float(value) >= 10 else f"{float(value):.3g}"
    if kind == "latency":
        return f"{float(value):.2f}"
    if kind == "speedup":
        value, spread = value if isinstance(value, tuple) else (value, None)
        if value is None:
            return "–"
        return f"{float(value):.2f}×" + (f" ({float(spread[0]):.2f}–{float(spread[1]):.2f})" if spread else "")
    if kind == "ratio":
        return f"{float(value):.3f}"
    return f"{float(value):.4f}"


def _batch_order(size: str) -> tuple[int, str]:
    return (int(size), "") if str(size).isdigit() else (sys.maxsize, str(size))


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def format_table(report: Mapping[str, Any]) -> str:
    """
    The report as a markdown table: one row per metric, then parameters, size on disk, latency per example at each
    timed batch size and the speed-ups.

    Args:
        report (`Mapping[str, Any]`):
            A [`build_report`] result (or its JSON round trip).

    Returns:
        `str`: The markdown table (with a line on how latency was measured, when it was), ending with a newline.
    """
    table = "\n".join(_table_lines(report)) + "\n"
    return table + _latency_note(report) + _notes(report)


def _typical_length(report: Mapping[str, Any]) -> int | None:
    typical = report["student"].get("latency_typical") or report["teacher"].get("latency_typical")
    return typical.get("seq_len") if isinstance(typical, Mapping) else None


def _table_lines(report: Mapping[str, Any]) -> list[str]:
    """The table's lines: the header, one row per metric, parameters, size, latency per batch size, speed-ups."""
    teacher, student, ratios = report["teacher"], report["student"], report.get("ratios", {})
    exported, exported_ratios = report.get("exported"), report.get("exported_ratios", {})
    t_metrics, s_metrics = teacher.get("metrics", {}), student.get("metrics", {})
    e_metrics = exported.get("metrics", {}) if exported else {}
    header = "| | Teacher | Student | Student / teacher |"
    if exported:
        header += f" Student, {_escape(str(exported.get('format', 'exported')))} | Exported / teacher |"
    lines = [header, "|---|" + "---:|" * (5 if exported else 3)]

    def row(label: str, key: str, kind: str, ratio_kind: str = "ratio", always: bool = False) -> None:
        """One line: the teacher's and student's (and export's) value, and the ratios to the teacher."""

        def value(side: Mapping[str, Any] | None, side_ratios: Mapping[str, Any]) -> tuple[Any, Any]:
            if side is None:
                return None, None
            if key.startswith("metric:"):
                name = key[len("metric:") :]
                return side.get("metrics", {}).get(name), side_ratios.get("metrics", {}).get(name)
            if key.startswith("latency:"):
                _, field, size = key.split(":", 2)
                mine = _latency_per_example(side.get(field)).get(size)
                return mine, _ratio(mine, _latency_per_example(teacher.get(field)).get(size))
            if key.startswith("speedup:"):
                size = key[len("speedup:") :]
                speedup = side_ratios.get("speedup", {}).get(size)
                spread = side_ratios.get("speedup_min_max", {}).get(size)
                return None, (None if speedup is None else (speedup, spread))
            return side.get(key), side_ratios.get({"size_mb": "size"}.get(key, key))

        t = value(teacher, {})[0]
        s, s_ratio = value(student, ratios)
        cells = [_cell(t, kind), _cell(s, kind), _cell(s_ratio, ratio_kind)]
        shown = [t, s, s_ratio]
        if exported:
            e, e_ratio = value(exported, exported_ratios)
            cells += [_cell(e, kind), _cell(e_ratio, ratio_kind)]
            shown += [e, e_ratio]
        if always or any(v is not None for v in shown):
            lines.append(f"| {_escape(label)} | {' | '.join(cells)} |")

    keys = [*t_metrics, *(k for k in s_metrics if k not in t_metrics)]
    keys += [k for k in e_metrics if k not in keys]
    for key in keys:
        row(key, f"metric:{key}", "metric", always=True)
    row("Parameters", "parameters", "parameters")
    row("Size on disk (MB)", "size_mb", "size")
    sides = [teacher, student, *([exported] if exported else [])]
    sizes = {size for side in sides for size in _latency_per_example(side.get("latency"))}
    sizes |= {*ratios.get("speedup", {}), *exported_ratios.get("speedup", {})}
    sizes = sorted(sizes, key=_batch_order)
    typical_len = _typical_length(report)
    for size in sizes:
        row(f"Latency, batch {size} (ms/example)", f"latency:latency:{size}", "latency")
        if typical_len is not None:
            row(
                f"Latency at {typical_len} tokens, batch {size} (ms/example)",
                f"latency:latency_typical:{size}",
                "latency",
            )
    for size in sizes:
        row(f"Speed-up, batch {size} (teacher / student latency)", f"speedup:{size}", "metric", "speedup")
    return lines


def _latency_note(report: Mapping[str, Any]) -> str:
    """How the models were timed (device, threads, length, runs and rounds) and on which CPU."""
    teacher, student = report["teacher"], report["student"]
    typical_len = _typical_length(report)
    table = ""
    latency = student.get("latency") or teacher.get("latency")
    if isinstance(latency, Mapping) and "seq_len" in latency:
        table += (
            f"\nLatency: {latency.get('device', 'cpu')}, {latency.get('num_threads', '?')} thread(s), sequence length "
            f"{latency['seq_len']}, synthetic token ids, median of {latency.get('n_runs', '?')} runs"
            + (
                f" per round, {latency['rounds']} rounds interleaved across the models (the median round; "
                "speed-ups: the median of the rounds' ratios, their min–max in brackets).\n"
                if latency.get("rounds", 1) > 1
                else ".\n"
            )
        )
        cpu = latency.get("cpu")
        if isinstance(cpu, Mapping):
            features = ", ".join(cpu.get("features") or []) or "none of AVX2, AVX-512, VNNI, AMX"
            table += f"CPU: {cpu.get('model')}, {cpu.get('cpus')} logical CPUs ({features}).\n"
        if typical_len is not None:
            table += f"Also timed at {typical_len} tokens, the data's median length (the rows that name it).\n"
    return table


def _notes(report: Mapping[str, Any]) -> str:
    """The notes under the table: unknown-token rates, leakage counts, the figures' label legend, the export's
    timing."""
    exported = report.get("exported")
    table = ""
    extra = report.get("extra", {})
    rates = extra.get("unknown_token_rate") if isinstance(extra, Mapping) else None
    if rates:
        parts = []
        for side, values in rates.items():
            shown = [
                f"{split} {100 * r:.1f} %" for split, r in values.items() if split != "tokenizer" and r is not None
            ]
            parts.append(f"{side} tokenizer: {', '.join(shown) or 'no text'}")
        table += f"Unknown-token rate ({'; '.join(parts)}).\n"
    leakage = extra.get("leakage") if isinstance(extra, Mapping) else None
    if leakage:
        line = leakage_message(leakage)  # the run's own log line, the one wording of the counts
        table += f"{line[0].upper()}{line[1:]} Texts are compared after folding case, whitespace and punctuation.\n"
    legend = extra.get("label_legend") if isinstance(extra, Mapping) else None
    if legend:
        table += "\nLabel numbers in the figures:\n\n| number | label |\n|---:|---|\n"
        table += "".join(f"| {i} | {_escape(str(name))} |\n" for i, name in enumerate(legend))
    if exported and exported.get("latency"):
        table += "The exported student is timed through onnxruntime, on batches of the same shapes.\n"
    return table


def jsonable(value: Any) -> Any:
    """
    A JSON-safe copy: numpy/torch scalars become Python numbers, arrays lists, NaN/inf `None`, paths strings.

    Args:
        value (`Any`):
            Nested mappings, sequences and numbers.

    Returns:
        `Any`: The copy.

    Raises:
        `TypeError`: For a value of another type.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "shape", None) == ():
        value = value.item()
    elif hasattr(value, "tolist") and hasattr(value, "dtype"):
        return jsonable(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Cannot write a value of type {type(value).__name__} to report.json.")


def write_report(report: Mapping[str, Any], output_dir: str | Path) -> dict[str, Path]:
    """
    Write the report as `report.json` (everything, NaN written as `null`) and `report.md` (the [`format_table`]
    table) into `output_dir`, creating it if needed.

    Args:
        report (`Mapping[str, Any]`):
            A [`build_report`] result.
        output_dir (`str` or `Path`):
            Destination folder.

    Returns:
        `dict[str, Path]`: The paths written, under `"json"` and `"markdown"`.
    """
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / REPORT_JSON, folder / REPORT_MARKDOWN
    json_path.write_text(json.dumps(jsonable(report), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    md_path.write_text("# Teacher vs student\n\n" + format_table(report), encoding="utf-8")
    return {"json": json_path, "markdown": md_path}


def print_report(report: Mapping[str, Any], file: TextIO | None = None) -> None:
    """
    Print the [`format_table`] table.

    Args:
        report (`Mapping[str, Any]`):
            A [`build_report`] result.
        file (`TextIO`, *optional*):
            Stream to print to. Defaults to `sys.stdout`.
    """
    print(format_table(report), file=file or sys.stdout)
