"""The teacher-logit pass alone: the streamed store against the implementation it replaced, and its rows per second
from 10k to 1M rows.

    python benchmarks/teacher_pass.py [--rounds 5] [--sizes 10000,100000,1000000] [--before 9bf790b]

A memory-mapped dataset of N rows of 64 random token ids (the MiniLM vocabulary's range) and multi-hot labels of 10
classes is cached with `cache_teacher_logits` and a tiny random 2-layer BERT teacher (hidden size 64), batch 64, one
fresh store folder per call. `--before` names the commit whose `hf_kd/training/teacher_cache.py` is the previous
implementation (read with `git show`, loaded beside the current one): the two run in interleaved rounds at 100k rows,
and their logits are compared. Then the current pass runs at each size (interleaved rounds). Reported: rows per
second, median of the rounds with the min-max, and the ratio current / previous. Writes
`benchmarks/results/teacher_pass.json` and `.md`. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, machine_line, write_results  # noqa: E402

from hf_kd.training.teacher_cache import cache_teacher_logits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def rows(n: int, folder: Path) -> datasets.Dataset:
    """N rows of 64 token ids, written to an Arrow cache file (memory-mapped, as a run's tokenized data is)."""
    rng = np.random.default_rng(0)

    def batch(_: dict, indices: list[int]) -> dict[str, Any]:
        k = len(indices)
        ids = rng.integers(1000, 30_000, (k, 64))
        ids[:, 0], ids[:, -1] = 101, 102
        return {
            "input_ids": ids.tolist(),
            "attention_mask": np.ones((k, 64), dtype=np.int64).tolist(),
            "token_type_ids": np.zeros((k, 64), dtype=np.int64).tolist(),
            "labels": rng.integers(0, 2, (k, 10)).astype(np.float32).tolist(),
        }

    base = datasets.Dataset.from_dict({"row": list(range(n))})
    return base.map(
        batch, batched=True, with_indices=True, remove_columns=["row"], cache_file_name=str(folder / f"rows-{n}.arrow")
    )


def teacher() -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30_522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128
    )
    config.num_labels, config.problem_type = 10, "multi_label_classification"
    return BertForSequenceClassification(config).eval()


def previous_implementation(commit: str, folder: Path) -> Any:
    """`cache_teacher_logits` as it was at `commit`, loaded as `hf_kd.training._teacher_cache_before`."""
    source = subprocess.run(
        ["git", "show", f"{commit}:hf_kd/training/teacher_cache.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = folder / "teacher_cache_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("hf_kd.training._teacher_cache_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cache_teacher_logits


def timed(function: Any, model: torch.nn.Module, data: datasets.Dataset, folder: Path) -> tuple[float, Any]:
    store = Path(tempfile.mkdtemp(dir=folder))
    started = time.perf_counter()
    out = function(model, data, batch_size=64, cache_dir=store)
    return time.perf_counter() - started, out


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--size_rounds", type=int, default=3, help="Rounds of the current pass at each size.")
    parser.add_argument("--before", default="9bf790b", help="Commit of the previous implementation.")
    parser.add_argument("--work", default="/tmp/hf_kd_teacher_pass")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    info, model = machine(), teacher()
    before = previous_implementation(args.before, work)
    data = rows(100_000, work)
    speeds: dict[str, list[float]] = {"previous": [], "current": []}
    max_diff = 0.0
    for _ in range(args.rounds):
        for name, function in (("previous", before), ("current", cache_teacher_logits)):
            seconds, out = timed(function, model, data, work)
            speeds[name].append(len(data) / seconds)
            if name == "previous":
                reference = np.asarray(out.select(range(0, len(out), 997))["teacher_logits"])
            else:
                got = np.asarray(out.select(range(0, len(out), 997))["teacher_logits"])
                max_diff = max(max_diff, float(np.abs(got - reference).max()))
    ratios = [c / p for c, p in zip(speeds["current"], speeds["previous"])]
    sizes = [int(s) for s in args.sizes.split(",")]
    datasets_by_size = {n: rows(n, work) for n in sizes}
    by_size: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(args.size_rounds):
        for n in sizes:
            seconds, _ = timed(cache_teacher_logits, model, datasets_by_size[n], work)
            by_size[n].append(n / seconds)
    medians = [statistics.median(v) for v in by_size.values()]
    spread = (max(medians) - min(medians)) / max(medians)
    payload = {
        "machine": info,
        "before_commit": args.before,
        "rows_100k": {k: summary(v) for k, v in speeds.items()},
        "current_over_previous": summary(ratios),
        "max_abs_logit_difference": max_diff,
        "current_by_size": {str(n): summary(v) for n, v in by_size.items()},
        "rows_per_second_spread": spread,
    }
    lines = [
        f"Machine: {machine_line(info)}.",
        "`cache_teacher_logits`, tiny random 2-layer teacher (hidden 64, 10 labels), rows of 64 tokens, batch 64, "
        "memory-mapped input, a fresh store per call.",
        "",
        f"At 100k rows, {args.rounds} interleaved rounds (rows/s, median and min-max):",
        "",
        "| implementation | rows/s | min-max |",
        "| --- | ---: | ---: |",
    ]
    for name, values in speeds.items():
        s = summary(values)
        label = f"previous ({args.before})" if name == "previous" else "current (streamed store)"
        lines.append(f"| {label} | {s['median']:,.0f} | {s['min']:,.0f}-{s['max']:,.0f} |")
    r = summary(ratios)
    lines += [
        "",
        f"Current / previous: {r['median']:.3f} (min-max {r['min']:.3f}-{r['max']:.3f}); largest logit difference "
        f"{max_diff:.2e}.",
        "",
        f"The current pass at each size, {args.size_rounds} interleaved rounds:",
        "",
        "| rows | rows/s | min-max |",
        "| ---: | ---: | ---: |",
    ]
    for n, values in by_size.items():
        s = summary(values)
        lines.append(f"| {n:,} | {s['median']:,.0f} | {s['min']:,.0f}-{s['max']:,.0f} |")
    lines += ["", f"Spread of the medians: {100 * spread:.1f} % of the fastest."]
    write_results("teacher_pass", payload, "\n".join(lines))


if __name__ == "__main__":
    main()
