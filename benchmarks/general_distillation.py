"""Does general distillation move a narrow student across the goal line? The same narrow student distilled with the
transfer set, with and without the general-distillation stage first, from the same fine-tuned teacher.

    python benchmarks/general_distillation.py [--seeds 3] [--hidden_size 192] [--output_dir runs/gd-bench]
        [--general_grid 1:5e-4,3:1e-3] [--section.field VALUE ...]

The deploy recipe (`recipes/hoc/deploy_offline.yaml`: HoC sentences, 400 labelled abstracts, the 895 other training
abstracts as the transfer set, pruned vocabulary, 2 layers from the teacher's [0, 3], int8 export) with a narrow
student of `--hidden_size` (sliced from the teacher). Both arms distil it the same way in the task stage (cached
logits, `--task_hidden_weight` cosine hidden-state term); the `general` arm first runs `student.general_distillation`
(hidden-state MSE + MiniLMv2 relations, from the pretrained MiniLM teacher, on the labelled and transfer text, without
labels), once per setting of `--general_grid` (epochs:learning rate pairs). The setting is chosen on validation
alone (the highest mean validation F1 over the seeds); test F1 is reported for the chosen setting only, the others'
test scores are left out of the results. Each seed's teacher is fine-tuned on that seed's labelled rows (the
reference arm's first stage) unless `--teacher.model` names one teacher for every seed; the results say which. Writes
`general_distillation.json` and `.md`: BLURB micro-F1 per arm and seed, the share of the teacher's, the exported
student's size and speed (throughput ratios: the median and min-max over interleaved rounds), and the general
stage's training time.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    benchmark_parser,
    machine,
    machine_line,
    parse_seeds,
    per_seed_table,
    quiet_logs,
    ratio_spread,
    run_student_arms,
    teacher_model,
    time_rows,
    write_results,
)

from hf_kd.recipe.config import DistillationPipelineConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _speed(run_dir: Path, threads: int, rounds: int) -> dict:
    """The fine-tuned teacher (PyTorch fp32) and the run's exported student, timed side by side; sizes on disk."""
    from transformers import AutoModelForSequenceClassification

    from hf_kd.export.onnx_classifier import OnnxClassifier
    from hf_kd.pipeline.builders import load_tokenizer

    teacher_dir = Path(teacher_model(run_dir))
    export_dir = run_dir / "evaluation" / "export"
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir, use_safetensors=True).eval()
    student = OnnxClassifier.from_pretrained(export_dir, num_threads=threads)
    models = {"teacher, PyTorch fp32": teacher, "narrow student, fused int8 ONNX": student}
    sizes = {
        "teacher, PyTorch fp32": (teacher_dir / "model.safetensors").stat().st_size / 1e6,
        "narrow student, fused int8 ONNX": (export_dir / "model.onnx").stat().st_size / 1e6,
    }
    latency = time_rows(models, load_tokenizer(str(teacher_dir)), threads, 128, rounds)
    rows, lines = {}, []
    for name, ms in latency.items():
        size = sizes[name]
        x1, x32 = (ratio_spread(latency, name, b, baseline="teacher, PyTorch fp32") for b in ("1", "32"))
        rows[name] = {"size_mb": size, "ms_per_example": ms, "speedup": {"1": x1, "32": x32}}
        lines.append(
            f"| {name} | {size:.1f} | {100 * size / sizes['teacher, PyTorch fp32']:.1f} % | {ms['1']:.2f} | "
            f"{ms['32']:.2f} | {x1[0]:.2f}× ({x1[1]:.2f}-{x1[2]:.2f}) | {x32[0]:.2f}× ({x32[1]:.2f}-{x32[2]:.2f}) |"
        )
    return {"rows": rows, "lines": lines}


def main() -> None:
    parser = benchmark_parser(
        __doc__,
        "general_distillation",
        recipe="recipes/hoc/deploy_offline.yaml",
        seeds="3",
        output_dir="runs/gd-bench",
        threads=2,
        rounds=5,
    )
    parser.add_argument("--hidden_size", type=int, default=192)
    parser.add_argument("--task_hidden_weight", type=float, default=0.0)
    parser.add_argument(
        "--general_grid",
        default="1:5e-4,3:1e-3",
        help="general-stage settings tried, as epochs:learning_rate pairs; the one kept is chosen on validation",
    )
    parser.add_argument(
        "--general_teacher",
        default=str(ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2"),
        help="the general stage's teacher: the pretrained model (the arms' teacher.model is the fine-tuned one)",
    )
    cli, rest = parser.parse_known_args()
    quiet_logs()
    info = machine()
    base = DistillationPipelineConfig.from_yaml(cli.recipe, args=rest)
    metric = "blurb_micro_f1"
    training = dict(base.student.training)
    if cli.task_hidden_weight > 0:
        training.update(hidden_loss_weight=cli.task_hidden_weight, hidden_loss="cosine")
    width = cli.hidden_size
    narrow = dataclasses.replace(base.student, hidden_size=width, narrow_init="slice", training=training)
    grid = [(float(e), float(lr)) for e, lr in (pair.split(":") for pair in cli.general_grid.split(","))]
    reference = f"2x{width}_kd_transfer"
    base = dataclasses.replace(base, student=narrow)
    settings: dict[str, dict] = {}
    for epochs, lr in grid:
        settings[f"2x{width}_general_e{epochs:g}_lr{lr:g}_kd_transfer"] = {
            "num_train_epochs": epochs,
            "learning_rate": lr,
            "per_device_train_batch_size": 32,
            "warmup_steps": 0.1,
            "logging_steps": 50,
            "teacher": cli.general_teacher,
        }
    arms = {name: dataclasses.replace(narrow, general_distillation=g) for name, g in settings.items()}
    seeds = parse_seeds(cli.seeds)
    rows = run_student_arms(base, arms, seeds, metric, Path(cli.output_dir), reference=reference)

    def mean(arm: str, split: str) -> float:
        return statistics.mean(r[split] for r in rows if r["arm"] == arm)

    chosen = max(settings, key=lambda arm: mean(arm, "validation"))  # on validation only
    for row in rows:
        if row["arm"] in settings and row["arm"] != chosen:
            row["test"] = None  # test is read for the chosen setting only
    general_seconds = []
    for seed in seeds:
        marker = Path(cli.output_dir) / f"seed{seed}" / chosen / "general_distillation" / "DONE.json"
        general_seconds.append(json.loads(marker.read_text())["train_seconds"])
    first = Path(cli.output_dir) / f"seed{seeds[0]}" / reference
    report = json.loads((first / "report.json").read_text())
    speed = _speed(first, cli.threads, cli.rounds)
    teachers = (
        f"one teacher for every seed ({base.teacher.model}, given with --teacher.model)"
        if any(arg.startswith("--teacher.model") for arg in rest)
        else "each seed's teacher fine-tuned on that seed's labelled rows"
    )
    teacher_test = mean("teacher", "test")
    task = f"a cosine hidden-state term {cli.task_hidden_weight:g}" if cli.task_hidden_weight else "cached logits"
    lines = [
        f"Machine: {machine_line(info)}; load average at start {info.get('load_average_at_start')}.",
        f"Recipe `{Path(cli.recipe).name}` with a 2-layer student of width {width} (slice), seeds {seeds}; "
        f"task stage on {task}; general stage settings {cli.general_grid} (epochs:lr, batch 32), the one kept "
        f"chosen on validation: {chosen}. Teachers: {teachers}. BLURB micro-F1 (%).",
        "",
        "| student | validation F1 | test F1 | % of teacher test F1 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for arm in ("teacher", reference, *settings):
        tests = [r["test"] for r in rows if r["arm"] == arm and r["test"] is not None]
        if not tests:
            lines.append(f"| {arm} | {100 * mean(arm, 'validation'):.2f} | not read (not chosen) | – |")
            continue
        std = statistics.stdev(tests) if len(tests) > 1 else 0.0
        lines.append(
            f"| {arm} | {100 * mean(arm, 'validation'):.2f} | {100 * mean(arm, 'test'):.2f} ± {100 * std:.2f} | "
            f"{100 * mean(arm, 'test') / teacher_test:.1f} |"
        )
    lines += [
        "",
        f"Speed and size, seed {seeds[0]}'s models side by side, 128 tokens, {cli.threads} threads, median of "
        f"{cli.rounds} interleaved rounds (general distillation changes no weight shape: one row for both arms):",
        "",
        "| model | size (MB) | size / teacher | ms/example b1 | ms/example b32 | × b1 | × b32 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *speed["lines"],
        "",
        f"General stage: {statistics.mean(general_seconds):.0f} s of training per seed.",
        "",
        *per_seed_table([r for r in rows if r["test"] is not None], ["teacher", reference, chosen], metric),
    ]
    markdown = "\n".join(lines)
    payload = {
        "machine": info,
        "settings": {**vars(cli), "overrides": rest, "general": settings, "chosen_on_validation": chosen},
        "teachers": teachers,
        "runs": rows,
        "general_seconds": general_seconds,
        "speed": speed["rows"],
        "reference_report": {k: v for k, v in report.items() if k != "config"},
    }
    write_results(cli.name, payload, markdown, cli.out)


if __name__ == "__main__":
    main()
