"""Quality on HoC: the teacher, a student fine-tuned alone, and the student distilled (online, cached, PSO settings).

    python benchmarks/hoc_quality.py [--recipe recipes/hoc/offline.yaml] [--seeds 1] [--pso_recipe BEST.yaml]
        [--output_dir runs/hoc-quality] [--section.field VALUE ...]

Everything goes through the pipeline (`hf_kd.pipeline.run_pipeline`) of the offline HoC recipe, so the numbers are
those `hf-kd distill` prints. For every seed (`--seeds 3` means 42, 43, 44, or a comma-separated list):

1. `student_kd_cached`: the recipe as it is: the 6-layer teacher is fine-tuned, its logits cached, and a 3-layer
   student built from its layers is distilled from the cache. This run also gives the `teacher` row.
2. `student_alone`: the same student trained on the hard labels only (`student.alpha=1`);
3. `student_kd_online`: the recipe's distillation with the teacher run at every step (`student.online_teacher`);
4. `student_kd_pso` (with `--pso_recipe`, the `best_recipe.yaml` that `hf-kd search` writes): the student section
   of that recipe (the hyperparameters PSO found).

Runs 2-4 reuse the teacher fine-tuned in run 1 (`teacher.model` set to it: the pipeline skips stage 1), so every
student starts from the same teacher and the same initialisation. The scores are the recipe's headline metric
(`blurb_micro_f1` at sentence level, `micro_f1` at abstract level) on the validation and test splits, with the
threshold tuned on validation. Writes `hoc_quality.json` and `hoc_quality.md` (numbers only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, machine_line, write_results  # noqa: E402

from hf_kd.cli import parse_overrides  # noqa: E402
from hf_kd.pipeline import DistillationPipelineConfig, run_pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("teacher", "student_alone", "student_kd_online", "student_kd_cached", "student_kd_pso")


def parse_seeds(value: str) -> list[int]:
    if "," in value:
        return [int(v) for v in value.split(",") if v.strip()]
    return [42 + i for i in range(int(value))]


def _quiet_evaluation(config: DistillationPipelineConfig) -> DistillationPipelineConfig:
    evaluation = dataclasses.replace(config.evaluation, latency=False, plots=False, model_card=False)
    return dataclasses.replace(config, evaluation=evaluation)


def _scores(report: dict[str, Any], side: str, metric: str) -> dict[str, float]:
    metrics = report[side]["metrics"]
    return {
        split: float(metrics[f"{split}_{metric}"])
        for split in ("validation", "test")
        if f"{split}_{metric}" in metrics
    }


def _student_seconds(output_dir: Path) -> float:
    return float(json.loads((output_dir / "student" / "DONE.json").read_text())["train_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "hoc" / "offline.yaml"))
    parser.add_argument("--seeds", default="1", help="count (3 -> 42,43,44) or comma list")
    parser.add_argument("--pso_recipe", default=None, help="best_recipe.yaml written by `hf-kd search`")
    parser.add_argument("--output_dir", default="runs/hoc-quality")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    cli, rest = parser.parse_known_args()
    hf_logging.set_verbosity_error()
    logging.getLogger("hf_kd").setLevel(logging.WARNING)

    overrides = parse_overrides(rest)
    base = DistillationPipelineConfig.from_yaml(cli.recipe, overrides)
    metric = "blurb_micro_f1" if base.data.level == "sentence" else "micro_f1"
    pso_student = None
    if cli.pso_recipe:
        pso_student = DistillationPipelineConfig.from_yaml(cli.pso_recipe).student
    info = machine()
    runs: list[dict[str, Any]] = []
    for seed in parse_seeds(cli.seeds):
        root = Path(cli.output_dir) / f"seed{seed}"
        cached_dir = root / "student_kd_cached"
        config = dataclasses.replace(base, output_dir=str(cached_dir), seed=seed)
        run_pipeline(config)
        report = json.loads((cached_dir / "report.json").read_text())
        teacher_seconds = float(json.loads((cached_dir / "teacher" / "DONE.json").read_text())["train_seconds"])
        runs.append(
            {"seed": seed, "arm": "teacher", "train_seconds": teacher_seconds, **_scores(report, "teacher", metric)}
        )
        runs.append(
            {
                "seed": seed,
                "arm": "student_kd_cached",
                "train_seconds": _student_seconds(cached_dir),
                **_scores(report, "student", metric),
            }
        )
        teacher = dataclasses.replace(config.teacher, model=str(cached_dir / "teacher" / "model"))
        students = {
            "student_alone": dataclasses.replace(config.student, training={**config.student.training, "alpha": 1.0}),
            "student_kd_online": dataclasses.replace(config.student, online_teacher=True),
        }
        if pso_student is not None:
            students["student_kd_pso"] = pso_student
        for arm, student in students.items():
            out = root / arm
            arm_config = _quiet_evaluation(
                dataclasses.replace(config, output_dir=str(out), teacher=teacher, student=student)
            )
            run_pipeline(arm_config)
            report = json.loads((out / "report.json").read_text())
            runs.append(
                {
                    "seed": seed,
                    "arm": arm,
                    "train_seconds": _student_seconds(out),
                    **_scores(report, "student", metric),
                }
            )
        for row in runs[-len(students) - 2 :]:
            print(f"[hoc] seed {seed} {row['arm']}: validation {metric} {row.get('validation', float('nan')):.4f}")

    def agg(arm: str, key: str) -> tuple[float, float] | None:
        values = [r[key] for r in runs if r["arm"] == arm and key in r]
        if not values:
            return None
        return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    seeds = sorted({r["seed"] for r in runs})
    teacher_val = agg("teacher", "validation")
    lines = [
        f"Machine: {machine_line(info)}.",
        f"Recipe `{Path(cli.recipe).name}` (level {base.data.level}, train subset {base.data.train_size}), overrides "
        f"{overrides or 'none'}, seeds {seeds}; mean ± std over seeds. Metric: {metric} (%), threshold tuned on "
        "validation. Student train time: the distillation stage alone (the cached arm's caching pass is stage 3).",
        "",
        f"| model | validation {metric} | test {metric} | % of teacher (validation) | train time (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for arm in ARMS:
        val, test, secs = agg(arm, "validation"), agg(arm, "test"), agg(arm, "train_seconds")
        if val is None:
            continue
        ratio = f"{100 * val[0] / teacher_val[0]:.1f}" if teacher_val and teacher_val[0] > 0 else "–"
        test_text = f"{100 * test[0]:.2f} ± {100 * test[1]:.2f}" if test else "–"
        lines.append(f"| {arm} | {100 * val[0]:.2f} ± {100 * val[1]:.2f} | {test_text} | {ratio} | {secs[0]:.0f} |")
    markdown = "\n".join(lines)
    payload = {
        "machine": info,
        "settings": {**vars(cli), "overrides": overrides, "metric": metric, "seeds": seeds},
        "pso_student": None
        if pso_student is None
        else yaml.safe_load(yaml.safe_dump(dataclasses.asdict(pso_student))),
        "runs": runs,
    }
    paths = write_results("hoc_quality", payload, markdown, Path(cli.out) if cli.out else None)
    print(markdown)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
