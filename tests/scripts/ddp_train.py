"""Train a tiny student with DistillationTrainer; run under torchrun or alone. Writes what the test checks.

    python ddp_train.py OUT PER_DEVICE_BATCH [MODE]

MODE `plain` (default): logits distillation from cached teacher logits. MODE `hidden`: hidden-state distillation
into a narrower student (a width projection), with the teacher's agreement metrics on an evaluation set of odd size,
then a short run without `average_tokens_across_devices` that records the `num_items_in_batch` each process saw.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import random_dataset, tiny_bert  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from hf_kd import DistillationTrainer, DistillationTrainingArguments  # noqa: E402
from hf_kd.processes import leave_process_group  # noqa: E402


def _args(out: Path, per_device: int, **kwargs) -> DistillationTrainingArguments:
    defaults = dict(
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
    )
    defaults.update(kwargs)
    return DistillationTrainingArguments(**defaults)


def main() -> None:
    out, per_device = Path(sys.argv[1]), int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "plain"
    ds = random_dataset(n=32, kind="multi", seed=7)
    labels = list(ds["labels"])
    labels[3] = [-100.0] * 3
    ds = ds.remove_columns("labels").add_column("labels", labels)
    teacher = tiny_bert(problem_type="multi_label_classification", seed=1, hidden_size=48 if mode == "hidden" else 32)
    student = tiny_bert(problem_type="multi_label_classification")
    if mode == "hidden":
        args = _args(out, per_device, hidden_loss_weight=1.0, teacher_eval_metrics=True, per_device_eval_batch_size=2)
        eval_ds = random_dataset(n=7, kind="multi", seed=9)
        trainer = DistillationTrainer(
            model=student, teacher_model=teacher, args=args, train_dataset=ds, eval_dataset=eval_ds
        )
    else:
        args = _args(out, per_device, precompute_teacher_logits=True)
        trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=ds)
    trainer.train()
    rank = trainer.args.process_index
    info = {
        "world_size": trainer.args.world_size,
        "student_wrapped": type(trainer.model_wrapped).__name__,
        "teacher_type": type(trainer.teacher_model).__name__,
        "teacher_training": trainer.teacher_model.training,
    }
    if mode == "hidden":
        info["find_unused_parameters"] = getattr(trainer.model_wrapped, "find_unused_parameters", None)
        info["eval"] = trainer.evaluate()
        counted: list[float] = []
        local = DistillationTrainer(
            model=tiny_bert(problem_type="multi_label_classification"),
            teacher_model=teacher,
            args=_args(out / "local", per_device, average_tokens_across_devices=False, max_steps=2),
            train_dataset=ds,
        )
        original = local.compute_loss

        def recording(model, inputs, return_outputs=False, num_items_in_batch=None):
            counted.append(float(num_items_in_batch))
            return original(model, inputs, return_outputs, num_items_in_batch)

        local.compute_loss = recording
        local.train()
        info["local_num_items"] = counted
        del local
    (out / f"info-{rank}.json").write_text(json.dumps(info))
    if rank == 0:
        save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, str(out / "weights.safetensors"))
    del trainer, teacher
    leave_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
