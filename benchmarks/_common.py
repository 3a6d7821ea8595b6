"""Helpers shared by the benchmark scripts: their common arguments and quiet logs, the machine description, the
result writing, the pipeline arms and the interleaved timing.

Every script starts the same way:

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import benchmark_parser, quiet_logs, ...

    parser = benchmark_parser(__doc__, "deploy", recipe="recipes/hoc/deploy_offline.yaml", seeds="3", ...)
    cli, rest = parser.parse_known_args()   # rest: `--section.field VALUE` recipe overrides
    quiet_logs()
    ...
    write_results(cli.name, payload, markdown, cli.out)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as hf_logging

from hf_kd.evaluation.model_stats import cpu_description

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]

# The arguments several benchmarks take: name -> (flag, argparse keywords). A script names the ones it takes, with
# its default, in `benchmark_parser`.
SHARED_ARGUMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "recipe": ("--recipe", {"help": "the recipe (YAML) every run starts from"}),
    "seeds": ("--seeds", {"help": "count (3 -> 42,43,44) or comma list"}),
    "output_dir": ("--output_dir", {"help": "folder of the pipeline runs (they resume from their markers)"}),
    "threads": ("--threads", {"type": int, "help": "intra-op threads (none: torch's default)"}),
    "rounds": ("--rounds", {"type": int, "help": "interleaved timing rounds (the median is kept)"}),
    "seq_len": ("--seq_len", {"type": int, "help": "tokens per timed example"}),
}


def benchmark_parser(doc: str | None, name: str, **defaults: Any) -> argparse.ArgumentParser:
    """
    The parser every benchmark starts from: its description (the docstring's first line), `--name` (results file
    names, default `name`), `--out` (results folder, default `benchmarks/results`), and the shared arguments given in
    `defaults` with their defaults (`recipe` is relative to the repository root).

    Args:
        doc (`str`, *optional*):
            The script's docstring.
        name (`str`):
            The default results file name (`<name>.json`, `<name>.md`).
        **defaults:
            Shared argument (a key of `SHARED_ARGUMENTS`) -> its default in this script.

    Returns:
        `argparse.ArgumentParser`: The parser; the script adds its own arguments.
    """
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0] if doc else None)
    for key, default in defaults.items():
        if key not in SHARED_ARGUMENTS:
            raise ValueError(f"benchmark_parser: unknown shared argument {key!r}; known: {sorted(SHARED_ARGUMENTS)}")
        flag, spec = SHARED_ARGUMENTS[key]
        parser.add_argument(flag, default=str(ROOT / default) if key == "recipe" else default, **spec)
    parser.add_argument("--name", default=name, help="results file names (<name>.json and <name>.md)")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    return parser


def quiet_logs(level: int = logging.WARNING) -> None:
    """transformers' logs at errors only and hf_kd's from `level` up, so that a benchmark prints its table."""
    hf_logging.set_verbosity_error()
    logging.getLogger("hf_kd").setLevel(level)


def machine() -> dict[str, Any]:
    """Describe the machine the benchmark ran on (no host names, no user names)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except Exception:  # pragma: no cover
        pass
    cpu = cpu_description()  # the product's own record of the CPU (reports, hf_kd_export.json)
    info["cpu_model"], info["cpu_features"] = cpu["model"], cpu["features"] or []
    try:
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def machine_line(info: dict[str, Any]) -> str:
    features = f" ({', '.join(info['cpu_features'])})" if info.get("cpu_features") else ""
    return (
        f"{info.get('cpu_model', info['processor'])}{features}, {info['cpu_count']} CPUs, torch {info['torch']} with "
        f"{info['torch_threads']} threads, {info['platform']}"
    )


def write_results(
    name: str, payload: dict[str, Any], markdown: str, out_dir: str | Path | None = None
) -> tuple[Path, Path]:
    """Write `<name>.json` (with the date) and `<name>.md` to `out_dir` (default `benchmarks/results`), print the
    table and where it went."""
    out = Path(out_dir) if out_dir else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    import __main__

    script = Path(getattr(__main__, "__file__", "") or "").name or None  # the benchmark script that wrote it
    payload = {"benchmark": name, "script": script, "date": _dt.date.today().isoformat(), **payload}
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    print(markdown)
    print("wrote", json_path, md_path)
    return json_path, md_path


class PeakRSS:
    """Peak resident set size of this process while the block runs, sampled every `interval` seconds.

    Uses psutil when installed; without it, falls back to `resource.getrusage` (the process-wide high-water mark, which
    only ever grows, so per-arm figures are then upper bounds).
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self.start = 0
        self._stop = threading.Event()
        try:
            import psutil

            self._proc = psutil.Process()
        except ImportError:  # pragma: no cover
            self._proc = None

    def _rss(self) -> int:
        if self._proc is not None:
            return self._proc.memory_info().rss
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = self._rss()
        self.peak = self.start
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def peak_mb(self) -> float:
        return self.peak / 1e6

    @property
    def delta_mb(self) -> float:
        return (self.peak - self.start) / 1e6


def parse_seeds(value: str) -> list[int]:
    """`"3"` -> `[42, 43, 44]`; `"1,7"` -> `[1, 7]`."""
    if "," in value:
        return [int(v) for v in value.split(",") if v.strip()]
    return [42 + i for i in range(int(value))]


def _scores(report: dict[str, Any], side: str, metric: str) -> dict[str, float]:
    """`validation` / `test`: the `metric`; and `<split>_<name>` for every metric of the report's side."""
    metrics = report[side]["metrics"]
    out = {s: float(metrics[f"{s}_{metric}"]) for s in ("validation", "test") if f"{s}_{metric}" in metrics}
    out.update({k: float(v) for k, v in metrics.items() if isinstance(v, int | float)})
    return out


def _train_seconds(output_dir: Path, stage: str) -> float:
    # A stage that did not train (a given, already fine-tuned teacher) has no time.
    return float(json.loads((output_dir / stage / "DONE.json").read_text()).get("train_seconds", float("nan")))


def teacher_model(run_dir: Path) -> str:
    """The teacher a pipeline run distilled from: its fine-tuned teacher, or the given one when stage 1 skipped."""
    return str(json.loads((Path(run_dir) / "teacher" / "DONE.json").read_text())["model"])


def run_student_arms(
    base: Any, arms: dict[str, Any], seeds: list[int], metric: str, output_dir: Path, reference: str
) -> list[dict[str, Any]]:
    """Run the pipeline once per seed as `base` (the `reference` arm, which also gives the `teacher` row), then once
    per other arm with `base.student` replaced by `arms[name]` (a `StudentConfig`, or a dict of recipe sections to
    replace, e.g. `{"student": ..., "data": ...}`) and the teacher fine-tuned in the first run.

    Returns one row per seed and arm: `seed`, `arm`, `train_seconds` and the `metric` on `validation` / `test`.
    """
    import dataclasses

    from hf_kd.pipeline.run import run_pipeline

    rows: list[dict[str, Any]] = []
    for seed in seeds:
        root = Path(output_dir) / f"seed{seed}"
        first = root / reference
        config = dataclasses.replace(base, output_dir=str(first), seed=seed)
        run_pipeline(config)
        report = json.loads((first / "report.json").read_text())
        rows.append(
            {
                "seed": seed,
                "arm": "teacher",
                "train_seconds": _train_seconds(first, "teacher"),
                **_scores(report, "teacher", metric),
            }
        )
        rows.append(
            {
                "seed": seed,
                "arm": reference,
                "train_seconds": _train_seconds(first, "student"),
                **_scores(report, "student", metric),
            }
        )
        teacher = dataclasses.replace(config.teacher, model=teacher_model(first))
        evaluation = dataclasses.replace(config.evaluation, latency=False, plots=False, model_card=False)
        for arm, change in arms.items():
            out = root / arm
            sections = change if isinstance(change, dict) else {"student": change}
            run_pipeline(
                dataclasses.replace(config, output_dir=str(out), teacher=teacher, evaluation=evaluation, **sections)
            )
            report = json.loads((out / "report.json").read_text())
            rows.append(
                {
                    "seed": seed,
                    "arm": arm,
                    "train_seconds": _train_seconds(out, "student"),
                    **_scores(report, "student", metric),
                }
            )
        for row in rows[-len(arms) - 2 :]:
            print(f"[bench] seed {seed} {row['arm']}: validation {metric} {row.get('validation', float('nan')):.4f}")
    return rows


def arms_table(rows: list[dict[str, Any]], order: list[str], metric: str) -> list[str]:
    """Markdown table rows (mean ± std over seeds) of `run_student_arms`' output, in `order`."""
    import statistics

    def agg(arm: str, key: str) -> tuple[float, float] | None:
        values = [r[key] for r in rows if r["arm"] == arm and key in r]
        if not values:
            return None
        return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    teacher = agg("teacher", "validation")
    lines = [
        f"| model | validation {metric} | test {metric} | % of teacher (validation) | train time (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for arm in order:
        val, test, secs = agg(arm, "validation"), agg(arm, "test"), agg(arm, "train_seconds")
        if val is None:
            continue
        ratio = f"{100 * val[0] / teacher[0]:.1f}" if teacher and teacher[0] > 0 else "–"
        test_text = f"{100 * test[0]:.2f} ± {100 * test[1]:.2f}" if test else "–"
        lines.append(f"| {arm} | {100 * val[0]:.2f} ± {100 * val[1]:.2f} | {test_text} | {ratio} | {secs[0]:.0f} |")
    return lines


def per_seed_table(rows: list[dict[str, Any]], order: list[str], metric: str) -> list[str]:
    """Markdown table of `run_student_arms`' output with one column per seed: validation / test `metric` (%)."""
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        f"| model | {' | '.join(f'seed {s}: validation / test {metric}' for s in seeds)} |",
        "| --- |" + " ---: |" * len(seeds),
    ]
    for arm in order:
        cells = []
        for seed in seeds:
            row = next((r for r in rows if r["arm"] == arm and r["seed"] == seed), None)
            cells.append("–" if row is None else f"{100 * row['validation']:.2f} / {100 * row['test']:.2f}")
        lines.append(f"| {arm} | {' | '.join(cells)} |")
    return lines


def time_rows(rows: dict[str, Any], tokenizer: Any, threads: int, seq_len: int, rounds: int) -> dict[str, dict]:
    """Median ms per example of each model (PyTorch or `OnnxClassifier`) at batch 1 and 32 on synthetic token ids,
    the rows interleaved over `rounds` rounds (the median of each row's per-round medians; each round's value under
    `"rounds_1"` and `"rounds_32"`, so that a ratio can be taken round by round)."""
    from hf_kd.evaluation.model_stats import measure_latency
    from hf_kd.export.onnx_classifier import onnx_latency

    torch.set_num_threads(threads)
    samples: dict[str, dict[str, list[float]]] = {name: {"1": [], "32": []} for name in rows}
    for _ in range(rounds):
        for name, model in rows.items():
            if hasattr(model, "session"):
                result = onnx_latency(model, batch_sizes=(1, 32), seq_len=seq_len, n_runs=5)
            else:
                result = measure_latency(model, tokenizer, batch_sizes=(1, 32), seq_len=seq_len, n_runs=5)
            for size in ("1", "32"):
                samples[name][size].append(result["per_batch_size"][size]["ms_per_example"])
    return {
        name: {
            **{size: statistics.median(v) for size, v in by_size.items()},
            **{f"rounds_{size}": v for size, v in by_size.items()},
        }
        for name, by_size in samples.items()
    }


def ratio_spread(
    latency: dict[str, dict], name: str, size: str, baseline: str = "teacher"
) -> tuple[float, float, float]:
    """The throughput ratio of `name` to `baseline` at one batch size, round by round ([`time_rows`]): its median,
    min and max over the rounds."""
    ratios = [b / r for b, r in zip(latency[baseline][f"rounds_{size}"], latency[name][f"rounds_{size}"], strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)
