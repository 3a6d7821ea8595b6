"""`hyperparameter_search(backend="pso")`: space, trials, determinism, resume, teacher cache, files, two processes."""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import CountingTeacher, random_dataset, tiny_bert
from transformers import Trainer, TrainerCallback

from hf_kd import DistillationTrainer, DistillationTrainingArguments, cache_teacher_logits
from hf_kd.search.space import DEFAULT_PSO_SPACE, ParamSpec, parse_space
from hf_kd.search.swarm import make_optimizer, new_state, rng_from_json, tell

SPACE = {"learning_rate": (1e-4, 1e-1, "log"), "alpha": (0.0, 1.0), "num_train_epochs": (1, 2, "int")}
N_TRIALS, N_PARTICLES, SEED = 4, 2, 7
DDP_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pso_ddp.py"


def make_args(output_dir, **kwargs) -> DistillationTrainingArguments:
    defaults = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        num_train_epochs=1,
        learning_rate=1e-2,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    defaults.update(kwargs)
    return DistillationTrainingArguments(**defaults)


def make_trainer(output_dir, teacher=None, callbacks=None, model_init=None, cls=None, **kwargs) -> DistillationTrainer:
    return (cls or DistillationTrainer)(
        model_init=model_init or (lambda: tiny_bert()),
        teacher_model=tiny_bert(seed=1) if teacher is None else teacher,
        args=make_args(output_dir, **kwargs),
        train_dataset=random_dataset(n=8),
        eval_dataset=random_dataset(n=8, seed=1),
        callbacks=callbacks,
    )


def search(trainer, **kwargs):
    options = dict(backend="pso", hp_space=SPACE, n_trials=N_TRIALS, n_particles=N_PARTICLES, seed=SEED)
    options.update(kwargs)
    return trainer.hyperparameter_search(**options)


def load_state(output_dir) -> dict:
    return json.loads((Path(output_dir) / "pso" / "state.json").read_text())


def trial_summary(state: dict) -> list[tuple]:
    return [(t["trial"], t["position"], t["hyperparameters"], t["objective"]) for t in state["trials"]]


class Recorder(TrainerCallback):
    """Records every training a trial runs: its folder, the arguments it saw and its final step."""

    def __init__(self, raise_in: str | None = None):
        self.raise_in = raise_in
        self.begun: list[str] = []
        self.seen: dict[str, dict] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        name = os.path.basename(args.output_dir)
        self.begun.append(name)
        if name == self.raise_in:
            raise KeyError(f"interrupted in {name}")
        self.seen[name] = {k: getattr(args, k) for k in SPACE} | {"world_size": args.world_size}

    def on_train_end(self, args, state, control, **kwargs):
        self.seen[os.path.basename(args.output_dir)]["global_step"] = state.global_step


class TeacherSpy(DistillationTrainer):
    """Records, for every training, whether the trainer held an online teacher."""

    with_teacher: list[bool] = []

    def train(self, *args, **kwargs):
        TeacherSpy.with_teacher.append(self.teacher_model is not None)
        return super().train(*args, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models train fastest on one thread (and the same as the processes of the two-process test)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One finished search (2 iterations of 2 particles), run from an empty working directory."""
    root = tmp_path_factory.mktemp("reference")
    recorder, inits = Recorder(), []

    def model_init(trial):
        inits.append(trial)
        return tiny_bert()

    handlers, cwd = list(logging.getLogger().handlers), os.getcwd()
    os.chdir(root)
    try:
        trainer = make_trainer(root / "out", callbacks=[recorder], model_init=model_init)
        best = search(trainer)
    finally:
        os.chdir(cwd)
    added_handlers = [h for h in logging.getLogger().handlers if h not in handlers]
    return {
        "root": root,
        "out": root / "out",
        "best": best,
        "state": load_state(root / "out"),
        "recorder": recorder,
        "inits": inits,
        "added_handlers": added_handlers,
    }


# ----------------------------------------------------------------------------- space


def test_values_map_from_the_unit_cube_linearly_in_log_space_and_onto_integers():
    lin, log, ints = (
        ParamSpec("alpha", 0.2, 0.6),
        ParamSpec("learning_rate", 1e-5, 1e-1, "log"),
        ParamSpec("x", 1, 4, "int"),
    )
    assert (lin.value(0), lin.value(0.5), lin.value(1)) == pytest.approx((0.2, 0.4, 0.6))
    assert (log.value(0), log.value(1)) == pytest.approx((1e-5, 1e-1))
    for u in np.linspace(0, 1, 11):
        # log value = exp(position in log space): log(v) is affine in u, so equal steps in u multiply v equally.
        assert math.log(log.value(u)) == pytest.approx(math.log(1e-5) + u * (math.log(1e-1) - math.log(1e-5)))
    assert log.value(0.5) == pytest.approx(1e-3)
    values = [ints.value(u) for u in np.linspace(0, 1, 4001)]
    assert all(type(v) is int for v in values)
    counts = np.bincount(values)[1:]
    assert len(counts) == 4 and counts.min() >= 999 and counts.max() <= 1001  # every integer gets an equal share
    assert (lin.value(-3), lin.value(7), ints.value(1.0)) == (0.2, 0.6, 4)


@pytest.mark.parametrize(
    ("space", "pattern"),
    [
        ({"learning_rat": (1e-5, 1e-3)}, r"'learning_rat' is not a field"),
        ({"device": (0, 1)}, r"'device' is not a field"),
        ({"alpha": (0.8, 0.2)}, r"alpha.*low < high.*low=0.8, high=0.2"),
        ({"alpha": (0.5, 0.5)}, r"alpha.*low < high.*low=0.5, high=0.5"),
        ({"learning_rate": (0.0, 1e-3, "log")}, r"learning_rate.*log scale.*low=0.0"),
        ({"learning_rate": (-1.0, 1e-3, "log")}, r"learning_rate.*log scale.*low=-1.0"),
        ({"temperature": (1.0, 4.0, "cubic")}, r"temperature.*kind 'cubic'"),
        ({"temperature": (1.0,)}, r"temperature.*\(low, high\).*\(1.0,\)"),
        ({"temperature": (1.0, float("nan"))}, r"temperature.*high must be a finite number, got nan"),
        ({"temperature": ("1", 4.0)}, r"temperature.*low must be a finite number, got '1'"),
        ({"num_train_epochs": (1.5, 3, "int")}, r"num_train_epochs.*integers.*1.5"),
        ({"optim": (0, 1)}, r"'optim' is not a numeric field.*adamw"),
        ({"per_device_train_batch_size": (2, 8)}, r"per_device_train_batch_size.*int range.*\(2, 8\)"),
        ({"alpha": (0.0, 1.5)}, r"alpha.*alpha=1.5.*refuses.*\[0, 1\].*1.5"),
        ({"temperature": (0.0, 4.0)}, r"temperature.*temperature=0.0.*refuses"),
        ({}, r"hp_space.*non-empty dict.*\{\}"),
        ([("alpha", (0, 1))], r"hp_space.*non-empty dict"),
    ],
)
def test_bad_spaces_are_refused_naming_the_field_and_value(tmp_path, space, pattern):
    trainer = make_trainer(tmp_path, callbacks=[recorder := Recorder()])
    with pytest.raises(ValueError, match=pattern):
        search(trainer, hp_space=space)
    assert recorder.begun == []
    assert not (tmp_path / "pso").exists()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"direction": "up"}, r"direction.*'up'"),
        ({"n_trials": 0}, r"n_trials.*>= 1.*0"),
        ({"n_particles": 0}, r"n_particles.*>= 1.*0"),
        ({"seed": -1}, r"seed.*-1"),
        ({"pso_options": {"c1": 0.5, "c2": 0.3}}, r"pso_options.*'c1', 'c2' and 'w'.*\['c1', 'c2'\]"),
        ({"pso_options": {"c1": 0.5, "c2": 0.3, "w": -1}}, r"pso_options\['w'\].*-1"),
        ({"velocity_clamp": (0.5, -0.5)}, r"velocity_clamp.*\(0.5, -0.5\)"),
    ],
)
def test_bad_search_options_are_refused(tmp_path, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        search(make_trainer(tmp_path), **kwargs)


def test_model_init_is_required(tmp_path):
    trainer = DistillationTrainer(
        model=tiny_bert(),
        teacher_model=tiny_bert(seed=1),
        args=make_args(tmp_path),
        train_dataset=random_dataset(n=8),
        eval_dataset=random_dataset(n=8, seed=1),
    )
    with pytest.raises(RuntimeError, match="model_init"):
        search(trainer)


def test_default_space_is_valid_for_distillation_arguments(tmp_path):
    specs = parse_space(DEFAULT_PSO_SPACE, make_args(tmp_path))
    assert [(s.name, s.kind) for s in specs] == [
        ("learning_rate", "log"),
        ("temperature", "linear"),
        ("alpha", "linear"),
    ]


# ----------------------------------------------------------------------------- swarm


def test_swarm_state_depends_only_on_the_seed_and_leaves_numpy_alone():
    config = {
        "space": {"a": [0.0, 1.0, "linear"], "b": [1.0, 2.0, "linear"]},
        "n_particles": 3,
        "seed": 11,
        "direction": "minimize",
        "pso_options": {"c1": 0.5, "c2": 0.3, "w": 0.9},
        "velocity_clamp": [-0.5, 0.5],
    }
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a, b, c = new_state(config), new_state(config), new_state({**config, "seed": 12})
    assert a["swarm"] == b["swarm"] and a["swarm"]["position"] != c["swarm"]["position"]
    start = a["swarm"]["position"]
    tell(make_optimizer(config)[0], a, np.array([3.0, 1.0, 2.0]))
    tell(make_optimizer(config)[0], b, np.array([3.0, 1.0, 2.0]))
    assert a == b
    assert a["swarm"]["best_cost"] == 1.0 and a["swarm"]["best_pos"] == start[1]
    assert a["swarm"]["position"] != start
    assert np.all(np.asarray(a["swarm"]["position"]) >= 0) and np.all(np.asarray(a["swarm"]["position"]) <= 1)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_step_by_step_driving_with_saved_state_equals_pyswarms_optimize():
    config = {
        "space": {"a": [0.0, 1.0, "linear"], "b": [0.0, 1.0, "linear"], "c": [0.0, 1.0, "linear"]},
        "n_particles": 5,
        "seed": 3,
        "direction": "minimize",
        "pso_options": {"c1": 0.5, "c2": 0.3, "w": 0.9},
        "velocity_clamp": [-0.5, 0.5],
    }

    def sphere(x):
        return ((x - 0.3) ** 2).sum(axis=1)

    state = new_state(config)
    for _ in range(4):
        state = json.loads(json.dumps(state))  # as if written to disk and read back by the next run
        tell(make_optimizer(config)[0], state, sphere(np.asarray(state["swarm"]["position"])))

    optimizer, rng = make_optimizer(config, seed=3)
    outer = np.random.get_state()
    try:
        np.random.set_state(rng_from_json(rng))
        best_cost, _ = optimizer.optimize(sphere, iters=4, verbose=False)
    finally:
        np.random.set_state(outer)
    np.testing.assert_array_equal(np.asarray(state["swarm"]["position"]), optimizer.swarm.position)
    np.testing.assert_array_equal(np.asarray(state["swarm"]["velocity"]), optimizer.swarm.velocity)
    assert state["swarm"]["best_cost"] == best_cost


# ----------------------------------------------------------------------------- a search


def test_trials_use_their_hyperparameters_within_bounds(reference):
    state, seen = reference["state"], reference["recorder"].seen
    assert len(state["trials"]) == N_TRIALS and state["iteration"] == N_TRIALS // N_PARTICLES
    for trial in state["trials"]:
        params, position = trial["hyperparameters"], trial["position"]
        assert all(0.0 <= u <= 1.0 for u in position)
        for name, (low, high, *_) in SPACE.items():
            assert low <= params[name] <= high
        assert type(params["num_train_epochs"]) is int
        lr_low, lr_high, _ = SPACE["learning_rate"]
        assert params["learning_rate"] == pytest.approx(
            math.exp(math.log(lr_low) + position[0] * math.log(lr_high / lr_low))
        )
        # The trial's trainer really ran with these values, from step 0 (no state carried over from other trials).
        ran = seen[f"trial-{trial['trial']}"]
        assert {k: ran[k] for k in SPACE} == params
        assert ran["global_step"] == params["num_train_epochs"] * 2
        assert ran["world_size"] == 1
    assert sorted(seen) == [f"trial-{k}" for k in range(N_TRIALS)]
    # A one-argument model_init receives the trial's hyperparameters.
    given = [i for i in reference["inits"] if i is not None]
    assert all(i in [t["hyperparameters"] for t in state["trials"]] for i in given)
    assert all(t["hyperparameters"] in given for t in state["trials"])


def test_best_run_and_report_files(reference):
    out, state, best = reference["out"] / "pso", reference["state"], reference["best"]
    objectives = [t["objective"] for t in state["trials"]]
    k = int(np.argmin(objectives))
    assert best.run_id == str(k) and best.objective == objectives[k]
    assert best.hyperparameters == state["trials"][k]["hyperparameters"]

    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["trial", "iteration", "particle", *SPACE, "objective", "reused_from"]
    assert [(int(r["trial"]), int(r["iteration"]), int(r["particle"])) for r in rows] == [
        (0, 0, 0),
        (1, 0, 1),
        (2, 1, 0),
        (3, 1, 1),
    ]
    assert [float(r["objective"]) for r in rows] == objectives
    assert [r["num_train_epochs"] for r in rows] == [
        str(t["hyperparameters"]["num_train_epochs"]) for t in state["trials"]
    ]

    recipe = yaml.safe_load((out / "best_hyperparameters.yaml").read_text())
    assert recipe == {"training": best.hyperparameters}
    assert json.loads((out / "best_run.json").read_text())["run_id"] == best.run_id
    assert (out / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all((out / f"trial-{k}").is_dir() for k in range(N_TRIALS))
    # pyswarms' logging set-up is kept out: no report.log, no handlers added to the root logger.
    assert not (reference["root"] / "report.log").exists()
    assert reference["added_handlers"] == []


def test_a_trial_equals_the_same_training_run_alone(reference, tmp_path):
    last = reference["state"]["trials"][-1]
    teacher = tiny_bert(seed=1)
    cached = cache_teacher_logits(teacher, random_dataset(n=8), batch_size=8)
    alone = DistillationTrainer(
        model_init=lambda: tiny_bert(),
        args=make_args(tmp_path, **last["hyperparameters"]),
        train_dataset=cached,
        eval_dataset=random_dataset(n=8, seed=1),
    )
    alone.train()
    assert alone.evaluate()["eval_loss"] == pytest.approx(last["objective"], rel=1e-6)


def test_same_seed_gives_the_same_search(reference, tmp_path):
    best = search(make_trainer(tmp_path / "again"))
    assert trial_summary(load_state(tmp_path / "again")) == trial_summary(reference["state"])
    assert best == reference["best"]


def test_resume_after_an_interrupted_iteration(reference, tmp_path):
    first = Recorder(raise_in="trial-3")  # iteration 1, particle 1: trial-2 of that iteration has finished
    with pytest.raises(KeyError, match="interrupted in trial-3"):
        search(make_trainer(tmp_path, callbacks=[first]))
    assert load_state(tmp_path)["iteration"] == 1
    second = Recorder()
    best = search(make_trainer(tmp_path, callbacks=[second]))
    assert first.begun == ["trial-0", "trial-1", "trial-2", "trial-3"] and second.begun == ["trial-3"]
    finished = [name for r in (first, second) for name, seen in r.seen.items() if "global_step" in seen]
    assert sorted(finished) == [f"trial-{k}" for k in range(N_TRIALS)]  # every trial trained to the end once
    assert trial_summary(load_state(tmp_path)) == trial_summary(reference["state"])
    assert best == reference["best"]


def test_finished_search_returns_its_best_without_training_and_can_be_extended(reference, tmp_path):
    shutil.copytree(reference["out"], tmp_path / "out")
    teacher, recorder = CountingTeacher(tiny_bert(seed=1)), Recorder()
    trainer = make_trainer(tmp_path / "out", teacher=teacher, callbacks=[recorder])
    assert search(trainer) == reference["best"]
    assert search(trainer, n_trials=1) == reference["best"]
    assert recorder.begun == [] and teacher.calls == 0

    search(trainer, n_trials=N_TRIALS + N_PARTICLES)
    state = load_state(tmp_path / "out")
    assert state["iteration"] == 3 and trial_summary(state)[:N_TRIALS] == trial_summary(reference["state"])
    # The new iteration's particles are trained, except those on a point an earlier trial had (with this seed both
    # land on trial 3's corner of the box: the highest learning rate and alpha 0).
    new = state["trials"][N_TRIALS:]
    assert [t["trial"] for t in new] == [4, 5]
    assert recorder.begun == [f"trial-{t['trial']}" for t in new if "reused_from" not in t]
    for t in new:
        if "reused_from" in t:
            assert state["trials"][t["reused_from"]]["hyperparameters"] == t["hyperparameters"]

    with pytest.raises(ValueError, match=r"seed=7.*seed=8"):
        search(trainer, seed=8)


def test_teacher_runs_once_for_the_whole_search_and_maximize_mirrors_minimize(reference, tmp_path):
    teacher = CountingTeacher(tiny_bert(seed=1))
    TeacherSpy.with_teacher.clear()
    trainer = make_trainer(tmp_path, teacher=teacher, teacher_batch_size=4, cls=TeacherSpy)
    best = search(trainer, n_trials=2, direction="maximize", compute_objective=lambda metrics: -metrics["eval_loss"])
    assert teacher.calls == 2  # one pass over the 8 training examples, in batches of 4, for both trials
    assert TeacherSpy.with_teacher == [False, False]  # the trials (of the trainer's class) train without it
    # Maximizing -loss moves the swarm exactly as minimizing the loss did.
    state, ref = load_state(tmp_path), reference["state"]["trials"]
    assert [t["objective"] for t in state["trials"]] == [-t["objective"] for t in ref[:2]]
    assert state["swarm"]["position"] == [t["position"] for t in ref[2:]]
    k = int(np.argmin([t["objective"] for t in ref[:2]]))
    assert best.run_id == str(k) and best.objective == -ref[k]["objective"]


def test_intermediate_losses_keep_the_online_teacher(tmp_path):
    teacher = CountingTeacher(tiny_bert(seed=1))
    TeacherSpy.with_teacher.clear()
    trainer = make_trainer(tmp_path, teacher=teacher, teacher_batch_size=8, cls=TeacherSpy)
    search(trainer, hp_space={"hidden_loss_weight": (0.5, 1.0)}, n_trials=1, n_particles=1)
    assert TeacherSpy.with_teacher == [True]
    assert teacher.calls == 1 + 2  # the cache pass, then one call per training step of the trial


def test_other_backends_go_to_trainer_hyperparameter_search(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path)
    if importlib.util.find_spec("optuna") is None:
        with pytest.raises(RuntimeError, match="optuna"):
            trainer.hyperparameter_search(backend="optuna", n_trials=2)
    calls = []
    monkeypatch.setattr(Trainer, "hyperparameter_search", lambda self, **kwargs: calls.append(kwargs) or "ran")
    assert trainer.hyperparameter_search(backend="ray", n_trials=3, direction="maximize", resources=1) == "ran"
    assert calls[0]["backend"] == "ray" and calls[0]["n_trials"] == 3 and calls[0]["resources"] == 1
    assert not (tmp_path / "pso").exists()


# ----------------------------------------------------------------------------- two processes


@pytest.mark.slow
def test_two_processes_split_the_particles(tmp_path):
    spec = importlib.util.spec_from_file_location("pso_ddp", DDP_SCRIPT)
    pso_ddp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pso_ddp)
    P, T = pso_ddp.N_PARTICLES, pso_ddp.N_TRIALS
    pythonpath = os.pathsep.join(p for p in (str(DDP_SCRIPT.parents[2]), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*command, str(DDP_SCRIPT), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads((tmp_path / f"process-{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    assert reports[0]["best"] == reports[1]["best"]
    # Particle i of every iteration was trained by process i % 2, each trial exactly once overall.
    for rank, report in enumerate(reports):
        assert report["trained"] == [f"trial-{k}" for k in range(T) if (k % P) % 2 == rank]
        assert set(report["trial_world_sizes"]) == {1}  # a trial trains alone, never data-parallel
    state = load_state(tmp_path / "search")
    assert [t["process"] for t in state["trials"]] == [(k % P) % 2 for k in range(T)]

    # The same search in one process gives the same trials: the processes did not mix their particles' training.
    best = pso_ddp.make_trainer(str(tmp_path / "single")).hyperparameter_search(
        backend="pso", hp_space=pso_ddp.SPACE, n_trials=T, n_particles=P, seed=3
    )
    single = load_state(tmp_path / "single")
    assert [(t["hyperparameters"], t["objective"]) for t in single["trials"]] == [
        (t["hyperparameters"], t["objective"]) for t in state["trials"]
    ]
    assert [best.run_id, best.objective, best.hyperparameters] == reports[0]["best"]


def test_optuna_space_suggests_each_field_at_its_bounds_and_scale(tmp_path):
    from hf_kd.search import optuna_space

    class FakeTrial:
        def __init__(self):
            self.calls = []

        def suggest_float(self, name, low, high, log=False):
            self.calls.append(("float", name, low, high, log))
            return high

        def suggest_int(self, name, low, high):
            self.calls.append(("int", name, low, high))
            return low

    specs = parse_space(
        {"alpha": (0.1, 0.9), "temperature": (1.0, 8.0, "log"), "gradient_accumulation_steps": (1, 4, "int")},
        make_args(tmp_path),
    )
    trial = FakeTrial()
    assert optuna_space(specs)(trial) == {"alpha": 0.9, "temperature": 8.0, "gradient_accumulation_steps": 1}
    assert trial.calls == [
        ("float", "alpha", 0.1, 0.9, False),
        ("float", "temperature", 1.0, 8.0, True),
        ("int", "gradient_accumulation_steps", 1, 4),
    ]


def test_a_point_already_trained_is_reused_not_trained_again(tmp_path):
    # Four particles on a 1-D integer axis with two values: at least two particles of the first iteration share a
    # value, and every later particle repeats one.
    recorder = Recorder()
    trainer = make_trainer(tmp_path, callbacks=[recorder])
    search(trainer, hp_space={"num_train_epochs": (1, 2, "int")}, n_trials=8, n_particles=4)
    trials = load_state(tmp_path)["trials"]
    assert len(trials) == 8
    distinct = {t["hyperparameters"]["num_train_epochs"] for t in trials}
    trained = [t for t in trials if "reused_from" not in t]
    # One training per distinct point, done by its first trial.
    assert len(recorder.begun) == len(trained) == len(distinct)
    assert recorder.begun == [f"trial-{t['trial']}" for t in trained]
    by_number = {t["trial"]: t for t in trials}
    for t in trials:
        if "reused_from" in t:
            first = by_number[t["reused_from"]]
            assert "reused_from" not in first and first["trial"] < t["trial"]
            assert first["hyperparameters"] == t["hyperparameters"] and first["objective"] == t["objective"]
            assert t["output_dir"] == first["output_dir"]
            assert not (tmp_path / "pso" / f"trial-{t['trial']}").exists()
    with open(tmp_path / "pso" / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["reused_from"] for r in rows] == [str(t.get("reused_from", "")) for t in trials]


def test_a_nan_objective_is_a_warning_and_the_worst_point(tmp_path, caplog):
    trainer = make_trainer(tmp_path)
    calls = {"n": 0}

    def objective(metrics):
        calls["n"] += 1
        return float("nan") if calls["n"] == 1 else metrics["eval_loss"]

    with caplog.at_level("INFO", logger="hf_kd.search.pso"):
        search(trainer, n_trials=2, compute_objective=objective)
    warned = [r for r in caplog.records if r.levelname == "WARNING" and "objective is nan" in r.getMessage()]
    assert len(warned) == 1 and "PSO trial 0" in warned[0].getMessage()
    assert [t["objective"] is None for t in load_state(tmp_path)["trials"]] == [True, False]
