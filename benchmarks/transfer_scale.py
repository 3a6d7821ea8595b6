"""Transfer sets at a hospital's scale: `hf-kd distill` with 10k to 10M unlabeled rows, peak memory and the store.

    python benchmarks/transfer_scale.py         # tiny teacher at 10k, 100k and 1M rows, 3 interleaved rounds; MiniLM
    python benchmarks/transfer_scale.py --sizes 10000000 --rounds 1 --no_minilm --name transfer_scale_10m  # 10M, once

Each run is the whole pipeline on a fresh folder: 200 labelled HoC abstracts (sentence level, BLURB splits) and N
synthetic unlabeled notes of 64 tokens (`data.max_length: 64`; words drawn from the teacher's vocabulary, seeded) as
`data.unlabeled_files`. The teacher is a tiny random 2-layer BERT (hidden size 64) with the MiniLM tokenizer, so
that the teacher itself costs little and the pipeline's own costs show; one more run uses the MiniLM teacher itself
at 100k rows. The student is the teacher's first layer, trained for a fixed 300 steps at every size (the student
stage reads the whole memory-mapped store through its sampler, but its time does not grow with N).

Measured per run: the wall time; the peak resident memory (RSS) of `hf-kd distill`, its anonymous part (RSS less the
page cache of memory-mapped files, which the kernel can drop), and the peak proportional memory (PSS) of it and its
tokenizing workers together (sampled every 0.2 s); the teacher pass's rows per second (its
stage marker: rows / seconds); the store's bytes per row (`teacher_logits/dataset/*.arrow`); the seconds of each
stage. Writes `benchmarks/results/<name>.json` and `.md`. Run it alone on the machine.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import datasets
import psutil
import pyarrow.compute as pc
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import benchmark_parser, machine, machine_line, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MINILM = ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2"
HOC = ROOT.parent / "shared" / "data" / "hoc"
STAGES = ("teacher", "teacher_eval", "teacher_logits", "student", "evaluation")
MEDIAN_KEYS = ("peak_rss_gb", "peak_anon_rss_gb", "peak_pss_tree_gb", "teacher_rows_per_second")


def write_notes(path: Path, rows: int, seed: int = 0) -> Path:
    """`rows` JSON lines of 80 words from the MiniLM vocabulary's whole words (more than 64 tokens each)."""
    if path.is_file() and sum(1 for _ in open(path, "rb")) == rows:
        return path
    words = [w for w in (MINILM / "vocab.txt").read_text().split("\n") if w.isalpha() and w.isascii() and len(w) > 2]
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(rows):
            handle.write(json.dumps({"text": " ".join(rng.choices(words, k=80))}) + "\n")
    return path


def tiny_teacher(folder: Path) -> Path:
    """A random 2-layer BERT (hidden 64) with the MiniLM tokenizer, saved as a local model folder."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    if (folder / "config.json").is_file():
        return folder
    config = BertConfig(
        vocab_size=30_522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(MINILM)).save_pretrained(folder)
    return folder


def recipe(notes: Path, teacher: Path, output_dir: Path) -> dict[str, Any]:
    common = {"per_device_train_batch_size": 32, "learning_rate": 1e-4, "head_learning_rate": 1e-2}
    return {
        "data": {
            "dataset": "hoc",
            "path": str(HOC),
            "level": "sentence",
            "max_length": 64,
            "train_size": 200,
            "unlabeled_files": [str(notes)],
        },
        "teacher": {"model": str(teacher), "num_train_epochs": 1, **common},
        "student": {"from_teacher_layers": [0], "max_steps": 300, "alpha": 0.5, "temperature": 2.0, **common},
        "evaluation": {"plots": False, "latency": False, "batch_size": 64},
        "output_dir": str(output_dir),
        "seed": 42,
    }


class TreeMemory:
    """Peak memory of a process and its descendants, sampled every `interval` seconds: the process's own resident
    set (RSS), and the tree's proportional set size (PSS: a page shared by k processes, such as the forked tokenizing
    workers' copy-on-write memory, counts 1/k in each, so that the sum is the memory the tree really holds)."""

    def __init__(self, pid: int, log: Path, interval: float = 0.2) -> None:
        self.root, self.log, self.interval = psutil.Process(pid), log, interval
        self.peak_rss = self.peak_pss = self.peak_anon = 0
        self.peak_at = ""  # the run's last log line when the RSS peaked (log lines carry no example text)
        self.timeline: list[tuple[float, float, float, str]] = []  # (seconds, RSS GB, anonymous GB, last log line)
        self._started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss, anon = self.root.memory_info().rss, _anonymous_rss(self.root.pid)
                if rss > self.peak_rss:
                    self.peak_rss, self.peak_at = rss, _last_line(self.log)
                self.peak_anon = max(self.peak_anon, anon)
                seconds = time.perf_counter() - self._started
                if not self.timeline or seconds - self.timeline[-1][0] >= 5:
                    sample = (round(seconds, 1), round(rss / 1e9, 3), round(anon / 1e9, 3), _last_line(self.log))
                    self.timeline.append(sample)
                total = 0
                for proc in [self.root, *self.root.children(recursive=True)]:
                    try:
                        total += proc.memory_full_info().pss
                    except psutil.Error:
                        pass
                self.peak_pss = max(self.peak_pss, total)
            except psutil.Error:
                pass
            time.sleep(self.interval)

    def stop(self) -> tuple[float, float, float]:
        self._stop.set()
        self._thread.join()
        return self.peak_rss / 1e9, self.peak_anon / 1e9, self.peak_pss / 1e9


def _last_line(log: Path) -> str:
    """The last `[hf-kd]` or progress line of the run's log (stage names and counts, never example text)."""
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, handle.seek(0, 2) - 4096))
            tail = handle.read().decode("utf-8", "replace").replace("\r", "\n").splitlines()
    except OSError:
        return ""
    lines = [line.strip() for line in tail if line.strip()]
    return lines[-1][:160] if lines else ""


def _anonymous_rss(pid: int) -> int:
    """`RssAnon` of /proc/<pid>/status in bytes: the resident memory that is not pages of mapped files (the page cache
    of memory-mapped Arrow files counts in RSS, but the kernel can drop it)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_once(rows: int, teacher: Path, label: str, work: Path) -> dict[str, Any]:
    notes = write_notes(work / f"notes-{rows}.jsonl", rows)
    run_dir = work / f"run-{label}-{rows}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    recipe_path = run_dir.with_suffix(".yaml")
    recipe_path.write_text(yaml.safe_dump(recipe(notes, teacher, run_dir)))
    started = time.perf_counter()
    log = run_dir.with_suffix(".log")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hf_kd.cli", "distill", str(recipe_path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
    )
    sampler = TreeMemory(proc.pid, log)
    code = proc.wait()
    wall = time.perf_counter() - started
    peak_rss, peak_anon, peak_pss = sampler.stop()
    if code != 0:
        raise SystemExit(f"hf-kd distill failed at {rows} rows ({label}); see {run_dir.with_suffix('.log')}")
    stages = {}
    for stage in STAGES:
        marker = run_dir / stage / "DONE.json"
        if marker.is_file():
            done = json.loads(marker.read_text())
            stages[stage] = done.get("train_seconds", done.get("seconds"))
    logits = json.loads((run_dir / "teacher_logits" / "DONE.json").read_text())
    store = run_dir / "teacher_logits" / "dataset"
    store_bytes = sum(f.stat().st_size for f in store.glob("*.arrow"))
    stored = datasets.load_from_disk(str(store)).with_format("arrow")
    tokens = sum(pc.sum(pc.list_value_length(t.column("input_ids"))).as_py() for t in stored.iter(batch_size=100_000))
    result = {
        "teacher": label,
        "unlabeled_rows": rows,
        "store_rows": logits["num_rows"],
        "wall_seconds": round(wall, 1),
        "peak_rss_gb": round(peak_rss, 3),
        "peak_anon_rss_gb": round(peak_anon, 3),
        "peak_pss_tree_gb": round(peak_pss, 3),
        "peak_rss_during": sampler.peak_at,
        "memory_timeline": sampler.timeline,
        "teacher_pass_seconds": round(logits["seconds"], 1),
        "teacher_rows_per_second": round(logits["num_rows"] / logits["seconds"], 1),
        "store_tokens": tokens,
        "teacher_tokens_per_second": round(tokens / logits["seconds"], 1),
        "store_bytes": store_bytes,
        "store_bytes_per_row": round(store_bytes / logits["num_rows"], 1),
        "store_arrow_files": len(list((run_dir / "teacher_logits").rglob("*.arrow"))),
        "stage_seconds": {k: None if v is None else round(float(v), 1) for k, v in stages.items()},
    }
    print(json.dumps(result), flush=True)
    shutil.rmtree(run_dir, ignore_errors=True)  # the run's caches (GBs at 1M rows and more)
    return result


def per_size(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (teacher, size): the median of its rounds, with the min-max of the peak RSS and the rows/s."""
    rows = []
    for teacher, size in dict.fromkeys((r["teacher"], r["unlabeled_rows"]) for r in runs):
        mine = [r for r in runs if (r["teacher"], r["unlabeled_rows"]) == (teacher, size)]
        row: dict[str, Any] = {"teacher": teacher, "unlabeled_rows": size, "rounds": len(mine)}
        for key in ("wall_seconds", *MEDIAN_KEYS, "store_bytes_per_row"):
            row[key] = statistics.median(r[key] for r in mine)
        for key in MEDIAN_KEYS:
            row[f"{key}_min_max"] = [min(r[key] for r in mine), max(r[key] for r in mine)]
        rows.append(row)
    return rows


def main() -> None:
    parser = benchmark_parser(__doc__, "transfer_scale", rounds=3)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="Unlabeled rows per run (comma-separated).")
    parser.add_argument("--no_minilm", action="store_true", help="Skip the MiniLM-teacher run at 100k rows.")
    parser.add_argument("--work", default="/tmp/hf_kd_transfer_scale", help="Folder for notes and runs.")
    args = parser.parse_args()
    work = Path(args.work)
    info = machine()
    teacher = tiny_teacher(work / "tiny_teacher")
    sizes = [int(n) for n in args.sizes.split(",")]
    runs = [run_once(n, teacher, "tiny", work) | {"round": k} for k in range(args.rounds) for n in sizes]
    if not args.no_minilm:
        runs.append(run_once(100_000, MINILM, "MiniLM-L6", work) | {"round": 0})
    table = per_size(runs)
    tiny = [r for r in table if r["teacher"] == "tiny"]
    summary: dict[str, Any] = {}
    by_rows = {r["unlabeled_rows"]: r for r in tiny}
    if 100_000 in by_rows and 1_000_000 in by_rows:
        for key in ("peak_rss_gb", "peak_anon_rss_gb", "peak_pss_tree_gb"):
            ratio = by_rows[1_000_000][key] / by_rows[100_000][key]
            summary[f"{key.removesuffix('_gb')}_1m_over_100k"] = round(ratio, 3)
    if len(tiny) > 1:
        speeds = [r["teacher_rows_per_second"] for r in tiny]
        summary["rows_per_second_spread"] = round((max(speeds) - min(speeds)) / max(speeds), 3)
    lines = [
        f"Machine: {machine_line(info)}.",
        "`hf-kd distill` on a fresh folder: 200 labelled HoC abstracts + N synthetic unlabeled notes of 64 tokens; "
        "student: the teacher's first layer, 300 steps. Peak RSS: `hf-kd distill`; peak PSS: it and its workers. "
        f"Tiny teacher: median of {args.rounds} interleaved rounds (min-max in brackets).",
        "",
        "| teacher | unlabeled rows | wall | peak RSS (GB) | anonymous (GB) | peak PSS, all (GB) | teacher rows/s "
        "| store bytes/row |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in table:
        rss, speed = r["peak_rss_gb_min_max"], r["teacher_rows_per_second_min_max"]
        spread = r["rounds"] > 1
        lines.append(
            f"| {r['teacher']} | {r['unlabeled_rows']:,} | {r['wall_seconds'] / 60:.1f} min | "
            f"{r['peak_rss_gb']:.2f}{f' ({rss[0]:.2f}-{rss[1]:.2f})' if spread else ''} | "
            f"{r['peak_anon_rss_gb']:.2f} | {r['peak_pss_tree_gb']:.2f} | "
            f"{r['teacher_rows_per_second']:,.0f}{f' ({speed[0]:,.0f}-{speed[1]:,.0f})' if spread else ''} | "
            f"{r['store_bytes_per_row']:.0f} |"
        )
    if summary:
        lines += ["", ", ".join(f"{k}: {v}" for k, v in summary.items())]
    write_results(
        args.name, {"machine": info, "runs": runs, "table": table, "summary": summary}, "\n".join(lines), args.out
    )


if __name__ == "__main__":
    main()
