"""Deployment on CPU: teacher vs students (pruned, narrow, int8 ONNX), side by side: size, latency, throughput, F1.

    python benchmarks/deploy.py [--recipe recipes/hoc/deploy_offline.yaml] [--seeds 3] [--threads 2]
        [--seq_len 128] [--rounds 3] [--output_dir runs/deploy-bench] [--section.field VALUE ...]

1. Quality (`--seeds`, 42, 43, 44 for 3): the deploy recipe through the pipeline, which fine-tunes the 6-layer MiniLM
   teacher on the main job's data, distils the 3-layer student built from its layers [0, 2, 4] with a pruned
   vocabulary, and exports it to int8 ONNX (its F1 measured through onnxruntime at the student's threshold); then the
   narrow arms: the same with `hidden_size` 192 and 256 (`--narrow_hidden_sizes`; PCA initialisation) and a cosine
   hidden-state term, from the same teacher. Runs resume from their markers, so a second call only re-times.
2. Speed and size, in this one process, on the seed-42 models: every row is timed at batch 1 and 32 on synthetic
   token ids of `--seq_len` tokens with `--threads` intra-op threads, the rows interleaved over `--rounds` rounds (the
   median of each row's per-round medians is kept), so that a change in machine load hits every row alike. Rows that
   separate the factors: depth (3 of 6 layers, full vocabulary, untrained copy: same shapes), pruning, runtime (the
   pruned student in fp32 ONNX), int8, and width.

Writes `deploy.json` and `deploy.md` (numbers only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, machine_line, parse_seeds, run_student_arms, write_results  # noqa: E402

from hf_kd.recipe import DistillationPipelineConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "student_3l_pruned"


def _exported_scores(folder: Path, metric: str) -> dict[str, float]:
    report = json.loads((folder / "report.json").read_text())
    metrics = report["exported"]["metrics"]
    return {s: float(metrics[f"{s}_{metric}"]) for s in ("validation", "test")}


def _time_rows(rows: dict[str, Any], tokenizer: Any, threads: int, seq_len: int, rounds: int) -> dict[str, dict]:
    from hf_kd.model_stats import measure_latency
    from hf_kd.onnx_classifier import onnx_latency

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
    return {name: {size: statistics.median(v) for size, v in by_size.items()} for name, by_size in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "hoc" / "deploy_offline.yaml"))
    parser.add_argument("--seeds", default="3", help="count (3 -> 42,43,44) or comma list")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--narrow_hidden_sizes", default="192,256", help="comma list of narrow students' widths")
    parser.add_argument("--output_dir", default="runs/deploy-bench")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    cli, rest = parser.parse_known_args()
    hf_logging.set_verbosity_error()
    logging.getLogger("hf_kd").setLevel(logging.WARNING)
    info = machine()

    base = DistillationPipelineConfig.from_yaml(cli.recipe, args=rest)
    metric = "blurb_micro_f1"
    widths = [int(w) for w in cli.narrow_hidden_sizes.split(",") if w.strip()]
    narrow_arms = {
        f"student_3l_{width}_pruned": dataclasses.replace(
            base.student,
            hidden_size=width,
            narrow_init="pca",
            training={**base.student.training, "hidden_loss_weight": 1.0, "hidden_loss": "cosine"},
        )
        for width in widths
    }
    seeds = parse_seeds(cli.seeds)
    out = Path(cli.output_dir)
    runs = run_student_arms(base, narrow_arms, seeds, metric, out, reference=REFERENCE)
    for seed in seeds:
        for arm in (REFERENCE, *narrow_arms):
            runs.append({"seed": seed, "arm": f"{arm}_int8", **_exported_scores(out / f"seed{seed}" / arm, metric)})

    # ------------------------------------------------------------------ speed and size, side by side
    from hf_kd.export import export_onnx
    from hf_kd.model_stats import model_size
    from hf_kd.models import load_tokenizer
    from hf_kd.onnx_classifier import OnnxClassifier, onnx_size_mb
    from hf_kd.student import student_from_teacher

    first = out / f"seed{seeds[0]}"
    teacher_dir = first / REFERENCE / "teacher" / "model"
    student_dir = first / REFERENCE / "student" / "model"
    from transformers import AutoModelForSequenceClassification

    def load(folder: Path) -> Any:
        return AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True).eval()

    teacher = load(teacher_dir)
    scratch = Path(tempfile.mkdtemp(prefix="hf_kd_deploy_"))
    depth_only = student_from_teacher(teacher, layers=[0, 2, 4]).eval()
    depth_only.save_pretrained(scratch / "depth_only")
    export_onnx(teacher_dir, scratch / "teacher_int8", quantize="int8")
    export_onnx(student_dir, scratch / "student_fp32_onnx")
    onnx = {
        "teacher_int8": scratch / "teacher_int8",
        "student_fp32_onnx": scratch / "student_fp32_onnx",
        "student_int8": first / REFERENCE / "evaluation" / "export",
        **{f"{arm}_int8": first / arm / "evaluation" / "export" for arm in narrow_arms},
    }
    models: dict[str, Any] = {
        "teacher": teacher,
        "depth_only": depth_only,
        "student": load(student_dir),
        **{arm: load(first / arm / "student" / "model") for arm in narrow_arms},
    }
    models.update({name: OnnxClassifier.from_pretrained(path, num_threads=cli.threads) for name, path in onnx.items()})
    disk = {
        "teacher": model_size(teacher_dir)["size_mb"],
        "depth_only": model_size(scratch / "depth_only")["size_mb"],
        "student": model_size(student_dir)["size_mb"],
        **{arm: model_size(first / arm / "student" / "model")["size_mb"] for arm in narrow_arms},
        **{name: onnx_size_mb(path) for name, path in onnx.items()},
    }
    parameters = {name: sum(p.numel() for p in models[name].parameters()) for name in ("teacher", "depth_only")}
    parameters |= {name: sum(p.numel() for p in models[name].parameters()) for name in ("student", *narrow_arms)}
    parameters |= {
        "teacher_int8": parameters["teacher"],
        "student_fp32_onnx": parameters["student"],
        "student_int8": parameters["student"],
        **{f"{arm}_int8": parameters[arm] for arm in narrow_arms},
    }
    latency = _time_rows(models, load_tokenizer(str(teacher_dir)), cli.threads, cli.seq_len, cli.rounds)

    def quality(arm: str) -> tuple[float, float, float, float] | None:
        values = [r for r in runs if r["arm"] == arm]
        if not values:
            return None
        val, test = [r["validation"] for r in values], [r["test"] for r in values]
        spread = statistics.stdev if len(values) > 1 else (lambda _: 0.0)
        return statistics.mean(val), spread(val), statistics.mean(test), spread(test)

    rows = [
        ("teacher", "Teacher: 6 × 384, vocabulary 30,522, PyTorch fp32", "teacher"),
        ("teacher_int8", "Teacher, int8 ONNX (int8 alone)", None),
        ("depth_only", "3 × 384, vocabulary 30,522, PyTorch fp32 (depth)", None),
        ("student", "3 × 384, pruned vocabulary, PyTorch fp32 (+ pruning)", REFERENCE),
        ("student_fp32_onnx", "3 × 384, pruned, fp32 ONNX (+ onnxruntime)", None),
        ("student_int8", "3 × 384, pruned, int8 ONNX (+ int8)", f"{REFERENCE}_int8"),
    ]
    for width, arm in zip(widths, narrow_arms):
        rows.append((arm, f"3 × {width}, pruned, PyTorch fp32 (width)", arm))
        rows.append((f"{arm}_int8", f"3 × {width}, pruned, int8 ONNX", f"{arm}_int8"))
    teacher_quality = quality("teacher")
    t1, t32 = latency["teacher"]["1"], latency["teacher"]["32"]
    lines = [
        f"Machine: {machine_line(info)}; load average at start {info.get('load_average_at_start')}.",
        f"Recipe `{Path(cli.recipe).name}`, seeds {seeds}. F1: BLURB micro-F1 (%) on HoC, mean ± std over seeds, "
        "threshold tuned on validation (int8 rows: the fp32 student's threshold). Latency: ms per example on "
        f"synthetic token ids of {cli.seq_len} tokens, {cli.threads} threads, median over {cli.rounds} interleaved "
        "rounds of the median of 5 runs; throughput ratio = teacher latency / row latency at batch 32. Size: "
        "safetensors (PyTorch) or model.onnx.",
        "",
        "| model | parameters | size (MB) | size / teacher | ms/example, batch 1 | ms/example, batch 32 | "
        "throughput × (batch 32) | validation F1 | test F1 | % of teacher test F1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    table = []
    for name, label, arm in rows:
        q = quality(arm) if arm else None
        val = f"{100 * q[0]:.2f} ± {100 * q[1]:.2f}" if q else "–"
        test = f"{100 * q[2]:.2f} ± {100 * q[3]:.2f}" if q else "–"
        share = f"{100 * q[2] / teacher_quality[2]:.1f}" if q and teacher_quality else "–"
        lat1, lat32 = latency[name]["1"], latency[name]["32"]
        lines.append(
            f"| {label} | {parameters[name] / 1e6:.2f}M | {disk[name]:.1f} | "
            f"{100 * disk[name] / disk['teacher']:.1f}% | {lat1:.2f} | {lat32:.2f} | {t32 / lat32:.2f}× | "
            f"{val} | {test} | {share} |"
        )
        table.append(
            {
                "row": name,
                "label": label,
                "parameters": parameters[name],
                "size_mb": disk[name],
                "ms_per_example": latency[name],
                "speedup_batch_1": t1 / lat1,
                "speedup_batch_32": t32 / lat32,
                "quality": q,
            }
        )
    lines += ["", "Per seed (validation / test F1, %):", ""]
    for arm in ("teacher", REFERENCE, f"{REFERENCE}_int8", *(a + s for a in narrow_arms for s in ("", "_int8"))):
        cells = [
            f"seed {r['seed']}: {100 * r['validation']:.2f} / {100 * r['test']:.2f}" for r in runs if r["arm"] == arm
        ]
        lines.append(f"- {arm}: {'; '.join(cells)}")
    markdown = "\n".join(lines)
    payload = {
        "machine": info,
        "settings": {**vars(cli), "overrides": rest, "seeds": seeds},
        "runs": runs,
        "table": table,
    }
    write_results("deploy", payload, markdown, cli.out)


if __name__ == "__main__":
    main()
