"""Quality on HoC: the teacher, a student fine-tuned alone, and the student distilled (online, cached, PSO settings).

    python benchmarks/hoc_quality.py [--recipe recipes/hoc/offline.yaml] [--seeds 1] [--pso_recipe BEST.yaml]
        [--output_dir runs/hoc-quality] [--section.field VALUE ...]

Everything goes through the pipeline (`hf_kd.pipeline.run.run_pipeline`) of the offline HoC recipe, so the numbers are
those `hf-kd distill` prints. For every seed (`--seeds 3` means 42, 43, 44, or a comma-separated list):

1. `student_kd_cached`: the recipe as it is: the 6-layer teacher is fine-tuned, its logits cached, and a 3-layer
   student built from its layers is distilled from the cache. This run also gives the `teacher` row.
2. `student_alone`: the same student trained on the hard labels only (`student.alpha=1`);
3. `student_kd_online`: the recipe's distillation with the teacher run at every step (`student.online_teacher`);
4. `student_kd_pso` (with `--pso_recipe`, the `best_recipe.yaml` that `hf-kd search` writes): the recipe's
   student with the searched fields (its `search.hp_space` keys) set to the values the search found.

Runs 2-4 reuse the teacher fine-tuned in run 1 (`teacher.model` set to it: the pipeline skips stage 1), so every
student starts from the same teacher and the same initialisation. The scores are the recipe's headline metric
(`blurb_micro_f1` at sentence level, `micro_f1` at abstract level) on the validation and test splits, with the
threshold tuned on validation. Writes `hoc_quality.json` and `hoc_quality.md` (numbers only).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    arms_table,
    benchmark_parser,
    machine,
    machine_line,
    parse_seeds,
    per_seed_table,
    quiet_logs,
    run_student_arms,
    write_results,
)

from hf_kd.recipe.config import DistillationPipelineConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = benchmark_parser(
        __doc__, "hoc_quality", recipe="recipes/hoc/offline.yaml", seeds="1", output_dir="runs/hoc-quality"
    )
    parser.add_argument("--pso_recipe", default=None, help="best_recipe.yaml written by `hf-kd search`")
    parser.add_argument(
        "--skip", default="", help="comma list of arms not to run, e.g. student_kd_online (it equals the cached arm)"
    )
    cli, rest = parser.parse_known_args()
    quiet_logs()

    base = DistillationPipelineConfig.from_yaml(cli.recipe, args=rest)
    metric = "blurb_micro_f1" if base.data.level == "sentence" else "micro_f1"
    arms = {
        "student_alone": dataclasses.replace(base.student, training={**base.student.training, "alpha": 1.0}),
        "student_kd_online": dataclasses.replace(base.student, online_teacher=True),
    }
    if cli.pso_recipe:
        # Only the searched fields: the search may have run on a smaller budget (fewer examples or epochs).
        found = DistillationPipelineConfig.from_yaml(cli.pso_recipe)
        searched = {k: found.student.training[k] for k in (found.search.hp_space or {}) if k in found.student.training}
        arms["student_kd_pso"] = dataclasses.replace(base.student, training={**base.student.training, **searched})
    skipped = [name for name in cli.skip.split(",") if name]
    unknown = sorted(set(skipped) - set(arms))
    if unknown:
        parser.error(f"--skip: unknown arm(s) {unknown}; the arms that can be skipped are {sorted(arms)}")
    arms = {name: student for name, student in arms.items() if name not in skipped}
    info = machine()
    seeds = parse_seeds(cli.seeds)
    rows = run_student_arms(base, arms, seeds, metric, Path(cli.output_dir), reference="student_kd_cached")
    order = [
        a
        for a in ("teacher", "student_alone", "student_kd_online", "student_kd_cached", "student_kd_pso")
        if a not in skipped
    ]
    lines = [
        f"Machine: {machine_line(info)}.",
        f"Recipe `{Path(cli.recipe).name}` (level {base.data.level}, train subset {base.data.train_size}), overrides "
        f"{' '.join(rest) or 'none'}, seeds {seeds}; mean ± std over seeds. Metric: {metric} (%), threshold tuned on "
        "validation. Train time: the training stage alone (the cached arm's caching pass is stage 3).",
        "",
        *arms_table(rows, order, metric),
        "",
        "Per seed:",
        "",
        *per_seed_table(rows, order, metric),
    ]
    markdown = "\n".join(lines)
    payload = {
        "machine": info,
        "settings": {**vars(cli), "overrides": rest, "metric": metric, "seeds": seeds},
        "arms": {name: dataclasses.asdict(student) for name, student in arms.items()},
        "runs": rows,
    }
    write_results(cli.name, payload, markdown, cli.out)


if __name__ == "__main__":
    main()
