"""CPU inference latency, throughput and size on disk: teacher (MiniLM-L6) against a 3-layer student.

    python benchmarks/inference.py [--shared ../shared] [--threads N] [--n_runs 5] [--seq_len 128]

The teacher is the real pretrained `all-MiniLM-L6-v2` (6 layers) from the shared folder with a 10-label
classification head; the student is `hf_kd.student_from_teacher(teacher, num_layers=3)`. Latency is measured with
`hf_kd.evaluation.model_stats.measure_latency` on synthetic token ids (no real text) at batch 1 and 32, and size with
`hf_kd.evaluation.model_stats.model_size` (safetensors on disk). Writes `inference.json` and `inference.md`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import benchmark_parser, machine, machine_line, quiet_logs, write_results  # noqa: E402

from hf_kd.evaluation.model_stats import measure_latency, model_size  # noqa: E402
from hf_kd.training.student import student_from_teacher  # noqa: E402


def main() -> None:
    parser = benchmark_parser(__doc__, "inference", threads=None, seq_len=128, rounds=2)
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--student_layers", type=int, default=3)
    parser.add_argument("--n_warmup", type=int, default=2)
    parser.add_argument("--n_runs", type=int, default=5)
    cli = parser.parse_args()
    quiet_logs()
    if cli.threads:
        torch.set_num_threads(cli.threads)
    threads = torch.get_num_threads()

    model_dir = Path(cli.shared) / "models" / "all-MiniLM-L6-v2"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    teacher = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=10, problem_type="multi_label_classification"
    ).eval()
    student = student_from_teacher(teacher, num_layers=cli.student_layers).eval()

    rounds: dict[str, list[dict]] = {"teacher": [], "student": []}
    for _ in range(cli.rounds):  # interleave so that load from other jobs hits both sides alike
        for name, model in (("teacher", teacher), ("student", student)):
            rounds[name].append(
                measure_latency(
                    model,
                    tokenizer,
                    batch_sizes=(1, 32),
                    seq_len=cli.seq_len,
                    n_warmup=cli.n_warmup,
                    n_runs=cli.n_runs,
                    num_threads=threads,
                )
            )

    def median_ms(name: str, bs: str) -> float:
        runs = [r for lat in rounds[name] for r in lat["per_batch_size"][bs]["runs_ms"]]
        runs.sort()
        return runs[len(runs) // 2]

    sizes = {"teacher": model_size(teacher), "student": model_size(student)}
    layers = {"teacher": teacher.config.num_hidden_layers, "student": student.config.num_hidden_layers}
    result: dict[str, dict] = {}
    for name in ("teacher", "student"):
        result[name] = {"layers": layers[name], **sizes[name], "latency": {}}
        for bs in ("1", "32"):
            ms = median_ms(name, bs)
            result[name]["latency"][bs] = {
                "ms_per_batch": ms,
                "ms_per_example": ms / int(bs),
                "examples_per_s": int(bs) * 1000.0 / ms,
            }
    speedup = {
        bs: result["teacher"]["latency"][bs]["ms_per_batch"] / result["student"]["latency"][bs]["ms_per_batch"]
        for bs in ("1", "32")
    }
    info = machine()
    lines = [
        f"Machine: {machine_line(info)}; measured with {threads} torch threads, seq len {cli.seq_len}, synthetic "
        f"token ids, median of {cli.rounds * cli.n_runs} timed runs per cell ({cli.rounds} interleaved rounds).",
        "",
        "| model | layers | parameters | size on disk (MB) | ms/example @1 | ex/s @1 | ms/example @32 | ex/s @32 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("teacher", "student"):
        r = result[name]
        lat = r["latency"]
        lines.append(
            f"| {name} | {r['layers']} | {r['parameters'] / 1e6:.1f}M | {r['size_mb']:.1f} | "
            f"{lat['1']['ms_per_example']:.2f} | {lat['1']['examples_per_s']:.1f} | "
            f"{lat['32']['ms_per_example']:.2f} | {lat['32']['examples_per_s']:.1f} |"
        )
    met = speedup["32"] >= 1.8
    lines += [
        "",
        f"Student speed-up: {speedup['1']:.2f}x at batch 1, {speedup['32']:.2f}x at batch 32 "
        f"(target >= 1.8x at batch 32: {'met' if met else 'NOT met'}). Size ratio: "
        f"{result['student']['size_bytes'] / result['teacher']['size_bytes']:.2f}.",
    ]
    markdown = "\n".join(lines)
    payload = {
        "machine": info,
        "settings": vars(cli) | {"threads": threads},
        "models": result,
        "speedup": speedup,
        "target_student_batch32_speedup_ge_1.8": {"value": speedup["32"], "met": met},
        "raw_rounds": rounds,
    }
    write_results(cli.name, payload, markdown, cli.out)


if __name__ == "__main__":
    main()
