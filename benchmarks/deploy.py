"""Deployment on CPU: the deployable student against the teacher, factor by factor, side by side: size, speed, F1.

    python benchmarks/deploy.py [--recipe recipes/hoc/deploy_offline.yaml] [--seeds 3] [--threads 2]
        [--seq_len 128] [--rounds 3] [--output_dir runs/deploy-bench] [--no_timing] [--section.field VALUE ...]

1. Quality (`--seeds`, 42, 43, 44 for 3), through the pipeline, each seed's arms from the same fine-tuned teacher:
   - `student_kd_transfer`: the recipe as it is (the deployable student: 2 of the teacher's 6 layers, pruned
     vocabulary, distilled on the labelled rows and the transfer set, exported to int8 ONNX);
   - `student_kd`: the same without the transfer set (`data.unlabeled_from_corpus: false`);
   - `student_alone`: the same student on the hard labels only (`alpha: 1`), without the transfer set;
   - the same three with the full vocabulary (`*_full`, `student.prune_vocabulary: false`): every one of them reads
     the teacher's tokenizer, so that the transfer set's share of the gap stands alone (the pruned arms prune on
     their own training text: with the transfer set, on more text, and tokenize test sentences differently), and
     `student_kd_transfer` against `student_kd_transfer_full` is pruning's own effect on F1;
   - the int8 exports of the student, made here: dynamic (`int8`, as `hf-kd export --quantize int8` and the
     pipeline's `evaluation.export: int8` make it) and static (`int8-static`, calibrated on 256 training texts),
     scored through onnxruntime at the fp32 student's threshold.
   The share of the teacher–student gap that distillation closes is (kd_transfer − alone) / (teacher − alone), per
   seed, on test BLURB micro-F1. Runs resume from their markers, so a second call only re-times.
2. Speed and size (skipped with `--no_timing`), in this one process, on the first seed's models: every row is timed
   at batch 1 and 32 on synthetic token ids of `--seq_len` tokens with `--threads` intra-op threads, the rows
   interleaved over `--rounds` rounds (the median of each row's per-round medians is kept), so that a change in
   machine load hits every row alike; each throughput ratio is the median of the per-round ratios, with their
   min-max. Rows that separate the factors: depth (untrained copy of the student's layers,
   full vocabulary), pruning, fusion (fp32 fused ONNX), int8 (dynamic, static), and fusion and int8 on the teacher.

Writes `deploy.json` and `deploy.md` (numbers only; `--name` changes the file names).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    benchmark_parser,
    machine,
    machine_line,
    parse_seeds,
    quiet_logs,
    ratio_spread,
    run_student_arms,
    teacher_model,
    time_rows,
    write_results,
)

from hf_kd.recipe.config import DistillationPipelineConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "student_kd_transfer"
METRIC = "blurb_micro_f1"  # the default of --metric


def _int8_scores(config: Any, run_dir: Path, scratch: Path, quantize: str, metric: str) -> dict[str, float]:
    """Export the run's student to int8 (`quantize`) and score it through onnxruntime at the student's threshold."""
    from hf_kd.export.onnx import export_onnx
    from hf_kd.export.onnx_classifier import OnnxClassifier
    from hf_kd.pipeline.scoring import evaluate_splits, saved_threshold
    from hf_kd.pipeline.splits import recipe_splits, tokenize_side

    config = dataclasses.replace(config, output_dir=str(run_dir))
    splits = recipe_splits(config, cache_dir=str(scratch / "cache"))
    student_dir = run_dir / "student" / "model"
    calibration = splits.train[config.data.text_column][:256] if quantize == "int8-static" else None
    export_onnx(student_dir, scratch / quantize, quantize=quantize, calibration_texts=calibration)
    classifier = OnnxClassifier.from_pretrained(scratch / quantize, num_threads=torch.get_num_threads())
    data = config.data
    tokenized = {
        n: tokenize_side(d, classifier.tokenizer, data.text_column, data.max_length) for n, d in splits.evals.items()
    }
    metrics, _ = evaluate_splits(
        classifier,
        classifier.tokenizer,
        tokenized,
        data.validation_split,
        splits.task,
        splits.label_names,
        config.evaluation.threshold,
        scratch / "tmp",
        config.evaluation.batch_size,
        fixed_threshold=saved_threshold(str(student_dir)),
    )
    return {s: float(metrics[s][metric]) for s in ("validation", "test")}


def _quality(runs: list[dict[str, Any]], arm: str) -> tuple[float, float, float, float] | None:
    values = [r for r in runs if r["arm"] == arm]
    if not values:
        return None
    val, test = [r["validation"] for r in values], [r["test"] for r in values]
    spread = statistics.stdev if len(values) > 1 else (lambda _: 0.0)
    return statistics.mean(val), spread(val), statistics.mean(test), spread(test)


def _gap_lines(runs: list[dict[str, Any]], seeds: list[int], suffix: str = "") -> tuple[list[str], list[float]]:
    """Per seed: teacher, alone, kd, kd + transfer (test F1) and the share of the gap each distillation closes, for
    the arms named with `suffix` (`"_full"`: the unpruned arms)."""
    lines = [
        "| seed | teacher | student alone | KD | KD + transfer set | gap closed by KD | gap closed by KD + transfer |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    closed = []
    for seed in seeds:
        mine = [r for r in runs if r["seed"] == seed and r["arm"].endswith(suffix)]
        test = {r["arm"].removesuffix(suffix): r["test"] for r in mine}
        test["teacher"] = next(r["test"] for r in runs if r["seed"] == seed and r["arm"] == "teacher")
        gap = test["teacher"] - test["student_alone"]
        kd = (test["student_kd"] - test["student_alone"]) / gap if gap > 0 else float("nan")
        both = (test[REFERENCE] - test["student_alone"]) / gap if gap > 0 else float("nan")
        closed.append(both)
        lines.append(
            f"| {seed} | {100 * test['teacher']:.2f} | {100 * test['student_alone']:.2f} | "
            f"{100 * test['student_kd']:.2f} | {100 * test[REFERENCE]:.2f} | {100 * kd:.0f} % | {100 * both:.0f} % |"
        )
    return lines, closed


def main() -> None:
    parser = benchmark_parser(
        __doc__,
        "deploy",
        recipe="recipes/hoc/deploy_offline.yaml",
        seeds="3",
        threads=2,
        seq_len=128,
        rounds=5,
        output_dir="runs/deploy-bench",
    )
    parser.add_argument("--no_full", action="store_true", help="skip the three arms with the full vocabulary")
    parser.add_argument("--no_timing", action="store_true", help="quality arms only (no speed and size rows)")
    parser.add_argument(
        "--one_tokenizer",
        action="store_true",
        help="only the arms that share one tokenizer (the full vocabulary) and the pruned reference (pruning's own "
        "effect): leaves out the pruned KD and alone arms, whose vocabularies are pruned on other text",
    )
    parser.add_argument("--metric", default=METRIC, help="the F1 reported (micro_f1 for abstract-level HoC)")
    cli, rest = parser.parse_known_args()
    quiet_logs()
    info = machine()

    base = DistillationPipelineConfig.from_yaml(cli.recipe, args=rest)
    plain = dataclasses.replace(base.data, unlabeled_from_corpus=False, unlabeled_files=None)
    alone = dataclasses.replace(base.student, training={**base.student.training, "alpha": 1.0})
    arms: dict[str, Any] = {}
    if not cli.one_tokenizer:
        arms |= {"student_kd": {"data": plain}, "student_alone": {"data": plain, "student": alone}}
    if cli.one_tokenizer and cli.no_full:
        parser.error("--one_tokenizer needs the full-vocabulary arms (drop --no_full)")
    if not cli.no_full:
        full = dataclasses.replace(base.student, prune_vocabulary=False)
        alone_full = dataclasses.replace(alone, prune_vocabulary=False)
        arms |= {
            f"{REFERENCE}_full": {"student": full},
            "student_kd_full": {"data": plain, "student": full},
            "student_alone_full": {"data": plain, "student": alone_full},
        }
    seeds = parse_seeds(cli.seeds)
    out = Path(cli.output_dir)
    runs = run_student_arms(base, arms, seeds, cli.metric, out, reference=REFERENCE)
    scratch = Path(tempfile.mkdtemp(prefix="hf_kd_deploy_"))
    for seed in seeds:
        run_dir = out / f"seed{seed}" / REFERENCE
        config = dataclasses.replace(base, seed=seed)
        for quantize, arm in (("int8", f"{REFERENCE}_int8"), ("int8-static", f"{REFERENCE}_int8_static")):
            runs.append(
                {
                    "seed": seed,
                    "arm": arm,
                    **_int8_scores(config, run_dir, scratch / f"seed{seed}", quantize, cli.metric),
                }
            )

    teacher_quality = _quality(runs, "teacher")
    gap_lines, closed = ([], []) if cli.one_tokenizer else _gap_lines(runs, seeds)
    layers = base.student.from_teacher_layers or []
    student_shape = f"{len(layers)} × {base.student.hidden_size or 384}" if layers else "student"
    lines = [
        f"Machine: {machine_line(info)}; load average at start {info.get('load_average_at_start')}.",
        f"Recipe `{Path(cli.recipe).name}` {' '.join(rest)}, seeds {seeds}. F1: {cli.metric} (%), mean ± std "
        "over seeds, threshold tuned on validation (int8 rows: the fp32 student's threshold).",
        "",
        "| model | validation F1 | test F1 | % of teacher test F1 |",
        "| --- | ---: | ---: | ---: |",
    ]
    labels = {
        "teacher": "Teacher (fine-tuned)",
        "student_alone": f"{student_shape} pruned, hard labels only (student alone)",
        "student_kd": f"{student_shape} pruned, distilled on the labelled rows",
        REFERENCE: f"{student_shape} pruned, distilled with the transfer set (PyTorch fp32)",
        f"{REFERENCE}_int8": "the same, int8 ONNX (dynamic)",
        f"{REFERENCE}_int8_static": "the same, int8 ONNX (static)",
        "student_alone_full": f"{student_shape} full vocabulary, hard labels only (student alone)",
        "student_kd_full": f"{student_shape} full vocabulary, distilled on the labelled rows",
        f"{REFERENCE}_full": f"{student_shape} full vocabulary, distilled with the transfer set (PyTorch fp32)",
    }
    for arm, label in labels.items():
        q = _quality(runs, arm)
        if q is None:
            continue
        share = f"{100 * q[2] / teacher_quality[2]:.1f}" if q and teacher_quality else "–"
        lines.append(
            f"| {label} | {100 * q[0]:.2f} ± {100 * q[1]:.2f} | {100 * q[2]:.2f} ± {100 * q[3]:.2f} | {share} |"
        )
    if not cli.one_tokenizer:
        lines += [
            "",
            "Gap between the student alone and the teacher (test F1, %) closed by distillation, pruned arms (each arm "
            "prunes the vocabulary on its own training text, so the tokenizers differ between arms):",
            "",
            *gap_lines,
            "\nMean share of the gap closed by KD + transfer set (pruned arms): "
            f"{100 * statistics.mean(closed):.0f} %.",
        ]
    closed_full: list[float] = []
    if not cli.no_full:
        full_lines, closed_full = _gap_lines(runs, seeds, suffix="_full")
        pruned, unpruned = _quality(runs, REFERENCE), _quality(runs, f"{REFERENCE}_full")
        lines += [
            "",
            "The same with the full vocabulary in every arm (one tokenizer: the transfer set's share alone):",
            "",
            *full_lines,
            f"\nMean share of the gap closed by KD + transfer set (full vocabulary): "
            f"{100 * statistics.mean(closed_full):.0f} %.",
            f"Pruning's own effect (KD + transfer set, pruned − full vocabulary): validation "
            f"{100 * (pruned[0] - unpruned[0]):+.2f}, test {100 * (pruned[2] - unpruned[2]):+.2f} points (mean over "
            "seeds).",
        ]
    payload: dict[str, Any] = {
        "machine": info,
        "settings": {**vars(cli), "overrides": rest, "seeds": seeds},
        "runs": runs,
        "gap_closed": closed,
        "gap_closed_full_vocabulary": closed_full,
    }
    if not cli.no_timing:
        table, timing_lines = _timing(cli, out / f"seed{seeds[0]}", layers, scratch, runs, teacher_quality)
        payload["table"] = table
        lines += ["", *timing_lines]
    write_results(cli.name, payload, "\n".join(lines), cli.out)


def _timing(
    cli: Any, first: Path, layers: list[int], scratch: Path, runs: list[dict[str, Any]], teacher_quality: Any
) -> tuple[list[dict[str, Any]], list[str]]:
    from transformers import AutoModelForSequenceClassification

    from hf_kd.evaluation.model_stats import model_size
    from hf_kd.export.onnx import export_onnx
    from hf_kd.export.onnx_classifier import OnnxClassifier, onnx_size_mb
    from hf_kd.pipeline.builders import load_tokenizer
    from hf_kd.training.student import student_from_teacher

    teacher_dir = Path(teacher_model(first / REFERENCE))
    student_dir = first / REFERENCE / "student" / "model"

    def load(folder: Path) -> Any:
        return AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True).eval()

    teacher = load(teacher_dir)
    depth_only = student_from_teacher(teacher, layers=layers).eval()
    depth_only.save_pretrained(scratch / "depth_only")
    onnx = {
        "teacher_fp32_onnx": export_onnx(teacher_dir, scratch / "teacher_fp32")["path"],
        "teacher_int8": export_onnx(teacher_dir, scratch / "teacher_int8", quantize="int8")["path"],
        "student_fp32_onnx": export_onnx(student_dir, scratch / "student_fp32")["path"],
        "student_int8": str(scratch / first.name / "int8" / "model.onnx"),
        "student_int8_static": str(scratch / first.name / "int8-static" / "model.onnx"),
    }
    models: dict[str, Any] = {"teacher": teacher, "depth_only": depth_only, "student": load(student_dir)}
    for name, path in onnx.items():
        models[name] = OnnxClassifier.from_pretrained(Path(path).parent, num_threads=cli.threads)
    disk = {
        "teacher": model_size(teacher_dir)["size_mb"],
        "depth_only": model_size(scratch / "depth_only")["size_mb"],
        "student": model_size(student_dir)["size_mb"],
        **{name: onnx_size_mb(Path(path).parent) for name, path in onnx.items()},
    }
    fused = {name: models[name].info.get("fused_operators", {}) for name in onnx}
    latency = time_rows(models, load_tokenizer(str(teacher_dir)), cli.threads, cli.seq_len, cli.rounds)
    rows = [
        ("teacher", "Teacher: 6 × 384, PyTorch fp32", "teacher"),
        ("teacher_fp32_onnx", "Teacher, fused fp32 ONNX (fusion alone)", None),
        ("teacher_int8", "Teacher, fused int8 ONNX (fusion + int8 alone)", None),
        ("depth_only", f"{len(layers)} × 384, full vocabulary, PyTorch fp32 (depth)", None),
        ("student", f"{len(layers)} × 384, pruned vocabulary, PyTorch fp32 (+ pruning)", REFERENCE),
        ("student_fp32_onnx", f"{len(layers)} × 384, pruned, fused fp32 ONNX (+ fusion)", None),
        (
            "student_int8",
            f"{len(layers)} × 384, pruned, fused dynamic int8 ONNX (+ int8): deployed",
            f"{REFERENCE}_int8",
        ),
        ("student_int8_static", f"{len(layers)} × 384, pruned, static int8 ONNX", f"{REFERENCE}_int8_static"),
    ]
    lines = [
        f"Speed and size, first seed's models side by side: ms per example on synthetic token ids of {cli.seq_len} "
        f"tokens, {cli.threads} threads, median over {cli.rounds} interleaved rounds of the median of 5 runs; "
        "throughput ratio = teacher PyTorch latency / row latency. Size: safetensors (PyTorch) or model.onnx.",
        "",
        "| model | size (MB) | size / teacher | ms/example, batch 1 | ms/example, batch 32 | × batch 1 (min-max) | "
        "× batch 32 (min-max) | test F1 (% of teacher) | fused operators |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    table = []
    for name, label, arm in rows:
        q = _quality(runs, arm) if arm else None
        share = f"{100 * q[2]:.2f} ({100 * q[2] / teacher_quality[2]:.1f} %)" if q else "–"
        ops = ", ".join(f"{k} {v}" for k, v in fused.get(name, {}).items()) or "–"
        lat1, lat32 = latency[name]["1"], latency[name]["32"]
        x1, x32 = ratio_spread(latency, name, "1"), ratio_spread(latency, name, "32")
        lines.append(
            f"| {label} | {disk[name]:.1f} | {100 * disk[name] / disk['teacher']:.1f} % | {lat1:.2f} | {lat32:.2f} | "
            f"{x1[0]:.2f}× ({x1[1]:.2f}-{x1[2]:.2f}) | {x32[0]:.2f}× ({x32[1]:.2f}-{x32[2]:.2f}) | {share} | {ops} |"
        )
        table.append(
            {
                "row": name,
                "label": label,
                "size_mb": disk[name],
                "ms_per_example": latency[name],
                "speedup_batch_1": x1[0],
                "speedup_batch_1_min_max": [x1[1], x1[2]],
                "speedup_batch_32": x32[0],
                "speedup_batch_32_min_max": [x32[1], x32[2]],
                "quality": q,
                "fused_operators": fused.get(name),
            }
        )
    return table, lines


if __name__ == "__main__":
    main()
