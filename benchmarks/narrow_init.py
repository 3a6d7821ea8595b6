"""Which initialisation for a narrow student: PCA, slice or random, each distilled the same way from the same teacher.

    python benchmarks/narrow_init.py [--seeds 42,] [--hidden_size 192] [--output_dir runs/deploy-bench]
        [--section.field VALUE ...]

Runs in the folder of `benchmarks/deploy.py` (its teacher and its PCA arm are reused from their markers): the deploy
recipe's 3-layer student from teacher layers [0, 2, 4], pruned vocabulary, `hidden_size` 192, cosine hidden-state
term of weight 1, distilled with `narrow_init` `pca` (the deploy benchmark's arm), `slice` and `random`. Reports the
BLURB micro-F1 of each on validation and test, and the validation micro-F1 of the student before any training (the
initialisation alone, with the teacher's head carried over). Writes `narrow_init.json` and `narrow_init.md`.
"""

from __future__ import annotations

import dataclasses
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
    run_student_arms,
    write_results,
)

from hf_kd.recipe.config import DistillationPipelineConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _before_training(base: DistillationPipelineConfig, student: object, root: Path, metric: str) -> float:
    """Validation `metric` of a freshly built student (no training), through the pipeline's evaluation."""
    from hf_kd.pipeline.run import PipelineRun
    from hf_kd.pipeline.stages import PIPELINE
    from hf_kd.pipeline.students import new_student

    teacher = dataclasses.replace(base.teacher, model=str(root / "student_3l_pruned" / "teacher" / "model"))
    config = dataclasses.replace(base, teacher=teacher, student=student, output_dir=str(root / "init_probe"))
    run = PipelineRun(config, PIPELINE)
    run.teacher_path = config.teacher.model
    split = {run.validation_split: run.student_evals[run.validation_split]}
    metrics, _ = run.evaluate(new_student(run), run.student_tokenizer, split, Path(config.output_dir))
    return float(metrics[run.validation_split][metric])


def main() -> None:
    parser = benchmark_parser(
        __doc__, "narrow_init", recipe="recipes/hoc/deploy_offline.yaml", seeds="42,", output_dir="runs/deploy-bench"
    )
    parser.add_argument("--hidden_size", type=int, default=192)
    cli, rest = parser.parse_known_args()
    quiet_logs()
    info = machine()
    base = DistillationPipelineConfig.from_yaml(cli.recipe, args=rest)
    metric = "blurb_micro_f1"
    training = {**base.student.training, "hidden_loss_weight": 1.0, "hidden_loss": "cosine"}
    width = cli.hidden_size
    arms = {
        f"student_3l_{width}_pruned" + ("" if init == "pca" else f"_{init}"): dataclasses.replace(
            base.student, hidden_size=width, narrow_init=init, training=training
        )
        for init in ("pca", "slice", "random")
    }
    seeds = parse_seeds(cli.seeds)
    rows = run_student_arms(base, arms, seeds, metric, Path(cli.output_dir), reference="student_3l_pruned")
    root = Path(cli.output_dir) / f"seed{seeds[0]}"
    untrained = {name: _before_training(base, student, root, metric) for name, student in arms.items()}
    order = ["teacher", *arms]
    lines = [
        f"Machine: {machine_line(info)}; load average at start {info.get('load_average_at_start')}.",
        f"Recipe `{Path(cli.recipe).name}` with `student.hidden_size` {width}, cosine hidden-state term (weight 1); "
        f"seeds {seeds}. BLURB micro-F1 (%), threshold tuned on validation.",
        "",
        "| narrow_init | validation F1 before training | validation F1 | test F1 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in arms:
        done = [r for r in rows if r["arm"] == name]
        val = sum(r["validation"] for r in done) / len(done)
        test = sum(r["test"] for r in done) / len(done)
        init = arms[name].narrow_init
        lines.append(f"| {init} | {100 * untrained[name]:.2f} | {100 * val:.2f} | {100 * test:.2f} |")
    lines += ["", *per_seed_table(rows, order, metric)]
    markdown = "\n".join(lines)
    payload = {"machine": info, "settings": {**vars(cli), "overrides": rest}, "runs": rows, "untrained": untrained}
    write_results(cli.name, payload, markdown, cli.out)


if __name__ == "__main__":
    main()
