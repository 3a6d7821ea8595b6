"""`hf-kd predict` at scale: rows per second and peak memory at 10k, 100k and 1M rows, and against the bare
onnxruntime session on pre-tokenized batches in the same process.

    python benchmarks/predict.py [--model runs/hoc-deploy/evaluation/export] [--sizes 10000 100000 1000000]
                                 [--threads 2] [--rounds 5] [--compare_rows 20000]

The rows are HoC's sentences (the BLURB train, dev and test TSVs of ../shared/data/hoc) drawn uniformly (seeded) to
each size, written as JSON Lines with an `id` column under `runs/predict-bench/`. Each size is one `hf-kd predict`
command in its own process, run under `/usr/bin/time` for its peak resident memory; its rows per second are the
command's own (reading, tokenizing, predicting and writing: `seconds` in its result) and, for comparison, over the
whole command's wall time (start-up included). The comparison runs in this process, in interleaved rounds: the bare
session (the export's `model.onnx`, the same threads) on batches tokenized beforehand (length-sorted batches of the
same size, the best case for it), against `hf_kd.export.predict.predict_files` on a file of the same rows; the ratio
is reported as the median over rounds with its min-max. Writes `benchmarks/results/predict.json` and `predict.md`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import benchmark_parser, machine, machine_line, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def hoc_sentences(shared: Path) -> list[str]:
    texts = []
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        path = shared / "data" / "hoc" / "blurb_split" / name
        lines = path.read_text(encoding="utf-8").splitlines()
        column = lines[0].split("\t").index("sentence")
        texts += [line.split("\t")[column] for line in lines[1:] if line.strip()]
    if not texts:
        raise SystemExit(f"No HoC sentences found under {shared / 'data' / 'hoc'}.")
    return texts


def write_rows(path: Path, texts: list[str], n: int, seed: int = 0) -> Path:
    """`n` rows drawn uniformly (seeded) from all the sentences: every size has the same length distribution (the
    first 10k sentences of train are not the corpus's mix)."""
    if path.is_file():
        return path
    picks = np.random.default_rng(seed).integers(0, len(texts), size=n)
    with open(path, "w", encoding="utf-8") as handle:
        for i, j in enumerate(picks):
            handle.write(json.dumps({"id": f"n{i}", "text": texts[int(j)]}) + "\n")
    return path


def run_command(model: str, source: Path, output: Path, threads: int, batch_size: int) -> dict:
    command = ["/usr/bin/time", "-f", "MAXRSS_KB %M", sys.executable, "-m", "hf_kd.cli", "predict", model, str(source)]
    command += ["--output", str(output), "--overwrite", "--num_threads", str(threads)]
    command += ["--batch_size", str(batch_size)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    result = json.loads(done.stdout[done.stdout.index("{") :])
    peak = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("MAXRSS_KB"))
    output.unlink()
    return {"wall_seconds": round(wall, 2), "peak_rss_mb": round(peak / 1000, 1), **result}


def compare(model: str, texts: list[str], rows: int, threads: int, batch_size: int, rounds: int) -> dict:
    """Interleaved rounds: the bare onnxruntime session on pre-tokenized batches against `predict_files`."""
    import onnxruntime
    from transformers import AutoTokenizer

    from hf_kd.export.predict import predict_files

    folder = Path(model)
    picks = np.random.default_rng(1).integers(0, len(texts), size=rows)
    sample = [texts[int(j)] for j in picks]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    info = json.loads((folder / "hf_kd_export.json").read_text())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(
        str(folder / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()]
    encoded = tokenizer(sample, truncation=True, max_length=int(info["max_length"]))
    order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
    batches = []
    for start in range(0, rows, batch_size):
        picked = order[start : start + batch_size]
        width = max(len(encoded["input_ids"][i]) for i in picked)
        feed = {}
        for name in names:
            array = np.zeros((len(picked), width), dtype=np.int64)
            for row, index in enumerate(picked):
                values = encoded[name][index] if name in encoded else []
                array[row, : len(values)] = values
            feed[name] = array
        batches.append(feed)
    scratch = Path(tempfile.mkdtemp(prefix="predict_bench_"))
    source = scratch / "rows.jsonl"
    source.write_text("".join(json.dumps({"id": f"n{i}", "text": t}) + "\n" for i, t in enumerate(sample)))
    bare, tool = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for feed in batches:
            session.run(["logits"], feed)
        bare.append(rows / (time.perf_counter() - started))
        result = predict_files(
            folder, [source], scratch / "out.jsonl", batch_size=batch_size, num_threads=threads, overwrite=True,
            progress=False,
        )  # fmt: skip
        tool.append(rows / result["seconds"])
    ratios = [t / b for t, b in zip(tool, bare)]
    return {
        "rows": rows,
        "rounds": rounds,
        "bare_rows_per_second": [round(x, 1) for x in bare],
        "predict_rows_per_second": [round(x, 1) for x in tool],
        "ratio_median": round(statistics.median(ratios), 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
    }


def main() -> None:
    parser = benchmark_parser(__doc__, "predict", threads=2, rounds=5)
    parser.add_argument("--model", default=str(ROOT / "runs" / "hoc-deploy" / "evaluation" / "export"))
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--compare_rows", type=int, default=20_000)
    options = parser.parse_args()
    texts = hoc_sentences(Path(options.shared))
    work = ROOT / "runs" / "predict-bench"
    work.mkdir(parents=True, exist_ok=True)
    host = machine()
    sizes = []
    for n in options.sizes:
        source = write_rows(work / f"rows_{n}.jsonl", texts, n)
        result = run_command(options.model, source, work / f"out_{n}.jsonl", options.threads, options.batch_size)
        result.update(
            rows_per_second=round(n / result["seconds"], 1), wall_rows_per_second=round(n / result["wall_seconds"], 1)
        )
        sizes.append(result)
        print(json.dumps(result))
    comparison = compare(
        options.model, texts, options.compare_rows, options.threads, options.batch_size, options.rounds
    )
    rates = [s["rows_per_second"] for s in sizes]
    peaks = [s["peak_rss_mb"] for s in sizes]
    goals = {
        "rows_per_second_spread": round(max(rates) / min(rates) - 1, 3),
        "peak_rss_spread": round(max(peaks) / min(peaks) - 1, 3),
        "predict_over_bare": comparison["ratio_median"],
    }
    shown = Path(options.model).relative_to(ROOT) if Path(options.model).is_relative_to(ROOT) else options.model
    lines = [
        f"Machine: {machine_line(host)}.",
        f"Model: `{shown}`"
        f" ({json.loads((Path(options.model) / 'hf_kd_export.json').read_text())['quantize'] or 'fp32'} ONNX), "
        f"{options.threads} threads, batch {options.batch_size}, HoC sentences drawn uniformly (seeded), JSON Lines "
        "in and out.",
        "",
        "| rows | rows/s (predict) | rows/s (whole command) | wall (s) | peak RSS (MB) |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in sizes:
        lines.append(
            f"| {s['rows']:,} | {s['rows_per_second']:,.0f} | {s['wall_rows_per_second']:,.0f} | "
            f"{s['wall_seconds']:.1f} | {s['peak_rss_mb']:.0f} |"
        )
    lines += [
        "",
        f"Spread across sizes: rows/s {100 * goals['rows_per_second_spread']:.1f} % (goal: within 10 %), peak RSS "
        f"{100 * goals['peak_rss_spread']:.1f} % (goal: within 20 %).",
        "",
        f"Against the bare onnxruntime session on pre-tokenized, length-sorted batches, in one process, "
        f"{comparison['rows']:,} rows, {comparison['rounds']} interleaved rounds: `hf-kd predict` (tokenization and "
        f"I/O included) runs at **{100 * comparison['ratio_median']:.0f} %** of its rows per second (median; min-max "
        f"{100 * comparison['ratio_min']:.0f}-{100 * comparison['ratio_max']:.0f} %; goal: at least 80 %).",
    ]
    payload = {"machine": host, "settings": vars(options), "sizes": sizes, "comparison": comparison, "goals": goals}
    write_results(options.name, payload, "\n".join(lines), options.out)


if __name__ == "__main__":
    main()
