"""Train a tiny student with DistillationTrainer; run under torchrun or alone. Writes what the test checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import random_dataset, tiny_bert  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from hf_kd import DistillationTrainer, DistillationTrainingArguments  # noqa: E402
from hf_kd.distributed import leave_process_group  # noqa: E402


def main() -> None:
    out, per_device = Path(sys.argv[1]), int(sys.argv[2])
    ds = random_dataset(n=32, kind="multi", seed=7)
    labels = list(ds["labels"])
    labels[3] = [-100.0] * 3
    ds = ds.remove_columns("labels").add_column("labels", labels)
    args = DistillationTrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=per_device,
        num_train_epochs=2,
        optim="sgd",
        learning_rate=0.5,
        lr_scheduler_type="constant",
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        alpha=0.5,
        precompute_teacher_logits=True,
    )
    teacher = tiny_bert(problem_type="multi_label_classification", seed=1)
    trainer = DistillationTrainer(
        model=tiny_bert(problem_type="multi_label_classification"), teacher_model=teacher, args=args, train_dataset=ds
    )
    trainer.train()
    rank = trainer.args.process_index
    info = {
        "world_size": trainer.args.world_size,
        "student_wrapped": type(trainer.model_wrapped).__name__,
        "teacher_type": type(trainer.teacher_model).__name__,
        "teacher_training": trainer.teacher_model.training,
    }
    (out / f"info-{rank}.json").write_text(json.dumps(info))
    if rank == 0:
        save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, str(out / "weights.safetensors"))
    del trainer, teacher
    leave_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
