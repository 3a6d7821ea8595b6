"""GPU check of DistillationTrainer at BERT-base size: DDP, DeepSpeed ZeRO-3 and FSDP, with a bf16 teacher.

    python benchmarks/gpu_check.py --engine plain
    torchrun --nproc_per_node N benchmarks/gpu_check.py --engine ddp
    accelerate launch --config_file recipes/accelerate/deepspeed_zero3.yaml benchmarks/gpu_check.py --engine deepspeed
    accelerate launch --config_file recipes/accelerate/fsdp.yaml benchmarks/gpu_check.py --engine fsdp
    bash benchmarks/gpu_check.sh OUT_DIR        # all of them that the machine can run, one after another

A BERT-base-shaped teacher (12 layers, 768 wide) and a DistilBERT-shaped student (6 layers), both random weights from
configs (no download), distil on random token ids of length 128. Checks, per engine: the teacher is frozen, in eval
mode, in bfloat16, out of the optimizer, and sharded where the engine shards it (DTensor parameters under FSDP, a
DeepSpeed engine under ZeRO-3); the student's loss falls. Prints and appends one JSON line: throughput (samples/s),
peak GPU memory per process, the teacher's parameters held by process 0. `--tiny` runs a 2-layer, 64-wide pair on the
CPU, to check the script itself without a GPU. The project never depends on this script: CI does not run it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _models(tiny: bool):
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
    )

    width = 64 if tiny else 768
    teacher_config = BertConfig(
        hidden_size=width,
        num_hidden_layers=2 if tiny else 12,
        num_attention_heads=4 if tiny else 12,
        intermediate_size=4 * width,
        num_labels=2,
    )
    student_config = DistilBertConfig(
        dim=width, n_layers=1 if tiny else 6, n_heads=4 if tiny else 12, hidden_dim=4 * width, num_labels=2
    )
    torch.manual_seed(0)
    return BertForSequenceClassification(teacher_config), DistilBertForSequenceClassification(student_config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("plain", "ddp", "deepspeed", "fsdp"), default="plain")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--tiny", action="store_true", help="a tiny pair on the CPU (checks the script only)")
    parser.add_argument("--out", default=None, help="append the JSON line to this file")
    cli = parser.parse_args()

    import datasets

    from hf_kd import DistillationTrainer, DistillationTrainingArguments
    from hf_kd.processes import leave_process_group

    cuda = torch.cuda.is_available() and not cli.tiny
    teacher, student = _models(cli.tiny)
    n = cli.steps * cli.batch * max(torch.cuda.device_count(), 1)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, teacher.config.vocab_size, (n, cli.seq), generator=g)
    labels = (ids[:, 1] % 2).tolist()  # learnable from the tokens
    data = datasets.Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": [[1] * cli.seq] * n, "labels": labels}
    )
    args = DistillationTrainingArguments(
        output_dir=f"runs/gpu-check-{cli.engine}",
        per_device_train_batch_size=cli.batch,
        max_steps=cli.steps,
        learning_rate=5e-5,
        logging_steps=5,
        report_to="none",
        save_strategy="no",
        bf16=cuda,
        use_cpu=not cuda,
        teacher_dtype="bfloat16" if cuda else "float32",
        alpha=0.5,
        temperature=2.0,
        disable_tqdm=True,
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data)
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    held = trainer.teacher_model
    module = getattr(held, "module", held)
    parameters = list(module.parameters())
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    local = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in parameters)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    report = {
        "engine": cli.engine,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "processes": trainer.args.world_size,
        "teacher_parameters": sum(p.numel() for p in teacher.parameters())
        if not hasattr(parameters[0], "to_local")
        else None,
        "teacher_parameters_held_here": local,
        "teacher_type": type(held).__name__,
        "teacher_sharded": any(hasattr(p, "to_local") for p in parameters) or type(held).__name__ == "DeepSpeedEngine",
        "teacher_frozen": not any(p.requires_grad for p in parameters) and not module.training,
        "teacher_in_optimizer": any(id(p) in in_optimizer for p in parameters),
        "teacher_dtype": str(parameters[0].dtype),
        "loss_first": losses[:2],
        "loss_last": losses[-2:],
        "loss_falls": bool(losses and sum(losses[-2:]) < sum(losses[:2])),
        "samples_per_second": result.metrics.get("train_samples_per_second"),
        "wall_seconds": seconds,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }
    if trainer.args.process_index == 0:
        line = json.dumps(report)
        print(line, flush=True)
        if cli.out:
            with open(cli.out, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
    del trainer
    leave_process_group()


if __name__ == "__main__":
    main()
