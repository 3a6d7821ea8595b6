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

import contextlib
import copy
import csv
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from accelerate.state import AcceleratorState, GradientState, PartialState
from accelerate.utils import extract_model_from_parallel
from transformers import TrainerCallback
from transformers.trainer_callback import DefaultFlowCallback, ExportableState, PrinterCallback, ProgressCallback
from transformers.trainer_utils import BestRun, default_compute_objective, get_last_checkpoint, number_of_arguments
from transformers.utils import logging

from .teacher_cache import cache_teacher_logits

__all__ = [
    "DEFAULT_PSO_OPTIONS",
    "DEFAULT_PSO_SPACE",
    "PSO_DIR",
    "ParamSpec",
    "optuna_space",
    "parse_space",
    "run_pso",
]

logger = logging.get_logger(__name__)

#: Folder under `args.output_dir` that holds the search state, the trials and the reports.
PSO_DIR = "pso"
#: Space searched when `hp_space` is not given.
DEFAULT_PSO_SPACE: dict[str, tuple] = {
    "learning_rate": (1e-5, 5e-4, "log"),
    "temperature": (1.0, 8.0),
    "alpha": (0.0, 1.0),
}
#: pyswarms coefficients: cognitive `c1`, social `c2` and inertia `w`.
DEFAULT_PSO_OPTIONS: dict[str, float] = {"c1": 0.5, "c2": 0.3, "w": 0.9}

_KINDS = ("linear", "log", "int")
_STATE_FILE = "state.json"
_TRIAL_FILE = "pso_trial.json"
_PARAMS_FILE = "pso_params.json"
_STATE_VERSION = 1
# Variables through which launchers tell accelerate that the process is one of several.
_LAUNCHER_ENV = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "GROUP_WORLD_SIZE",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "PMI_RANK",
    "PMI_SIZE",
    "OMPI_COMM_WORLD_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MV2_COMM_WORLD_RANK",
    "MV2_COMM_WORLD_SIZE",
    "MV2_COMM_WORLD_LOCAL_RANK",
    "MV2_COMM_WORLD_LOCAL_SIZE",
    "MPI_LOCALRANKID",
    "MPI_LOCALNRANKS",
    "ACCELERATE_TORCH_DEVICE",
)


# ----------------------------------------------------------------------------- search space


@dataclass(frozen=True)
class ParamSpec:
    """One searched field: its range and how a unit-cube coordinate maps to a value.

    Args:
        name (`str`):
            The `DistillationTrainingArguments` field.
        low (`float`):
            Lowest value (inclusive).
        high (`float`):
            Highest value (inclusive), > `low`.
        kind (`str`, *optional*, defaults to `"linear"`):
            `"linear"`, `"log"` (uniform in log space, `low` > 0) or `"int"` (integers in [low, high]).
    """

    name: str
    low: float
    high: float
    kind: str = "linear"

    def value(self, u: float) -> float | int:
        """The field value at unit-cube coordinate `u` (clipped to [0, 1])."""
        u = min(max(float(u), 0.0), 1.0)
        if self.kind == "int":
            low, high = int(self.low), int(self.high)
            return min(high, int(math.floor(low + u * (high - low + 1))))
        if self.kind == "log":
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + u * (self.high - self.low)
        return min(max(value, float(self.low)), float(self.high))

    def to_json(self) -> list:
        """`[low, high, kind]`, as kept in the search state."""
        return [self.low, self.high, self.kind]


def _field_kind(args: Any, name: str) -> str | None:
    """`"int"` or `"float"` for a numeric field of `args`, `None` for any other type."""
    for f in fields(args):
        if f.name == name:
            annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            tokens = set(re.findall(r"[A-Za-z_]+", annotation)) - {"typing", "Optional", "Union", "None", "NoneType"}
            if tokens == {"int"}:
                return "int"
            if tokens and tokens <= {"int", "float"}:
                return "float"
            return None
    return None


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool | np.bool_)


def parse_space(hp_space: Mapping[str, Any], args: Any, check_values: bool = True) -> list[ParamSpec]:
    """Validate a PSO search space against the training arguments and return one `ParamSpec` per field.

    Args:
        hp_space (`Mapping[str, tuple]`):
            Field name -> `(low, high)`, `(low, high, "log")` or `(low, high, "int")`.
        args (`DistillationTrainingArguments`):
            The arguments the trials start from; every key must be one of their numeric fields.
        check_values (`bool`, *optional*, defaults to `True`):
            Also build the arguments with each field at both ends of its range, so that values the arguments refuse
            (e.g. `alpha` > 1) are reported before any training.

    Returns:
        `list[ParamSpec]`: in the order of `hp_space`.
    """
    if not isinstance(hp_space, Mapping) or len(hp_space) == 0:
        raise ValueError(
            f"`hp_space` must be a non-empty dict of field -> (low, high[, 'log' | 'int']) for backend='pso', "
            f"got {hp_space!r}."
        )
    init_fields = {f.name for f in fields(args) if f.init}
    specs = []
    for name, spec in hp_space.items():
        if not isinstance(name, str) or name not in init_fields or not hasattr(args, name):
            raise ValueError(f"`hp_space` key {name!r} is not a field of {type(args).__name__}.")
        if not isinstance(spec, tuple | list) or len(spec) not in (2, 3):
            raise ValueError(f"`hp_space[{name!r}]` must be (low, high) or (low, high, kind), got {spec!r}.")
        low, high = spec[0], spec[1]
        kind = spec[2] if len(spec) == 3 else "linear"
        if kind not in _KINDS:
            raise ValueError(f"`hp_space[{name!r}]` has kind {kind!r}; use one of {', '.join(map(repr, _KINDS))}.")
        for bound, label in ((low, "low"), (high, "high")):
            if not _is_number(bound) or not math.isfinite(bound):
                raise ValueError(f"`hp_space[{name!r}]` {label} must be a finite number, got {bound!r}.")
        if low >= high:
            raise ValueError(f"`hp_space[{name!r}]` needs low < high, got low={low!r}, high={high!r}.")
        if kind == "log" and low <= 0:
            raise ValueError(f"`hp_space[{name!r}]` is on a log scale, so low must be > 0, got low={low!r}.")
        if kind == "int" and (int(low) != low or int(high) != high):
            raise ValueError(f"`hp_space[{name!r}]` is an int range, so its bounds must be integers, got {spec!r}.")
        field_kind = _field_kind(args, name)
        if field_kind is None:
            raise ValueError(
                f"`hp_space` key {name!r} is not a numeric field of {type(args).__name__} (current value "
                f"{getattr(args, name)!r}); only int and float fields can be searched."
            )
        if field_kind == "int" and kind != "int":
            raise ValueError(
                f"`hp_space[{name!r}]` must be an int range (low, high, 'int'): {name} is an integer; got {spec!r}."
            )
        if kind == "int":
            low, high = int(low), int(high)
        else:
            low, high = float(low), float(high)
        specs.append(ParamSpec(name, low, high, kind))
    if check_values:
        _check_values(specs, args, None)
    return specs


def optuna_space(specs: Sequence[ParamSpec]) -> Callable[[Any], dict[str, float | int]]:
    """The same search space as an Optuna `hp_space` function, for `Trainer.hyperparameter_search(backend="optuna")`.

    Lets a PSO space (from [`parse_space`]) be searched by Optuna's samplers (TPE, random) at the same bounds and
    scales, e.g. to compare searches at an equal budget.

    Args:
        specs (`Sequence[ParamSpec]`):
            The parsed space.

    Returns:
        `Callable[[optuna.Trial], dict]`: Suggests every field: `suggest_int` for `"int"`, `suggest_float` otherwise
        (`log=True` for `"log"`).
    """

    def hp_space(trial: Any) -> dict[str, float | int]:
        out: dict[str, float | int] = {}
        for spec in specs:
            if spec.kind == "int":
                out[spec.name] = trial.suggest_int(spec.name, int(spec.low), int(spec.high))
            else:
                out[spec.name] = trial.suggest_float(spec.name, spec.low, spec.high, log=spec.kind == "log")
        return out

    return hp_space


def _check_values(specs: list[ParamSpec], args: Any, device: torch.device | None) -> None:
    """Build the arguments with each field at both ends of its range; raise if the arguments refuse a value."""
    for spec in specs:
        for value in sorted({spec.value(0.0), spec.value(1.0)}):
            with _single_process_state(device):
                try:
                    replace(args, **{spec.name: value}, **_single_process_overrides(device))
                except ValueError as err:
                    raise ValueError(
                        f"`hp_space[{spec.name!r}]` allows {spec.name}={value!r}, which {type(args).__name__} "
                        f"refuses: {err}"
                    ) from err


# ----------------------------------------------------------------------------- process isolation


@contextlib.contextmanager
def _single_process_state(device: torch.device | None) -> Iterator[None]:
    """Run the body with accelerate's process state emptied, and, when `device` is given, as a single process on it.

    `TrainingArguments` and `Accelerator` built inside see a fresh accelerate state; with `device` set they also see no
    launcher variables, so they set up a single-process run on `device` that never joins the other processes. The
    accelerate state, the environment and the current CUDA device are put back on exit.
    """
    states = (PartialState, AcceleratorState, GradientState)
    saved_states = [dict(cls._shared_state) for cls in states]
    saved_env = {k: os.environ[k] for k in _LAUNCHER_ENV if k in os.environ}
    args_logger = logging.get_logger("transformers.training_args")
    saved_level = args_logger.level
    for cls in states:
        cls._shared_state.clear()
    if device is not None:
        for k in _LAUNCHER_ENV:
            os.environ.pop(k, None)
        if device.type != "cpu":
            os.environ["ACCELERATE_TORCH_DEVICE"] = str(device)
        # Silences "process group is initialized, but parallel_mode != DISTRIBUTED": that is the point here.
        args_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for cls, state in zip(states, saved_states):
            cls._shared_state.clear()
            cls._shared_state.update(state)
        for k in _LAUNCHER_ENV:
            if k in saved_env:
                os.environ[k] = saved_env[k]
            else:
                os.environ.pop(k, None)
        args_logger.setLevel(saved_level)
        if device is not None and device.type == "cuda":
            torch.cuda.set_device(device)


def _pin_device(args: Any, device: torch.device) -> None:
    """Make single-process arguments use `device` (transformers would pick device 0 and all visible GPUs)."""
    args.__dict__["_setup_devices"] = device
    args._n_gpu = 0 if device.type == "cpu" else 1
    if device.type == "cuda":
        torch.cuda.set_device(device)


def _single_process_overrides(device: torch.device | None) -> dict[str, Any]:
    """Arguments that a single-process trial inside a multi-process launch needs."""
    # With a backend named, accelerate would count the still-initialised process group as this run's.
    return {} if device is None else {"ddp_backend": None}


# ----------------------------------------------------------------------------- numpy RNG and swarm state


def _rng_to_json(state: tuple) -> list:
    name, keys, pos, has_gauss, cached = state
    return [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]


def _rng_from_json(data: list) -> tuple:
    name, keys, pos, has_gauss, cached = data
    return (name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached))


@contextlib.contextmanager
def _search_rng(state: dict[str, Any]) -> Iterator[None]:
    """Run pyswarms with the search's own numpy RNG state, saved back into `state`; the caller's state is kept."""
    outer = np.random.get_state()
    np.random.set_state(_rng_from_json(state["rng"]))
    try:
        yield
    finally:
        state["rng"] = _rng_to_json(np.random.get_state())
        np.random.set_state(outer)


def _costs_to_json(costs: np.ndarray) -> list:
    return [float(c) if math.isfinite(c) else None for c in np.asarray(costs, dtype=float)]


def _costs_from_json(data: list) -> np.ndarray:
    return np.array([np.inf if c is None else c for c in data], dtype=float)


@contextlib.contextmanager
def _no_logging_config() -> Iterator[None]:
    """Skip `logging.config.dictConfig` while pyswarms is imported and its optimizers are built.

    pyswarms' `Reporter` calls it on import and in every optimizer: it would add handlers to the root logger, set it to
    INFO and create `report.log` in the working directory.
    """
    import logging.config

    original = logging.config.dictConfig
    logging.config.dictConfig = lambda config: None
    try:
        yield
    finally:
        logging.config.dictConfig = original


def _make_optimizer(config: dict[str, Any], seed: int | None = None) -> tuple[Any, list]:
    """pyswarms' `GlobalBestPSO` for the search, its initial swarm drawn with numpy seeded with `seed`.

    Returns the optimizer and numpy's RNG state right after the draws (as JSON); numpy's global RNG state is the same
    before and after the call.
    """
    outer = np.random.get_state()
    try:
        if seed is not None:
            np.random.seed(seed)
        with _no_logging_config():
            from pyswarms.single import GlobalBestPSO

            dims = len(config["space"])
            clamp = config["velocity_clamp"]
            optimizer = GlobalBestPSO(
                n_particles=config["n_particles"],
                dimensions=dims,
                options=dict(config["pso_options"]),
                bounds=(np.zeros(dims), np.ones(dims)),
                bh_strategy="nearest",
                velocity_clamp=None if clamp is None else tuple(clamp),
            )
        return optimizer, _rng_to_json(np.random.get_state())
    finally:
        np.random.set_state(outer)


def _new_state(config: dict[str, Any]) -> dict[str, Any]:
    """A fresh search: pyswarms draws the initial positions and velocities from numpy seeded with `config["seed"]`."""
    optimizer, rng = _make_optimizer(config, seed=config["seed"])
    swarm = optimizer.swarm
    return {
        "version": _STATE_VERSION,
        "config": config,
        "iteration": 0,
        "rng": rng,
        "swarm": {
            "position": swarm.position.tolist(),
            "velocity": swarm.velocity.tolist(),
            "pbest_pos": swarm.position.tolist(),
            "pbest_cost": [None] * config["n_particles"],
            "best_pos": [],
            "best_cost": None,
        },
        "trials": [],
    }


def _tell(optimizer: Any, state: dict[str, Any], costs: np.ndarray) -> None:
    """One pyswarms iteration on the costs of the current positions: bests, then velocities and positions.

    `optimizer`'s swarm is overwritten from `state["swarm"]` first, and the result is written back into `state`.
    """
    with _no_logging_config():
        from pyswarms.backend.operators import compute_pbest

    data = state["swarm"]
    swarm = optimizer.swarm
    swarm.position = np.asarray(data["position"], dtype=float)
    swarm.velocity = np.asarray(data["velocity"], dtype=float)
    swarm.pbest_pos = np.asarray(data["pbest_pos"], dtype=float)
    swarm.pbest_cost = _costs_from_json(data["pbest_cost"])
    swarm.best_pos = np.asarray(data["best_pos"], dtype=float)
    swarm.best_cost = np.inf if data["best_cost"] is None else float(data["best_cost"])
    swarm.current_cost = np.asarray(costs, dtype=float)
    with _search_rng(state):
        swarm.pbest_pos, swarm.pbest_cost = compute_pbest(swarm)
        swarm.best_pos, swarm.best_cost = optimizer.top.compute_gbest(swarm)
        swarm.velocity = optimizer.top.compute_velocity(
            swarm, optimizer.velocity_clamp, optimizer.vh, optimizer.bounds
        )
        swarm.position = optimizer.top.compute_position(swarm, optimizer.bounds, optimizer.bh)
    state["swarm"] = {
        "position": swarm.position.tolist(),
        "velocity": swarm.velocity.tolist(),
        "pbest_pos": swarm.pbest_pos.tolist(),
        "pbest_cost": _costs_to_json(swarm.pbest_cost),
        "best_pos": np.asarray(swarm.best_pos, dtype=float).tolist(),
        "best_cost": float(swarm.best_cost) if math.isfinite(swarm.best_cost) else None,
    }


# ----------------------------------------------------------------------------- files


def _write_json(path: str, data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, allow_nan=False)
    os.replace(tmp, path)


def _read_json(path: str) -> Any:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _best_trial(trials: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    finished = [t for t in trials if t["objective"] is not None]
    if not finished:
        return trials[0] if trials else None
    pick = min if direction == "minimize" else max
    return pick(finished, key=lambda t: t["objective"])  # ties: the earliest trial


def _best_run(trial: dict[str, Any]) -> BestRun:
    objective = trial["objective"] if trial["objective"] is not None else float("nan")
    return BestRun(str(trial["trial"]), objective, dict(trial["hyperparameters"]))


def _write_reports(pso_dir: str, state: dict[str, Any]) -> None:
    """`trials.csv`, `best_run.json`, `best_hyperparameters.yaml` and `convergence.png` from the finished trials."""
    import yaml

    trials = sorted(state["trials"], key=lambda t: t["trial"])
    names = list(state["config"]["space"])
    direction = state["config"]["direction"]
    with open(os.path.join(pso_dir, "trials.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "iteration", "particle", *names, "objective", "reused_from"])
        for t in trials:
            objective = "" if t["objective"] is None else t["objective"]
            row = [t["trial"], t["iteration"], t["particle"], *(t["hyperparameters"][n] for n in names), objective]
            writer.writerow([*row, t.get("reused_from", "")])
    best = _best_trial(trials, direction)
    if best is None:
        return
    _write_json(
        os.path.join(pso_dir, "best_run.json"),
        {
            "run_id": str(best["trial"]),
            "objective": best["objective"],
            "direction": direction,
            "hyperparameters": best["hyperparameters"],
            "output_dir": best["output_dir"],
        },
    )
    header = (
        f"# Best of {len(trials)} PSO trials: trial {best['trial']} ({best['output_dir']}), "
        f"objective {best['objective']} ({direction}).\n"
    )
    with open(os.path.join(pso_dir, "best_hyperparameters.yaml"), "w") as f:
        f.write(header)
        yaml.safe_dump({"training": dict(best["hyperparameters"])}, f, sort_keys=False)
    _plot_convergence(os.path.join(pso_dir, "convergence.png"), trials, direction)


def _plot_convergence(path: str, trials: list[dict[str, Any]], direction: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs, ys, best_xs, best_ys = [], [], [], []
    best = None
    for t in trials:
        if t["objective"] is None:
            continue
        xs.append(t["trial"])
        ys.append(t["objective"])
        if best is None or (t["objective"] < best if direction == "minimize" else t["objective"] > best):
            best = t["objective"]
        best_xs.append(t["trial"])
        best_ys.append(best)
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(xs, ys, s=12, alpha=0.5, label="trial")
    ax.step(best_xs, best_ys, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"objective ({direction})")
    ax.set_title("PSO convergence")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# ----------------------------------------------------------------------------- trials


def _cache_logits(trainer: Any, dataset: Any) -> Any:
    """`dataset` with the teacher's logits, computed once with the search trainer's accelerator."""
    if isinstance(dataset, dict):
        return {name: _cache_logits(trainer, ds) for name, ds in dataset.items()}
    if "teacher_logits" in (getattr(dataset, "column_names", None) or ["teacher_logits"]):
        return dataset
    args = trainer.args
    return cache_teacher_logits(
        trainer.teacher_model,
        dataset,
        batch_size=args.teacher_batch_size or args.per_device_eval_batch_size,
        label_order=getattr(trainer, "_teacher_label_order", None),
        cache_dir=os.path.join(args.output_dir, "teacher_cache"),
        accelerator=trainer.accelerator,
    )


def _has_logits(dataset: Any) -> bool:
    if isinstance(dataset, dict):
        return all(_has_logits(ds) for ds in dataset.values())
    return "teacher_logits" in (getattr(dataset, "column_names", None) or [])


def _trial_callbacks(trainer: Any) -> list[TrainerCallback]:
    """The search trainer's own callbacks (not those every trainer adds), stateful ones copied."""
    from transformers.integrations import get_reporting_integration_callbacks

    from .intermediate import ProjectionGradSyncCallback

    added = {DefaultFlowCallback, PrinterCallback, ProgressCallback, ProjectionGradSyncCallback}
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
    trainer = search.trainer
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
    same = next((t for t in earlier if t["hyperparameters"] == params), None)
    if same is not None:
        logger.info(f"PSO trial {k} has the hyperparameters of trial {same['trial']}; reusing its objective.")
        return {
            **record,
            "output_dir": same["output_dir"],
            "objective": same["objective"],
            "reused_from": same["trial"],
        }
    done = _read_json(os.path.join(trial_dir, _TRIAL_FILE))
    if done is not None and done.get("position") == record["position"] and done.get("hyperparameters") == params:
        logger.info(f"PSO trial {k} was finished by an earlier run; reusing its objective {done['objective']}.")
        return {**record, "objective": done["objective"]}

    os.makedirs(trial_dir, exist_ok=True)
    resume = None
    if _read_json(os.path.join(trial_dir, _PARAMS_FILE)) == params and get_last_checkpoint(trial_dir) is not None:
        resume = get_last_checkpoint(trial_dir)
    _write_json(os.path.join(trial_dir, _PARAMS_FILE), params)
    logger.info(f"PSO trial {k} (iteration {iteration}, particle {particle}): {params}")

    model_init = trainer.model_init
    if number_of_arguments(model_init) == 1:

        def trial_model_init() -> Any:
            return model_init(dict(params))

    else:
        trial_model_init = model_init

    with _single_process_state(search.isolate_device):
        run_name = search.hp_name(dict(params)) if search.hp_name is not None else f"pso-trial-{k}"
        overrides: dict[str, Any] = {"output_dir": trial_dir, "run_name": run_name}
        cached = _has_logits(search.train_dataset)
        if cached:
            overrides["precompute_teacher_logits"] = False  # already done, and the trial may have no teacher
        overrides.update(_single_process_overrides(search.isolate_device))
        args = replace(trainer.args, **params, **overrides)
        if search.isolate_device is not None:
            _pin_device(args, search.isolate_device)
        online = args.uses_intermediate_losses or not (
            cached and (not args.teacher_eval_metrics or _has_logits(search.eval_dataset))
        )
        teacher = trainer.teacher_model if online else None
        if teacher is not None:
            teacher = extract_model_from_parallel(teacher)
        trial_trainer = type(trainer)(
            model_init=trial_model_init,
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
        try:
            trial_trainer.train(resume_from_checkpoint=resume)
            metrics = trial_trainer.evaluate()
            objective = float(search.compute_objective(metrics))
        finally:
            if args.device.type != "cpu":  # give the accelerator memory back (a collection costs time on CPU)
                trial_trainer.accelerator.free_memory()
            del trial_trainer
    record["objective"] = objective if math.isfinite(objective) else None
    _write_json(os.path.join(trial_dir, _TRIAL_FILE), record)
    logger.info(f"PSO trial {k}: objective {objective}")
    return record


# ----------------------------------------------------------------------------- search


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
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            raise ValueError(f"`pso_options[{key!r}]` must be a finite number >= 0, got {value!r}.")
    return {key: float(pso_options[key]) for key in DEFAULT_PSO_OPTIONS}


def _check_clamp(velocity_clamp: Any) -> list[float] | None:
    if velocity_clamp is None:
        return None
    if (
        not isinstance(velocity_clamp, tuple | list)
        or len(velocity_clamp) != 2
        or not all(_is_number(v) and math.isfinite(v) for v in velocity_clamp)
        or velocity_clamp[0] >= velocity_clamp[1]
    ):
        raise ValueError(f"`velocity_clamp` must be (min, max) with min < max, or None, got {velocity_clamp!r}.")
    return [float(velocity_clamp[0]), float(velocity_clamp[1])]


def _distributed(world_size: int) -> bool:
    return world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()


def _broadcast(obj: Any, world_size: int) -> Any:
    if not _distributed(world_size):
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _all_gather(obj: Any, world_size: int) -> list[Any]:
    if not _distributed(world_size):
        return [obj]
    out: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(out, obj)
    return out


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
    if getattr(trainer, "model_init", None) is None:
        raise RuntimeError(
            "hyperparameter_search(backend='pso') trains a fresh student per trial, so the trainer needs `model_init` "
            "(a function returning a new student), not only `model`."
        )
    if trainer.train_dataset is None or trainer.eval_dataset is None:
        raise ValueError("hyperparameter_search(backend='pso') needs both `train_dataset` and `eval_dataset`.")
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"`direction` must be 'minimize' or 'maximize' for backend='pso', got {direction!r}.")
    n_trials = _check_int("n_trials", n_trials, 1)
    n_particles = min(10, n_trials) if n_particles is None else _check_int("n_particles", n_particles, 1)
    seed = trainer.args.seed if seed is None else _check_int("seed", seed, 0)
    options = _check_options(pso_options)
    clamp = _check_clamp(velocity_clamp)
    if hp_space is None:
        hp_space = DEFAULT_PSO_SPACE
    compute_objective = default_compute_objective if compute_objective is None else compute_objective

    args = trainer.args
    world_size, rank = args.world_size, args.process_index
    distributed = _distributed(world_size)
    device = args.device
    specs = parse_space(hp_space, args, check_values=False)
    _check_values(specs, args, device if distributed else None)
    if distributed and (getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False)):
        raise ValueError(
            "hyperparameter_search(backend='pso') trains one particle per process, so it cannot shard a trial with "
            "DeepSpeed or FSDP; launch the search without them."
        )
    pso_dir = os.path.join(args.output_dir, PSO_DIR)
    state_path = os.path.join(pso_dir, _STATE_FILE)
    iterations = math.ceil(n_trials / n_particles)
    config = {
        "space": {spec.name: spec.to_json() for spec in specs},
        "n_particles": n_particles,
        "seed": seed,
        "direction": direction,
        "pso_options": options,
        "velocity_clamp": clamp,
    }

    # Process 0 reads or starts the search and hands it to the others, so all start from the same swarm.
    state, problem = None, None
    if rank == 0:
        state = _read_json(state_path)
        if state is None:
            state = _new_state(config)
            os.makedirs(pso_dir, exist_ok=True)
            _write_json(state_path, state)
        else:
            for key, value in config.items():
                if state["config"].get(key) != value:
                    problem = (
                        f"{state_path} holds a PSO search with {key}={state['config'].get(key)!r}, but this call "
                        f"asks for {key}={value!r}; use another `output_dir` or delete {pso_dir} to start over."
                    )
                    break
    state, problem = _broadcast((state, problem), world_size)
    if problem is not None:
        raise ValueError(problem)

    if state["iteration"] < iterations:
        train_dataset, eval_dataset = trainer.train_dataset, trainer.eval_dataset
        if trainer.teacher_model is not None:
            # One pass of the teacher for the whole search; the trials train from the cached column.
            train_dataset = _cache_logits(trainer, train_dataset)
            if args.teacher_eval_metrics:
                eval_dataset = _cache_logits(trainer, eval_dataset)
        search = _Search(
            trainer=trainer,
            specs=specs,
            pso_dir=pso_dir,
            compute_objective=compute_objective,
            hp_name=hp_name,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            isolate_device=device if distributed else None,
            rank=rank,
        )
        state = _iterate(search, state, iterations, world_size)
    elif rank == 0 and state["trials"] and not os.path.isfile(os.path.join(pso_dir, "trials.csv")):
        _write_reports(pso_dir, state)
    best = _best_trial(state["trials"], direction)
    if best is None:
        raise ValueError("The PSO search ran no trials.")
    return _best_run(best)


def _iterate(search: _Search, state: dict[str, Any], iterations: int, world_size: int) -> dict[str, Any]:
    """Run the remaining iterations: this process's particles, the gathered objectives, the swarm update, the files."""
    config = state["config"]
    n_particles, direction = config["n_particles"], config["direction"]
    distributed = _distributed(world_size)
    state_path = os.path.join(search.pso_dir, _STATE_FILE)
    optimizer, _ = _make_optimizer(config)
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
        gathered = _all_gather((results, None if error is None else f"{type(error).__name__}: {error}"), world_size)
        if error is not None:
            raise error
        for process, (_, message) in enumerate(gathered):
            if message is not None:
                raise RuntimeError(f"A PSO trial failed on process {process}: {message}")
        merged = {particle: record for part, _ in gathered for particle, record in part.items()}
        new_trials = [merged[particle] for particle in range(n_particles)]
        sign = 1.0 if direction == "minimize" else -1.0
        costs = np.array([np.inf if t["objective"] is None else sign * t["objective"] for t in new_trials])
        _tell(optimizer, state, costs)
        state["trials"] = [*state["trials"], *new_trials]
        state["iteration"] = iteration + 1
        # Every process computed the same update; process 0's copy is authoritative.
        state = _broadcast(state, world_size)
        if search.rank == 0:
            _write_json(state_path, state)
            _write_reports(search.pso_dir, state)
        best = _best_trial(state["trials"], direction)
        logger.info(
            f"PSO iteration {iteration + 1}/{iterations}: best objective {best['objective']} (trial {best['trial']})."
        )
    return state
