"""The particle swarm's state on disk: pyswarms' `GlobalBestPSO` driven one iteration at a time, its numpy RNG, and the
files a search writes (`state.json`, `trials.csv`, `best_run.json`, `best_hyperparameters.yaml`, `convergence.png`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from transformers.trainer_utils import BestRun

__all__ = [
    "DEFAULT_PSO_OPTIONS",
    "best_run",
    "best_trial",
    "make_optimizer",
    "new_state",
    "read_json",
    "rng_from_json",
    "rng_to_json",
    "tell",
    "write_json",
    "write_reports",
]

#: pyswarms coefficients: cognitive `c1`, social `c2` and inertia `w`.
DEFAULT_PSO_OPTIONS: dict[str, float] = {"c1": 0.5, "c2": 0.3, "w": 0.9}

_STATE_VERSION = 1


def rng_to_json(state: tuple) -> list:
    name, keys, pos, has_gauss, cached = state
    return [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]


def rng_from_json(data: list) -> tuple:
    name, keys, pos, has_gauss, cached = data
    return (name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached))


@contextlib.contextmanager
def _search_rng(state: dict[str, Any]) -> Iterator[None]:
    """Run pyswarms with the search's own numpy RNG state, saved back into `state`; the caller's state is kept."""
    outer = np.random.get_state()
    np.random.set_state(rng_from_json(state["rng"]))
    try:
        yield
    finally:
        state["rng"] = rng_to_json(np.random.get_state())
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


def make_optimizer(config: dict[str, Any], seed: int | None = None) -> tuple[Any, list]:
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
        return optimizer, rng_to_json(np.random.get_state())
    finally:
        np.random.set_state(outer)


def new_state(config: dict[str, Any]) -> dict[str, Any]:
    """A fresh search: pyswarms draws the initial positions and velocities from numpy seeded with `config["seed"]`."""
    optimizer, rng = make_optimizer(config, seed=config["seed"])
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


def tell(optimizer: Any, state: dict[str, Any], costs: np.ndarray) -> None:
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


def write_json(path: str, data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, allow_nan=False)
    os.replace(tmp, path)


def read_json(path: str) -> Any:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def best_trial(trials: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    finished = [t for t in trials if t["objective"] is not None]
    if not finished:
        return trials[0] if trials else None
    pick = min if direction == "minimize" else max
    return pick(finished, key=lambda t: t["objective"])  # ties: the earliest trial


def best_run(trial: dict[str, Any]) -> BestRun:
    objective = trial["objective"] if trial["objective"] is not None else float("nan")
    return BestRun(str(trial["trial"]), objective, dict(trial["hyperparameters"]))


def write_reports(pso_dir: str, state: dict[str, Any]) -> None:
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
    best = best_trial(trials, direction)
    if best is None:
        return
    write_json(
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
