"""Particle-swarm hyperparameter search for `DistillationTrainer` (`hyperparameter_search(backend="pso")`).

The swarm is pyswarms' `GlobalBestPSO`, driven one iteration at a time with its own backend operators (personal
bests, the star topology's global best, velocity and position updates), so that its whole state can be written to
disk between iterations and a later run can continue from it.

Search space
    `hp_space` maps a field of `DistillationTrainingArguments` to `(low, high)`, `(low, high, "log")` or
    `(low, high, "int")`. Particles move in the unit cube, one axis per field, and a coordinate `u` in [0, 1] maps to
    `low + u · (high − low)` (linear), `low · (high / low) ** u` (log: uniform in log space) or
    `floor(low + u · (high − low + 1))` capped at `high` (int: every integer gets an equal share of the axis). Working
    in the unit cube keeps `c1`, `c2`, `w` and the velocity clamp meaningful whatever the scale of each field. Out-of-
    bounds particles are put back on the nearest bound. Every trial's arguments are built with
    `dataclasses.replace(trainer.args, ...)`, so `__post_init__` re-checks every value (an `alpha` outside [0, 1] is
    refused); both ends of every range are checked that way before the first trial.

Trials
    Each trial is a fresh trainer of the same class, built from the search trainer's `model_init`, data, collator,
    metrics and callbacks with the trial's arguments and `output_dir/pso/trial-<k>` as output folder, trained, then
    evaluated with `evaluate()`; its objective is `compute_objective(metrics)`. Nothing (model, optimizer, scheduler,
    `TrainerState`, accelerate state) is shared between trials; stateful callbacks (`ExportableState`, e.g.
    `EarlyStoppingCallback`) are copied per trial, other callbacks are shared. A one-argument `model_init` receives
    the trial's hyperparameters as a dict. The teacher's logits are cached once over the training set (and the eval
    set when `teacher_eval_metrics` is on) before the first trial, and trials train without the online teacher, unless
    a trial enables hidden-state or attention losses, which need the teacher's activations. A particle whose
    hyperparameters equal those of an earlier trial (the bounds hold particles at the box's faces and corners, so they
    revisit points) is not trained again: its record takes that trial's objective and names it in `reused_from`, and it
    still counts as a trial of the swarm.

Resuming
    `output_dir/pso/state.json` holds the swarm (positions, velocities, personal and global bests), the completed
    iteration count, numpy's RNG state and every finished trial; it is rewritten after every iteration, together with
    `trials.csv`, `best_hyperparameters.yaml`, `best_run.json` and `convergence.png`. Each trial also leaves its
    result in
    `trial-<k>/pso_trial.json`, so a rerun skips the trials of an interrupted iteration that had finished, and a trial
    that saved checkpoints resumes from its last one. A rerun with the same space, seed and options continues where
    the search stopped (a larger `n_trials` extends it); a rerun of a finished search returns its best without
    training. pyswarms draws from numpy's global RNG, so every pyswarms call runs with the search's own saved RNG
    state swapped in, and the caller's RNG state is put back afterwards. (pyswarms also configures the root logger and
    creates `report.log` in the working directory when imported and per optimizer; that set-up is skipped.)

Parallel particles
    Under `torchrun` / `accelerate launch` with K processes, particle `i` of every iteration is trained by process
    `i % K`, and the objectives are exchanged with `torch.distributed.all_gather_object`, so that every process applies
    the same swarm update (process 0's state is then broadcast, so all processes hold exactly the same swarm). A trial
    must not synchronise gradients with the other processes, which train other particles. Each trial therefore runs
    in-process with accelerate's process state (`PartialState`, `AcceleratorState`, `GradientState`) emptied and the
    launcher's rank variables (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, ...) hidden, so that the trial's
    `TrainingArguments` and `Accelerator` see a single-process run on this process's device and never wrap the student
    in DDP (the trial's `ddp_backend` is unset too: with a backend named, accelerate would adopt the process group that
    the launcher initialised); the state and variables are put back after the trial, and only the search itself uses
    the process group. This was preferred to a subprocess per trial, which
    would have to pickle `model_init`, datasets, collators and metric functions (often closures) and pay a fresh
    interpreter and CUDA context per trial, and to `fork`, which is unsafe once CUDA is initialised. DeepSpeed and FSDP
    runs are refused with several processes, since one particle cannot be sharded over the others' devices.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from accelerate.utils import extract_model_from_parallel
from transformers import TrainerCallback, set_seed
from transformers.trainer_callback import DefaultFlowCallback, ExportableState, PrinterCallback, ProgressCallback
from transformers.trainer_utils import BestRun, default_compute_objective, get_last_checkpoint, number_of_arguments
from transformers.utils import logging

from ..constants import is_number
from .isolation import (
    all_gather,
    broadcast,
    is_distributed,
    pin_device,
    single_process_overrides,
    single_process_state,
)
from .space import DEFAULT_PSO_SPACE, ParamSpec, check_bounds, parse_space
from .swarm import (
    DEFAULT_PSO_OPTIONS,
    best_run,
    best_trial,
    make_optimizer,
    new_state,
    read_json,
    tell,
    write_json,
    write_reports,
)

__all__ = ["PSO_DIR", "run_pso"]

logger = logging.get_logger(__name__)

#: Folder under `args.output_dir` that holds the search state, the trials and the reports.
PSO_DIR = "pso"
_STATE_FILE = "state.json"
_TRIAL_FILE = "pso_trial.json"
_PARAMS_FILE = "pso_params.json"


def _has_logits(dataset: Any) -> bool:
    if isinstance(dataset, dict):
        return all(_has_logits(ds) for ds in dataset.values())
    return "teacher_logits" in (getattr(dataset, "column_names", None) or [])


def _trial_callbacks(trainer: Any) -> list[TrainerCallback]:
    """The search trainer's own callbacks (not those every trainer adds), stateful ones copied."""
    from transformers.integrations import get_reporting_integration_callbacks

    added = {DefaultFlowCallback, PrinterCallback, ProgressCallback}
    added.update(get_reporting_integration_callbacks(trainer.args.report_to))
    callbacks = []
    for cb in trainer.callback_handler.callbacks:
        if type(cb) in added:
            continue
        callbacks.append(copy.deepcopy(cb) if isinstance(cb, ExportableState) else cb)
    return callbacks


@dataclass
class _Search:
    """What every trial of one search shares."""

    trainer: Any
    specs: list[ParamSpec]
    pso_dir: str
    compute_objective: Callable[[dict[str, float]], float]
    hp_name: Callable[[dict[str, Any]], str] | None
    train_dataset: Any
    eval_dataset: Any
    isolate_device: torch.device | None
    rank: int


def _run_trial(
    search: _Search, iteration: int, particle: int, k: int, position: list[float], earlier: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Train and evaluate one particle, or reuse a result; returns its trial record.

    A result is reused when an earlier trial of this search (`earlier`) had the same hyperparameters: particles that
    the bounds hold at a corner of the box revisit one point, and training it again with the same seed would only
    repeat the run. The record then names that trial in `reused_from`. A result is also reused when an interrupted run
    of the search had finished this trial.
    """
    params = {spec.name: spec.value(u) for spec, u in zip(search.specs, position)}
    trial_dir = os.path.join(search.pso_dir, f"trial-{k}")
    record = {
        "trial": k,
        "iteration": iteration,
        "particle": particle,
        "process": search.rank,
        "position": [float(u) for u in position],
        "hyperparameters": params,
        "output_dir": trial_dir,
    }
    reused = _reused_result(record, earlier, trial_dir)
    if reused is not None:
        return reused
    os.makedirs(trial_dir, exist_ok=True)
    resume = None
    if read_json(os.path.join(trial_dir, _PARAMS_FILE)) == params and get_last_checkpoint(trial_dir) is not None:
        resume = get_last_checkpoint(trial_dir)
    write_json(os.path.join(trial_dir, _PARAMS_FILE), params)
    logger.info(f"PSO trial {k} (iteration {iteration}, particle {particle}): {params}")
    with single_process_state(search.isolate_device):
        trial_trainer = _trial_trainer(search, params, trial_dir, k)
        try:
            trial_trainer.train(resume_from_checkpoint=resume)
            metrics = trial_trainer.evaluate()
            objective = float(search.compute_objective(metrics))
        finally:
            # Give the accelerator memory back (a collection costs time on CPU).
            if trial_trainer.args.device.type != "cpu":
                trial_trainer.accelerator.free_memory()
            del trial_trainer
    record["objective"] = objective if math.isfinite(objective) else None
    write_json(os.path.join(trial_dir, _TRIAL_FILE), record)
    if record["objective"] is None:
        logger.warning(
            f"PSO trial {k}: the objective is {objective} (training diverged, or the metric could not be computed); "
            "the swarm treats this point as the worst possible."
        )
    else:
        logger.info(f"PSO trial {k}: objective {objective}")
    return record


def _reused_result(record: dict[str, Any], earlier: Sequence[dict[str, Any]], trial_dir: str) -> dict[str, Any] | None:
    """The trial's record from an earlier trial of the search with the same hyperparameters (`reused_from`), or from
    an interrupted run that had finished it; None when it must be trained."""
    k, params = record["trial"], record["hyperparameters"]
    same = next((t for t in earlier if t["hyperparameters"] == params), None)
    if same is not None:
        logger.info(f"PSO trial {k} has the hyperparameters of trial {same['trial']}; reusing its objective.")
        return {
            **record,
            "output_dir": same["output_dir"],
            "objective": same["objective"],
            "reused_from": same["trial"],
        }
    done = read_json(os.path.join(trial_dir, _TRIAL_FILE))
    if done is not None and done.get("position") == record["position"] and done.get("hyperparameters") == params:
        logger.info(f"PSO trial {k} was finished by an earlier run; reusing its objective {done['objective']}.")
        return {**record, "objective": done["objective"]}
    return None


def _trial_trainer(search: _Search, params: dict[str, Any], trial_dir: str, k: int) -> Any:
    """A trainer of the search's class for one trial: a fresh student from `model_init`, the trial's arguments, the
    search's datasets (with their cached logits), the teacher only when the trial needs it online."""
    trainer = search.trainer
    model_init = trainer.model_init
    if number_of_arguments(model_init) == 1:

        def trial_model_init() -> Any:
            return model_init(dict(params))

    else:
        trial_model_init = model_init
    run_name = search.hp_name(dict(params)) if search.hp_name is not None else f"pso-trial-{k}"
    overrides: dict[str, Any] = {"output_dir": trial_dir, "run_name": run_name}
    cached = _has_logits(search.train_dataset)
    if cached:
        # Already done by this search's teacher, and the trial may have no teacher.
        overrides.update(precompute_teacher_logits=False, keep_teacher_logits=True)
    overrides.update(single_process_overrides(search.isolate_device))
    args = replace(trainer.args, **params, **overrides)
    if search.isolate_device is not None:
        pin_device(args, search.isolate_device)
    online = args.uses_intermediate_losses or not (
        cached and (not args.teacher_eval_metrics or _has_logits(search.eval_dataset))
    )
    teacher = (
        extract_model_from_parallel(trainer.teacher_model) if online and trainer.teacher_model is not None else None
    )
    set_seed(args.seed)  # as Trainer.train does before calling `model_init`
    return type(trainer)(
        model=trial_model_init(),  # one fresh student per trial (a `model_init` would be called twice)
        teacher_model=teacher,
        args=args,
        data_collator=trainer.data_collator,
        train_dataset=search.train_dataset,
        eval_dataset=search.eval_dataset,
        processing_class=trainer.processing_class,
        compute_metrics=trainer.compute_metrics,
        callbacks=_trial_callbacks(trainer),
        optimizer_cls_and_kwargs=trainer.optimizer_cls_and_kwargs,
        preprocess_logits_for_metrics=trainer.preprocess_logits_for_metrics,
        teacher_processing_class=getattr(trainer, "teacher_processing_class", None),
    )


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_options(pso_options: Mapping[str, Any] | None) -> dict[str, float]:
    if pso_options is None:
        return dict(DEFAULT_PSO_OPTIONS)
    if not isinstance(pso_options, Mapping):
        raise ValueError(f"`pso_options` must be a dict with keys 'c1', 'c2' and 'w', got {pso_options!r}.")
    if set(pso_options) != set(DEFAULT_PSO_OPTIONS):
        raise ValueError(f"`pso_options` must have exactly the keys 'c1', 'c2' and 'w', got {sorted(pso_options)}.")
    for key, value in pso_options.items():
        if not is_number(value) or not math.isfinite(value) or value < 0:
            raise ValueError(f"`pso_options[{key!r}]` must be a finite number >= 0, got {value!r}.")
    return {key: float(pso_options[key]) for key in DEFAULT_PSO_OPTIONS}


def _check_clamp(velocity_clamp: Any) -> list[float] | None:
    if velocity_clamp is None:
        return None
    if (
        not isinstance(velocity_clamp, tuple | list)
        or len(velocity_clamp) != 2
        or not all(is_number(v) and math.isfinite(v) for v in velocity_clamp)
        or velocity_clamp[0] >= velocity_clamp[1]
    ):
        raise ValueError(f"`velocity_clamp` must be (min, max) with min < max, or None, got {velocity_clamp!r}.")
    return [float(velocity_clamp[0]), float(velocity_clamp[1])]


def run_pso(
    trainer: Any,
    hp_space: Mapping[str, Any] | None = None,
    n_trials: int = 20,
    direction: str = "minimize",
    compute_objective: Callable[[dict[str, float]], float] | None = None,
    n_particles: int | None = None,
    seed: int | None = None,
    pso_options: Mapping[str, float] | None = None,
    velocity_clamp: tuple[float, float] | None = (-0.5, 0.5),
    hp_name: Callable[[dict[str, Any]], str] | None = None,
) -> BestRun:
    """Search `DistillationTrainingArguments` fields with a particle swarm (pyswarms' `GlobalBestPSO`).

    Runs `ceil(n_trials / n_particles)` iterations of `n_particles` trials each (so `n_trials` rounded up to whole
    iterations). Every trial trains a fresh student from `trainer.model_init` with the trial's arguments and scores
    it with `compute_objective(trainer.evaluate())`. The search state is saved in `output_dir/pso/` after every
    iteration; calling again with the same space, seed and options continues it, and returns at once when it is
    finished. See the module docstring for the design.

    Args:
        trainer (`DistillationTrainer`):
            The trainer to search for; it needs `model_init`, `train_dataset` and `eval_dataset`.
        hp_space (`Mapping[str, tuple]`, *optional*):
            Field -> `(low, high)`, `(low, high, "log")` or `(low, high, "int")`. Defaults to `DEFAULT_PSO_SPACE`
            (learning rate on a log scale, temperature and alpha).
        n_trials (`int`, *optional*, defaults to 20):
            Number of trials, rounded up to a multiple of `n_particles`.
        direction (`str`, *optional*, defaults to `"minimize"`):
            `"minimize"` or `"maximize"` the objective.
        compute_objective (`Callable[[dict[str, float]], float]`, *optional*):
            Objective from the evaluation metrics. Defaults to transformers' `default_compute_objective` (the eval
            loss, or the sum of the metrics when there are others).
        n_particles (`int`, *optional*):
            Swarm size. Defaults to `min(10, n_trials)`.
        seed (`int`, *optional*):
            Seed of the swarm's random draws. Defaults to `trainer.args.seed`. The same seed gives the same search.
        pso_options (`Mapping[str, float]`, *optional*):
            pyswarms' `{"c1": ..., "c2": ..., "w": ...}`. Defaults to `DEFAULT_PSO_OPTIONS`.
        velocity_clamp (`tuple[float, float]`, *optional*, defaults to `(-0.5, 0.5)`):
            Velocity limits per unit-cube axis (also the range of the random initial velocities); `None` for none.
        hp_name (`Callable[[dict], str]`, *optional*):
            Run name of a trial (its `args.run_name`, shown by experiment trackers) from its hyperparameters.
            Defaults to `"pso-trial-<k>"`.

    Returns:
        [`~trainer_utils.BestRun`]: the best trial's number (`run_id`), objective and hyperparameters.
    """
    _check_trainer(trainer, direction)
    n_trials = _check_int("n_trials", n_trials, 1)
    n_particles = min(10, n_trials) if n_particles is None else _check_int("n_particles", n_particles, 1)
    seed = trainer.args.seed if seed is None else _check_int("seed", seed, 0)
    options, clamp = _check_options(pso_options), _check_clamp(velocity_clamp)
    compute_objective = default_compute_objective if compute_objective is None else compute_objective
    args = trainer.args
    world_size, rank = args.world_size, args.process_index
    distributed = is_distributed(world_size)
    specs = parse_space(DEFAULT_PSO_SPACE if hp_space is None else hp_space, args, check_values=False)
    check_bounds(specs, args, args.device if distributed else None)
    if distributed and (getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False)):
        raise ValueError(
            "hyperparameter_search(backend='pso') trains one particle per process, so it cannot shard a trial with "
            "DeepSpeed or FSDP; launch the search without them."
        )
    pso_dir = os.path.join(args.output_dir, PSO_DIR)
    iterations = math.ceil(n_trials / n_particles)
    config = {
        "space": {spec.name: spec.to_json() for spec in specs},
        "n_particles": n_particles,
        "seed": seed,
        "direction": direction,
        "pso_options": options,
        "velocity_clamp": clamp,
    }
    state = _shared_state(pso_dir, config, rank, world_size)
    if state["iteration"] < iterations:
        train_dataset, eval_dataset = trainer.train_dataset, trainer.eval_dataset
        if trainer.teacher_model is not None:
            # One pass of the teacher for the whole search; the trials train from the cached column.
            train_dataset = trainer.with_teacher_logits(train_dataset)
            if args.teacher_eval_metrics:
                eval_dataset = trainer.with_teacher_logits(eval_dataset)
        search = _Search(
            trainer=trainer,
            specs=specs,
            pso_dir=pso_dir,
            compute_objective=compute_objective,
            hp_name=hp_name,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            isolate_device=args.device if distributed else None,
            rank=rank,
        )
        state = _iterate(search, state, iterations, world_size)
    elif rank == 0 and state["trials"] and not os.path.isfile(os.path.join(pso_dir, "trials.csv")):
        write_reports(pso_dir, state)
    best = best_trial(state["trials"], direction)
    if best is None:
        raise ValueError("The PSO search ran no trials.")
    return best_run(best)


def _check_trainer(trainer: Any, direction: str) -> None:
    """A PSO search trains a fresh student per trial (`model_init`) and scores it on `eval_dataset`."""
    if getattr(trainer, "model_init", None) is None:
        raise RuntimeError(
            "hyperparameter_search(backend='pso') trains a fresh student per trial, so the trainer needs `model_init` "
            "(a function returning a new student), not only `model`."
        )
    if trainer.train_dataset is None or trainer.eval_dataset is None:
        raise ValueError("hyperparameter_search(backend='pso') needs both `train_dataset` and `eval_dataset`.")
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"`direction` must be 'minimize' or 'maximize' for backend='pso', got {direction!r}.")


def _shared_state(pso_dir: str, config: dict[str, Any], rank: int, world_size: int) -> dict[str, Any]:
    """The search's state: process 0 reads it (or starts it) and hands it to the others, so that all start from the
    same swarm; a saved search with another configuration is refused, naming the field."""
    state_path = os.path.join(pso_dir, _STATE_FILE)
    state, problem = None, None
    if rank == 0:
        state = read_json(state_path)
        if state is None:
            state = new_state(config)
            os.makedirs(pso_dir, exist_ok=True)
            write_json(state_path, state)
        else:
            for key, value in config.items():
                if state["config"].get(key) != value:
                    problem = (
                        f"{state_path} holds a PSO search with {key}={state['config'].get(key)!r}, but this call "
                        f"asks for {key}={value!r}; use another `output_dir` or delete {pso_dir} to start over."
                    )
                    break
    state, problem = broadcast((state, problem), world_size)
    if problem is not None:
        raise ValueError(problem)
    return state


def _iterate(search: _Search, state: dict[str, Any], iterations: int, world_size: int) -> dict[str, Any]:
    """Run the remaining iterations: this process's particles, the gathered objectives, the swarm update, the files."""
    config = state["config"]
    n_particles, direction = config["n_particles"], config["direction"]
    distributed = is_distributed(world_size)
    state_path = os.path.join(search.pso_dir, _STATE_FILE)
    optimizer, _ = make_optimizer(config)
    while state["iteration"] < iterations:
        iteration = state["iteration"]
        positions = state["swarm"]["position"]
        results: dict[int, dict[str, Any]] = {}
        error: Exception | None = None
        for particle in range(search.rank, n_particles, world_size):
            try:
                k = iteration * n_particles + particle
                earlier = [*state["trials"], *results.values()]
                results[particle] = _run_trial(search, iteration, particle, k, positions[particle], earlier)
            except Exception as err:
                if not distributed:
                    raise
                error = err  # still join the gather below, so that the other processes do not wait forever
                break
        gathered = all_gather((results, None if error is None else f"{type(error).__name__}: {error}"), world_size)
        if error is not None:
            raise error
        for process, (_, message) in enumerate(gathered):
            if message is not None:
                raise RuntimeError(f"A PSO trial failed on process {process}: {message}")
        merged = {particle: record for part, _ in gathered for particle, record in part.items()}
        new_trials = [merged[particle] for particle in range(n_particles)]
        sign = 1.0 if direction == "minimize" else -1.0
        costs = np.array([np.inf if t["objective"] is None else sign * t["objective"] for t in new_trials])
        tell(optimizer, state, costs)
        state["trials"] = [*state["trials"], *new_trials]
        state["iteration"] = iteration + 1
        # Every process computed the same update; process 0's copy is authoritative.
        state = broadcast(state, world_size)
        if search.rank == 0:
            write_json(state_path, state)
            write_reports(search.pso_dir, state)
        best = best_trial(state["trials"], direction)
        logger.info(
            f"PSO iteration {iteration + 1}/{iterations}: best objective {best['objective']} (trial {best['trial']})."
        )
    return state
