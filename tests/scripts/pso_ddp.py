"""A PSO search under `torchrun` on CPU, for `search/test_pso.py::test_two_processes_split_the_particles`.

Usage: `torchrun --standalone --nproc_per_node 2 tests/scripts/pso_ddp.py OUTPUT_DIR`

Every process runs the same `hyperparameter_search(backend="pso")` and writes `OUTPUT_DIR/process-<rank>.json`: the
trials it trained, the world size each of its trial trainers saw, and the best run it returned.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import random_dataset, tiny_bert  # noqa: E402

from hf_kd import DistillationTrainer, DistillationTrainingArguments  # noqa: E402
from hf_kd.processes import leave_process_group  # noqa: E402

SPACE = {"learning_rate": (1e-4, 1e-1, "log"), "alpha": (0.0, 1.0)}
N_TRIALS = 6
N_PARTICLES = 3


class TrialRecorder(TrainerCallback):
    """Records, for every trial this process trains, its folder name and the world size its trainer sees."""

    def __init__(self) -> None:
        self.trained: list[str] = []
        self.world_sizes: list[int] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.trained.append(os.path.basename(args.output_dir))
        self.world_sizes.append(args.world_size)


def make_trainer(output_dir: str, callbacks: list[TrainerCallback] | None = None) -> DistillationTrainer:
    """The trainer searched by this script (and, in one process, by the test for reference)."""
    args = DistillationTrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        num_train_epochs=1,
        report_to="none",
        use_cpu=True,
        # Only under a launcher: a named backend makes accelerate expect a process group.
        ddp_backend="gloo" if "LOCAL_RANK" in os.environ else None,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    return DistillationTrainer(
        model_init=lambda: tiny_bert(),
        teacher_model=tiny_bert(seed=1),
        args=args,
        train_dataset=random_dataset(n=8),
        eval_dataset=random_dataset(n=8, seed=1),
        callbacks=callbacks,
    )


def main(output_dir: str) -> None:
    recorder = TrialRecorder()
    trainer = make_trainer(os.path.join(output_dir, "search"), callbacks=[recorder])
    best = trainer.hyperparameter_search(
        backend="pso", hp_space=SPACE, n_trials=N_TRIALS, n_particles=N_PARTICLES, seed=3
    )
    report = {
        "rank": trainer.args.process_index,
        "world_size": trainer.args.world_size,
        "trained": recorder.trained,
        "trial_world_sizes": recorder.world_sizes,
        "best": [best.run_id, best.objective, best.hyperparameters],
    }
    with open(os.path.join(output_dir, f"process-{trainer.args.process_index}.json"), "w") as f:
        json.dump(report, f)
    del trainer
    leave_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
