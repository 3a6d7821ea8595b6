"""`hf-kd search`: a recipe's hyperparameter search after its teacher stages; the best trial is written as a recipe."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

from ..evaluation.tasks import default_metric
from ..processes import barrier, is_main_process, start_state
from ..recipe.config import DistillationPipelineConfig
from .context import PipelineRun
from .markers import RunLock
from .stages import PIPELINE, STAGES
from .students import new_student

__all__ = ["run_search"]


def run_search(
    config: DistillationPipelineConfig,
    n_trials: int | None = None,
    n_particles: int | None = None,
    force_unlock: bool = False,
) -> Any:
    """
    Particle-swarm search of the student's distillation hyperparameters (`hf_kd.search`): `hf-kd search`.

    Runs (or reuses) stages 1-3 of the pipeline (teacher, gate, cached logits), then
    `DistillationTrainer.hyperparameter_search(backend="pso", ...)` with a fresh student per trial, the space of the
    recipe's `search:` section, and `eval_<search.metric>` on the validation split as objective. The search writes
    under `output_dir/search/pso/` and resumes like the pipeline. At the end, `output_dir/search/best_recipe.yaml`
    (`search/<backend>/best_recipe.yaml` for Optuna) is the recipe with the best hyperparameters in its `student:`
    section, the fine-tuned teacher as `teacher.model` and `output_dir/best` as output folder: `hf-kd distill` of it
    trains the best student. With `search.backend: tpe` or `random`, the same
    space and objective go to `hyperparameter_search(backend="optuna")` with Optuna's `TPESampler` /
    `RandomSampler` (seeded with `seed`), e.g. to compare searches at an equal budget.

    Args:
        config ([`~hf_kd.recipe.config.DistillationPipelineConfig`]):
            The recipe.
        n_trials (`int`, *optional*):
            Overrides `search.n_trials`.
        n_particles (`int`, *optional*):
            Overrides `search.n_particles`.
        force_unlock (`bool`, *optional*, defaults to `False`):
            Take over a lock of `output_dir` written on another host or unreadable (`hf_kd.pipeline.markers.RunLock`).

    Returns:
        `transformers.trainer_utils.BestRun`: The best trial.
    """

    search = config.search
    backend = search.backend
    if backend != "pso":
        try:
            import optuna  # noqa: F401
        except ImportError as error:
            raise ImportError(
                f"`search.backend: {backend}` uses Optuna, which is not installed; `pip install optuna` (or the "
                "`search` extra of hf-kd)."
            ) from error
    start_state(cpu=config.use_cpu)
    with RunLock(Path(config.output_dir), force_unlock) if is_main_process() else contextlib.nullcontext():
        return _run_search(config, n_trials, n_particles)


def _run_search(config: DistillationPipelineConfig, n_trials: int | None, n_particles: int | None) -> Any:
    search, backend = config.search, config.search.backend
    run = PipelineRun(config, PIPELINE)
    run.start()
    for stage in PIPELINE[: STAGES.index("teacher_logits") + 1]:  # up to the teacher's logits
        stage.run(run)
    train = run.logits
    metric = search.metric or default_metric(run.task, run.grouped)
    # PSO keeps its state in search/pso/; an Optuna search's trial folders go to search/<backend>/.
    search_dir = run.root / "search" if backend == "pso" else run.root / "search" / backend
    # A zero-argument `model_init`: Trainer passes the trial to a one-argument one.
    trainer = run.distillation_trainer(search_dir, train, model_init=lambda: new_student(run))
    args = trainer.args
    key = f"eval_{metric}"

    def objective(metrics: dict[str, float]) -> float:
        if key not in metrics:
            raise ValueError(f"Search metric {key!r} not among the evaluation metrics: {sorted(metrics)}.")
        return float(metrics[key])

    hp_space = {name: tuple(bounds) for name, bounds in search.hp_space.items()} if search.hp_space else None
    best = _search(trainer, backend, hp_space, objective, config, n_trials, n_particles, args)
    # The recipe with the best hyperparameters in its student section: `hf-kd distill BEST` trains that student from
    # the teacher fine-tuned here (so its stage 1 is skipped), in a run folder of its own, from the general
    # distillation made here.
    general = None if run.general_model is None else {"model": run.general_model}
    best_config = dataclasses.replace(
        config,
        teacher=dataclasses.replace(config.teacher, model=str(run.teacher_path)),
        student=dataclasses.replace(
            config.student,
            training={**config.student.training, **dict(best.hyperparameters or {})},
            general_distillation=general,
        ),
        output_dir=str(Path(config.output_dir) / "best"),
    )
    if is_main_process() and best is not None:
        search_dir.mkdir(parents=True, exist_ok=True)
        header = (
            f"# The recipe with the best of the {backend} search's trials (objective {best.objective}, "
            f"eval_{metric}, {search.direction}).\n"
        )
        (search_dir / "best_recipe.yaml").write_text(header + best_config.to_yaml(), encoding="utf-8")
    barrier()
    return best


def _search(
    trainer: Any,
    backend: str,
    hp_space: dict[str, tuple] | None,
    objective: Any,
    config: DistillationPipelineConfig,
    n_trials: int | None,
    n_particles: int | None,
    args: Any,
) -> Any:
    search = config.search
    if backend != "pso":
        import optuna

        from ..search import DEFAULT_PSO_SPACE, optuna_space, parse_space

        n = n_trials if n_trials is not None else search.n_trials
        sampler_class = optuna.samplers.TPESampler if backend == "tpe" else optuna.samplers.RandomSampler
        return trainer.hyperparameter_search(
            backend="optuna",
            hp_space=optuna_space(parse_space(hp_space or DEFAULT_PSO_SPACE, args)),
            n_trials=n,
            direction=search.direction,
            compute_objective=objective,
            sampler=sampler_class(seed=config.seed),
        )
    return trainer.hyperparameter_search(
        backend="pso",
        hp_space=hp_space,
        n_trials=n_trials if n_trials is not None else search.n_trials,
        n_particles=n_particles if n_particles is not None else search.n_particles,
        seed=config.seed,
        direction=search.direction,
        compute_objective=objective,
    )
