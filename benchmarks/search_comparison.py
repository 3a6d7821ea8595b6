"""PSO against random search and Optuna's TPE at an equal budget, on the offline HoC recipe.

    python benchmarks/search_comparison.py [--recipe recipes/hoc/offline_abstract.yaml] [--n_trials 6]
        [--n_particles 3] [--backends pso,random,tpe] [--output_dir runs/search-comparison] [--section.field VALUE ...]

The recipe's teacher stages (fine-tuning, gate, cached logits) run once, under `--output_dir`; then each backend runs
`hf_kd.run_search` with the same `search.hp_space`, the same number of trials, the same seed and the same
objective (validation `eval_<search.metric>`), one after another in this process:

- `pso`: `hyperparameter_search(backend="pso")` (pyswarms `GlobalBestPSO`, `n_trials / n_particles` iterations);
- `random`, `tpe`: `hyperparameter_search(backend="optuna")` with Optuna's `RandomSampler` / `TPESampler`.

Reports, per backend: the best validation objective, its hyperparameters, the search's wall time and CPU time.
Extra `--section.field VALUE` arguments override the recipe as with `hf-kd`. Writes `search_comparison.json` and
`search_comparison.md` (numbers only).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import benchmark_parser, machine, machine_line, quiet_logs, write_results  # noqa: E402

from hf_kd.pipeline.recipe_search import run_search  # noqa: E402
from hf_kd.recipe.config import DistillationPipelineConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = benchmark_parser(
        __doc__, "search_comparison", recipe="recipes/hoc/offline_abstract.yaml", output_dir="runs/search-comparison"
    )
    parser.add_argument("--n_trials", type=int, default=6)
    parser.add_argument("--n_particles", type=int, default=3)
    parser.add_argument("--backends", default="pso,random,tpe")
    cli, rest = parser.parse_known_args()
    quiet_logs()

    config = DistillationPipelineConfig.from_yaml(cli.recipe, {"output_dir": cli.output_dir}, args=rest)
    backends = [b.strip() for b in cli.backends.split(",") if b.strip()]
    info = machine()

    rows = []
    for backend in backends:
        search = dataclasses.replace(config, search=dataclasses.replace(config.search, backend=backend))
        wall, cpu = time.perf_counter(), time.process_time()
        best = run_search(search, n_trials=cli.n_trials, n_particles=cli.n_particles)
        row = {
            "backend": backend,
            "best_objective": float(best.objective),
            "hyperparameters": best.hyperparameters,
            "wall_seconds": time.perf_counter() - wall,
            "cpu_seconds": time.process_time() - cpu,
        }
        rows.append(row)
        print(f"[search] {backend}: best {row['best_objective']:.4f} in {row['wall_seconds']:.0f} s", flush=True)

    metric = config.search.metric
    lines = [
        f"Machine: {machine_line(info)}. Recipe `{Path(cli.recipe).name}` with overrides "
        f"{' '.join(rest) or 'none'}; {cli.n_trials} trials per search "
        f"(PSO: {cli.n_particles} particles), "
        f"seed {config.seed}, objective validation {metric}. The teacher stages ran once before the searches "
        "(the first search's wall time includes them when they were not already done).",
        "",
        f"| search | best validation {metric} | best hyperparameters | wall time (s) | CPU time (s) |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for row in rows:
        params = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["hyperparameters"].items()
        )
        lines.append(
            f"| {row['backend']} | {100 * row['best_objective']:.2f} | {params} | {row['wall_seconds']:.0f} | "
            f"{row['cpu_seconds']:.0f} |"
        )
    markdown = "\n".join(lines)
    payload = {
        "machine": info,
        "settings": {**vars(cli), "overrides": rest, "search": dataclasses.asdict(config.search)},
        "rows": rows,
    }
    write_results(cli.name, payload, markdown, cli.out)


if __name__ == "__main__":
    main()
