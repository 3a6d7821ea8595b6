"""Offline HoC distillation with DistillationTrainer alone: fine-tune a 6-layer teacher, distill a 3-layer student.

Runs on 2 CPU cores in a few minutes with the local MiniLM checkpoint and a subset of HoC abstracts:

    python recipes/hoc/quickstart.py --shared ../shared

It is also the smallest complete example of the library: the teacher is fine-tuned by `DistillationTrainer` with
`alpha=1` (plain fine-tuning, with a separate head learning rate), and the student by the same class with a teacher.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_kd import DistillationTrainer, DistillationTrainingArguments, load_hoc, tokenize_for_distillation
from hf_kd.evaluation.metrics import make_compute_metrics
from hf_kd.training.student import student_from_teacher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / ".." / "shared"))
    parser.add_argument("--output_dir", default="runs/hoc-quickstart")
    parser.add_argument("--train_size", type=int, default=400)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--teacher_epochs", type=float, default=3.0)
    parser.add_argument("--student_epochs", type=float, default=3.0)
    parser.add_argument("--student_layers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    cli = parser.parse_args()

    shared = Path(cli.shared)
    model_dir = shared / "models" / "all-MiniLM-L6-v2"
    data, label_names = load_hoc(shared / "data" / "hoc", level="abstract")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train = data["train"].shuffle(seed=cli.seed).select(range(min(cli.train_size, len(data["train"]))))
    dev = data["validation"] if "validation" in data else data["dev"]
    train = tokenize_for_distillation(train, tokenizer, max_length=cli.max_length, remove_text=True)
    dev = tokenize_for_distillation(dev, tokenizer, max_length=cli.max_length, remove_text=True)
    train = train.remove_columns(
        [c for c in train.column_names if c not in ("input_ids", "attention_mask", "token_type_ids", "labels")]
    )
    dev = dev.remove_columns(
        [c for c in dev.column_names if c not in ("input_ids", "attention_mask", "token_type_ids", "labels")]
    )

    # One global threshold tuned on dev, as `hf-kd` reports it (at 0.5 a briefly trained model often predicts nothing).
    compute_metrics = make_compute_metrics("multi_label_classification", threshold="tune", label_names=label_names)
    common = dict(
        per_device_train_batch_size=16,
        per_device_eval_batch_size=32,
        learning_rate=1e-4,
        head_learning_rate=1e-2,
        warmup_steps=0.1,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=10,
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        seed=cli.seed,
        disable_tqdm=True,
    )

    teacher = AutoModelForSequenceClassification.from_pretrained(
        model_dir,
        num_labels=len(label_names),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)},
    )
    started = time.perf_counter()
    teacher_trainer = DistillationTrainer(
        model=teacher,
        args=DistillationTrainingArguments(
            output_dir=os.path.join(cli.output_dir, "teacher"),
            alpha=1.0,
            num_train_epochs=cli.teacher_epochs,
            **common,
        ),
        train_dataset=train,
        eval_dataset=dev,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
    )
    teacher_trainer.train()
    teacher_time = time.perf_counter() - started
    teacher_metrics = teacher_trainer.evaluate()

    student = student_from_teacher(teacher, num_layers=cli.student_layers)
    started = time.perf_counter()
    student_trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=DistillationTrainingArguments(
            output_dir=os.path.join(cli.output_dir, "student"),
            alpha=0.5,
            temperature=2.0,
            num_train_epochs=cli.student_epochs,
            **common,
        ),
        train_dataset=train,
        eval_dataset=dev,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
    )
    student_trainer.train()
    student_time = time.perf_counter() - started
    student_metrics = student_trainer.evaluate()

    def latency(model: torch.nn.Module) -> float:
        batch = student_trainer.data_collator([dev[i] for i in range(32)])
        batch = {k: v.to(model.device) for k, v in batch.items() if k != "labels"}
        model.eval()
        with torch.inference_mode():
            model(**batch)
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                model(**batch)
                times.append(time.perf_counter() - t0)
        return float(np.median(times)) / 32 * 1000

    t_lat, s_lat = latency(teacher), latency(student)
    print()
    print(
        f"HoC dev (abstract level, {len(dev)} abstracts, threshold tuned on dev); trained on {len(train)} abstracts, "
        f"{torch.get_num_threads()} threads"
    )
    print("| model | layers | micro-F1 | macro-F1 | train time (s) | latency ms/example @32 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, model, m, t, lat in (
        ("teacher", teacher, teacher_metrics, teacher_time, t_lat),
        ("student", student, student_metrics, student_time, s_lat),
    ):
        layers = model.config.num_hidden_layers
        print(
            f"| {name} | {layers} | {100 * m['eval_micro_f1']:.2f} | {100 * m['eval_macro_f1']:.2f} | {t:.0f} | "
            f"{lat:.2f} |"
        )
    print(
        f"student/teacher micro-F1: "
        f"{student_metrics['eval_micro_f1'] / max(teacher_metrics['eval_micro_f1'], 1e-9):.3f}; "
        f"speed-up at batch 32: {t_lat / s_lat:.2f}x"
    )


if __name__ == "__main__":
    main()
