"""The README's main job, timed and summarized: `hf-kd distill recipes/hoc/deploy_offline.yaml` on a fresh folder.

    python benchmarks/main_job.py [--recipe recipes/hoc/deploy_offline.yaml] [--output_dir runs/hoc-deploy]
    python benchmarks/main_job.py --summarize runs/hoc-deploy --time_log LOG   # a run made by hand, its time log
    python benchmarks/main_job.py --output_dir runs/hoc-deploy-fp16 --reuse runs/hoc-deploy-bench \
        --name main_job_float16_logits -- --student.teacher_logits_dtype float16      # one field changed
    python benchmarks/main_job.py --recipe recipes/hoc/deploy_narrow_offline.yaml --seeds 42,43,44 \
        --output_dir runs/narrow-bench --name deploy_narrow_offline          # a shipped recipe as shipped, 3 seeds
    python benchmarks/main_job.py --recipe recipes/hoc/deploy_narrow_offline.yaml --seeds 42,43,44 \
        --general_grid 3:1e-3,1:5e-4 ...      # and its general-distillation setting chosen on validation

Runs the command under `/usr/bin/time -v` (wall time, CPU time, peak resident memory), then reads the run's
`report.json` and stage markers, and writes `benchmarks/results/main_job.json` and `main_job.md`: the wall time, each
stage's seconds, and the teacher / fp32 student / int8 export table of validation and test BLURB micro-F1, size on disk
and latency (the report's own: synthetic token ids, median of 5 runs, 2 threads). With `--summarize` it reads a run
made earlier (the command's `/usr/bin/time -v` output saved in `--time_log`) instead of running it. Arguments after
`--` are recipe overrides; with `--reuse RUN` the output folder starts as a copy of RUN, so that the stages the
overrides do not touch (the teacher) are the same ones, and only the others run (the wall time is then theirs).
With `--seeds`, the recipe runs once per seed (`--seed N`, into `<output_dir>-seed<N>`; each seed fine-tunes its own
teacher on its own labelled rows), and the results hold each seed's table and the mean ± std over the seeds. With
`--general_grid`, each seed also runs each general-distillation setting (epochs:learning rate; the first on a fresh
folder, the others on a copy of it that keeps its teacher and teacher logits); the setting kept is the one with the
highest mean validation F1 of the deployed model, and only its test F1 is written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import benchmark_parser, machine, machine_line, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _time_fields(text: str) -> dict[str, float]:
    """Wall, user and system seconds and peak RSS (MB) from `/usr/bin/time -v` output."""
    fields: dict[str, float] = {}
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if wall:
        parts = [float(p) for p in wall.group(1).split(":")]
        fields["wall_seconds"] = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    for key, pattern in (
        ("user_seconds", r"User time \(seconds\): ([\d.]+)"),
        ("system_seconds", r"System time \(seconds\): ([\d.]+)"),
    ):
        found = re.search(pattern, text)
        if found:
            fields[key] = float(found.group(1))
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if rss:
        fields["peak_rss_mb"] = int(rss.group(1)) / 1000
    return fields


def _latency(side: dict, key: str, batch: str) -> float | None:
    entry = (side.get(key) or {}).get("per_batch_size", {}).get(batch)
    return None if entry is None else float(entry["ms_per_example"])


def summarize(run: Path, timing: dict[str, float], recipe: str) -> tuple[dict, str]:
    report = json.loads((run / "report.json").read_text())
    stages = {}
    for stage in ("teacher", "teacher_eval", "teacher_logits", "student", "evaluation"):
        marker = run / stage / "DONE.json"
        if marker.is_file():
            done = json.loads(marker.read_text())
            seconds = done.get("train_seconds", done.get("seconds"))
            stages[stage] = None if seconds is None else round(float(seconds), 1)
    sides = {"teacher": report["teacher"], "student (PyTorch fp32)": report["student"]}
    side_ratios = {"teacher": {}, "student (PyTorch fp32)": report["ratios"]}
    if report.get("exported"):
        name = f"student ({report['exported'].get('format', 'exported')})"
        sides[name], side_ratios[name] = report["exported"], report["exported_ratios"]
    teacher = report["teacher"]
    rows = {}
    for name, side in sides.items():
        metrics = side.get("metrics", {})
        ratios = side_ratios[name]
        rows[name] = {
            "validation_blurb_micro_f1": metrics.get("validation_blurb_micro_f1"),
            "test_blurb_micro_f1": metrics.get("test_blurb_micro_f1"),
            "size_mb": side.get("size_mb"),
            "size_share": side["size_mb"] / teacher["size_mb"] if side.get("size_mb") else None,
            "ms_batch_1": _latency(side, "latency", "1"),
            "ms_batch_32": _latency(side, "latency", "32"),
        }
        for size in ("1", "32"):
            # The report's: the median of the interleaved rounds' teacher / model ratios, and their min-max (a report
            # timed in one pass has no range: the min-max is then the ratio itself).
            speedup = ratios.get("speedup", {}).get(size, 1.0)
            rows[name][f"speedup_batch_{size}"] = speedup
            rows[name][f"speedup_batch_{size}_min_max"] = ratios.get("speedup_min_max", {}).get(size, [speedup] * 2)
        rows[name]["test_share"] = rows[name]["test_blurb_micro_f1"] / teacher["metrics"]["test_blurb_micro_f1"]
    host = machine()
    lines = [
        f"Machine: {machine_line(host)}.",
        (
            f"Command: `hf-kd distill {recipe}` on a fresh folder (whether the machine was alone: the note). Wall "
            f"{timing['wall_seconds'] / 60:.1f} min ({timing['wall_seconds']:.0f} s; CPU "
            f"{timing.get('user_seconds', 0) + timing.get('system_seconds', 0):.0f} s; peak RSS "
            f"{timing.get('peak_rss_mb', float('nan')):.0f} MB). Stage seconds: "
            + ", ".join(f"{k} {v}" for k, v in stages.items() if v is not None)
            + "."
            if timing
            else f"Command: `hf-kd distill {recipe}`; no timing recorded (figures: F1 and size; the latency below is "
            "the report's own)."
        ),
        "",
        "| model | validation BLURB micro-F1 | test BLURB micro-F1 | % of teacher (test) | size (MB) | size / teacher "
        "| ms/example, batch 1 | ms/example, batch 32 | × teacher, batch 1 | batch 1 min-max | × teacher, batch 32 "
        "| batch 32 min-max |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in rows.items():
        one, many = row["speedup_batch_1_min_max"], row["speedup_batch_32_min_max"]
        lines.append(
            f"| {name} | {100 * row['validation_blurb_micro_f1']:.2f} | {100 * row['test_blurb_micro_f1']:.2f} | "
            f"{100 * row['test_share']:.1f} % | {row['size_mb']:.1f} | {100 * row['size_share']:.1f} % | "
            f"{row['ms_batch_1']:.2f} | {row['ms_batch_32']:.2f} | {row['speedup_batch_1']:.2f}× | "
            f"{one[0]:.2f}-{one[1]:.2f} | {row['speedup_batch_32']:.2f}× | {many[0]:.2f}-{many[1]:.2f} |"
        )
    latency = teacher.get("latency") or {}
    lines += [
        "",
        f"Latency is the report's: synthetic token ids of {latency.get('seq_len')} tokens, "
        f"{latency.get('num_threads')} threads, {latency.get('rounds', 1)} rounds interleaved across the models, "
        f"each the median of {latency.get('n_runs')} runs; a speed-up is the median of the rounds' ratios.",
    ]
    payload = {"machine": host, "recipe": recipe, "timing": timing, "stages": stages, "models": rows}
    return payload, "\n".join(lines)


SEED_KEYS = ("validation_blurb_micro_f1", "test_blurb_micro_f1", "test_share", "size_share", "speedup_batch_32")


def _run(recipe: str, run: Path, overrides: list[str], reuse: str | None = None) -> dict[str, float]:
    """`hf-kd distill recipe` on a fresh folder under `/usr/bin/time -v`; its timing fields."""
    if run.exists():
        raise SystemExit(f"{run} exists: the main job is timed on a fresh folder.")
    if reuse:
        shutil.copytree(reuse, run, ignore=shutil.ignore_patterns(".hf-kd.lock"))
    command = ["/usr/bin/time", "-v", "hf-kd", "distill", recipe, "--output_dir", str(run), *overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return _time_fields(done.stderr)


def _grid(options: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The general-distillation settings of `--general_grid` as (label, recipe overrides); the recipe's own setting
    gets no override (it runs as shipped). Without a grid: the recipe alone."""
    if not options.general_grid:
        return [("recipe", [])]
    from hf_kd.recipe.config import DistillationPipelineConfig

    shipped = DistillationPipelineConfig.from_yaml(ROOT / options.recipe, args=options.overrides).student
    if not shipped.general_distillation:
        raise SystemExit(f"--general_grid: {options.recipe} has no student.general_distillation section to vary.")
    settings = []
    for pair in options.general_grid.split(","):
        epochs, lr = (float(v) for v in pair.split(":"))
        setting = {**shipped.general_distillation, "num_train_epochs": epochs, "learning_rate": lr}
        same = all(
            float(shipped.general_distillation.get(k, -1)) == setting[k] for k in ("num_train_epochs", "learning_rate")
        )
        overrides = [] if same else ["--student.general_distillation", json.dumps(setting)]
        settings.append((f"general e{epochs:g} lr{lr:g}" + (" (as shipped)" if same else ""), overrides))
    return settings


def _mean_std(values: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def run_seeds(options: argparse.Namespace) -> None:
    """One run per seed of `options.seeds` (and per general-distillation setting of `--general_grid`: the first
    setting on a fresh folder, the others on a copy of it, so that they share its teacher and teacher logits), then
    each model's mean ± std (sample) over the seeds. With a grid, the setting kept is the one whose deployed model
    (the export, else the fp32 student) has the highest mean validation F1; test F1 is read for it alone."""
    seeds = [int(s) for s in options.seeds.split(",")]
    grid = _grid(options)
    runs: dict[str, dict[str, dict]] = {label: {} for label, _ in grid}
    lines_of: dict[str, list[str]] = {label: [] for label, _ in grid}
    for seed in seeds:
        first = Path(f"{options.output_dir}-seed{seed}")
        for index, (label, setting) in enumerate(grid):
            overrides = [*options.overrides, *setting, "--seed", str(seed)]
            run = first if index == 0 else Path(f"{first}-{label.split(' (')[0].replace(' ', '_')}")
            timing = _run(options.recipe, run, overrides, reuse=None if index == 0 else str(first))
            payload, markdown = summarize(run, timing, " ".join([options.recipe, *overrides]))
            if index:
                payload["reused"] = f"a copy of {first} (its teacher and teacher logits)"
            runs[label][str(seed)] = payload
            lines_of[label] += [f"### Seed {seed}", "", markdown, ""]
    deployed = list(next(iter(runs[grid[0][0]].values()))["models"])[-1]
    validation = {
        label: _mean_std([p["models"][deployed]["validation_blurb_micro_f1"] for p in per_seed.values()])
        for label, per_seed in runs.items()
    }
    chosen = max(validation, key=lambda label: validation[label]["mean"])  # on validation only
    per_seed = runs[chosen]
    models: dict[str, dict] = {}
    for name in next(iter(per_seed.values()))["models"]:
        models[name] = {key: _mean_std([p["models"][name][key] for p in per_seed.values()]) for key in SEED_KEYS}
    teachers = "each seed fine-tunes its own teacher on its own labelled rows"
    table = [
        f"Mean ± std over seeds {options.seeds} ({teachers}):",
        "",
        "| model | validation BLURB micro-F1 | test BLURB micro-F1 | % of teacher (test) | size / teacher "
        "| × teacher, batch 32 (min-max over seeds' medians) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in models.items():
        v, t, share = row["validation_blurb_micro_f1"], row["test_blurb_micro_f1"], row["test_share"]
        table.append(
            f"| {name} | {100 * v['mean']:.2f} ± {100 * v['std']:.2f} | {100 * t['mean']:.2f} ± {100 * t['std']:.2f} "
            f"| {100 * share['mean']:.1f} % | {100 * row['size_share']['mean']:.1f} % | "
            f"{row['speedup_batch_32']['mean']:.2f}× ({min(row['speedup_batch_32']['values']):.2f}-"
            f"{max(row['speedup_batch_32']['values']):.2f}) |"
        )
    payload = {
        "machine": machine(),
        "recipe": options.recipe,
        "teachers": teachers,
        "seeds": per_seed,
        "models": models,
    }
    if len(grid) > 1:
        payload["general_grid"] = {
            label: {"overrides": setting, "validation_of_deployed": validation[label], "chosen": label == chosen}
            for label, setting in grid
        }
        table = [
            f"General-distillation settings tried ({options.general_grid}, epochs:lr), chosen on the mean validation "
            f"BLURB micro-F1 of `{deployed}` over the seeds; test F1 is read for the chosen one only:",
            "",
            "| general distillation | validation BLURB micro-F1 (mean ± std) | chosen |",
            "| --- | ---: | :---: |",
            *(
                f"| {label} | {100 * v['mean']:.2f} ± {100 * v['std']:.2f} | {'yes' if label == chosen else ''} |"
                for label, v in validation.items()
            ),
            "",
            f"The chosen setting, {chosen}:",
            "",
            *table,
        ]
    markdown = "\n".join([*table, "", *lines_of[chosen]])
    if options.note:
        payload["note"] = options.note
        markdown += f"\n\n{options.note}"
    write_results(options.name, payload, markdown, options.out)


def main() -> None:
    parser = benchmark_parser(__doc__, "main_job", output_dir="runs/hoc-deploy-bench")
    # Relative to the repository root, where `hf-kd distill` runs: the results record the recipe as written.
    parser.add_argument("--recipe", default="recipes/hoc/deploy_offline.yaml", help="the recipe (YAML) to run")
    parser.add_argument("--summarize", default=None, help="Summarize this run folder instead of running.")
    parser.add_argument("--time_log", default=None, help="With --summarize: the command's /usr/bin/time -v output.")
    parser.add_argument("--reuse", default=None, help="Start the output folder as a copy of this run folder.")
    parser.add_argument("--note", default=None, help="A sentence added under the table (how the run was made).")
    parser.add_argument("--seeds", default=None, help="Comma-separated seeds: one run per seed, and their mean.")
    parser.add_argument(
        "--general_grid",
        default=None,
        help="With --seeds: general-distillation settings as epochs:lr pairs (e.g. 3:1e-3,1:5e-4), the first run on a "
        "fresh folder; the one kept is chosen on validation.",
    )
    parser.add_argument("overrides", nargs="*", help="Recipe overrides (after --), e.g. --student.alpha 0.7.")
    options = parser.parse_args()
    if options.seeds:
        return run_seeds(options)
    if options.summarize:
        run = Path(options.summarize)
        timing = _time_fields(Path(options.time_log).read_text()) if options.time_log else {}
    else:
        run = Path(options.output_dir)
        timing = _run(options.recipe, run, options.overrides, options.reuse)
    recipe = " ".join([options.recipe, *options.overrides])
    payload, markdown = summarize(run, timing, recipe)
    if options.note:
        payload["note"] = options.note
        markdown += f"\n\n{options.note}"
    write_results(options.name, payload, markdown, options.out)


if __name__ == "__main__":
    main()
