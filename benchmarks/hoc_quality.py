"""Quality on HoC (abstract level): teacher, student fine-tuned alone, student distilled online / from cached logits.

    python benchmarks/hoc_quality.py [--shared ../shared] [--train_size 400] [--seeds 3] [--epochs 3]

Same approach as `recipes/hoc/quickstart.py`: the local `all-MiniLM-L6-v2` (6 layers) is fine-tuned on a subset of
the HoC training abstracts with `DistillationTrainer(alpha=1)`; then, for every seed, three 3-layer students are made
with `hf_kd.student_from_teacher` from that fine-tuned teacher (identical initialisation, so only the loss differs):

- `student_alone`: hard labels only (`alpha=1`, no teacher);
- `student_kd_online`: `alpha=0.5`, `temperature=2`, teacher run online;
- `student_kd_cached`: the same, reading logits made once with `hf_kd.cache_teacher_logits`.

All are evaluated on the validation split (micro/macro F1 from `hf_kd.metrics`). `--seeds` is a count (`3` means
seeds 42, 43, 44) or a comma-separated list. Writes `hoc_quality.json` and `hoc_quality.md` (numbers only, never text
of the corpus).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, machine_line, write_results  # noqa: E402

from hf_kd import DistillationTrainer, DistillationTrainingArguments, cache_teacher_logits  # noqa: E402
from hf_kd.data import load_hoc, tokenize_for_distillation  # noqa: E402
from hf_kd.metrics import make_compute_metrics  # noqa: E402
from hf_kd.student import student_from_teacher  # noqa: E402

KEEP = ("input_ids", "attention_mask", "token_type_ids", "labels")


def parse_seeds(value: str) -> list[int]:
    if "," in value:
        return [int(v) for v in value.split(",") if v.strip()]
    return [42 + i for i in range(int(value))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--train_size", type=int, default=400)
    parser.add_argument("--eval_size", type=int, default=None, help="limit the validation split (default: all)")
    parser.add_argument("--max_length", type=int, default=256)
    parser.add_argument("--seeds", default="3", help="count (3 -> 42,43,44) or comma list")
    parser.add_argument("--epochs", type=float, default=3.0, help="student epochs")
    parser.add_argument("--teacher_epochs", type=float, default=None, help="default: --epochs")
    parser.add_argument("--student_layers", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--output_dir", default=None, help="scratch folder for trainer outputs (default: a temp dir)")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    cli = parser.parse_args()
    hf_logging.set_verbosity_error()
    logging.getLogger("hf_kd").setLevel(logging.ERROR)
    seeds = parse_seeds(cli.seeds)
    teacher_epochs = cli.teacher_epochs if cli.teacher_epochs is not None else cli.epochs
    scratch = cli.output_dir or tempfile.mkdtemp(prefix="hf_kd_hoc_")

    shared = Path(cli.shared)
    model_dir = shared / "models" / "all-MiniLM-L6-v2"
    data, label_names = load_hoc(shared / "data" / "hoc", level="abstract")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dev = data["validation"] if "validation" in data else data["dev"]
    if cli.eval_size:
        dev = dev.select(range(min(cli.eval_size, len(dev))))
    dev = tokenize_for_distillation(dev, tokenizer, max_length=cli.max_length, remove_text=True)
    dev = dev.remove_columns([c for c in dev.column_names if c not in KEEP])
    compute_metrics = make_compute_metrics("multi_label_classification", label_names=label_names)

    def common(seed: int) -> dict:
        return dict(
            per_device_train_batch_size=16,
            per_device_eval_batch_size=32,
            learning_rate=2e-4,
            head_learning_rate=1e-2,
            warmup_steps=0.1,
            eval_strategy="no",
            save_strategy="no",
            logging_steps=50,
            report_to="none",
            use_cpu=not torch.cuda.is_available(),
            seed=seed,
            disable_tqdm=True,
        )

    runs: list[dict] = []
    for seed in seeds:
        train = data["train"].shuffle(seed=seed).select(range(min(cli.train_size, len(data["train"]))))
        train = tokenize_for_distillation(train, tokenizer, max_length=cli.max_length, remove_text=True)
        train = train.remove_columns([c for c in train.column_names if c not in KEEP])

        torch.manual_seed(seed)
        teacher = AutoModelForSequenceClassification.from_pretrained(
            model_dir,
            num_labels=len(label_names),
            problem_type="multi_label_classification",
            id2label=dict(enumerate(label_names)),
            label2id={n: i for i, n in enumerate(label_names)},
        )
        started = time.perf_counter()
        tt = DistillationTrainer(
            model=teacher,
            args=DistillationTrainingArguments(
                output_dir=os.path.join(scratch, f"s{seed}", "teacher"), alpha=1.0,
                num_train_epochs=teacher_epochs, **common(seed),
            ),
            train_dataset=train, eval_dataset=dev, processing_class=tokenizer, compute_metrics=compute_metrics,
        )
        tt.train()
        teacher_time = time.perf_counter() - started
        row = {"seed": seed, "arm": "teacher", "train_seconds": teacher_time, **tt.evaluate()}
        runs.append(row)
        print(f"[hoc] seed {seed} teacher: micro-F1 {row['eval_micro_f1']:.4f}")
        teacher.eval()

        started = time.perf_counter()
        cached_train = cache_teacher_logits(teacher, train, batch_size=32)
        cache_seconds = time.perf_counter() - started

        arms = {
            "student_alone": dict(alpha=1.0, teacher=None, data=train),
            "student_kd_online": dict(alpha=cli.alpha, teacher=teacher, data=train),
            "student_kd_cached": dict(alpha=cli.alpha, teacher=None, data=cached_train),
        }
        for arm, spec in arms.items():
            torch.manual_seed(seed)
            student = student_from_teacher(teacher, num_layers=cli.student_layers)
            # A previous DistillationTrainer froze the teacher (requires_grad=False) and student_from_teacher copies
            # that flag into the student's layers: unfreeze explicitly.
            student.requires_grad_(True)
            started = time.perf_counter()
            st = DistillationTrainer(
                model=student,
                teacher_model=spec["teacher"],
                args=DistillationTrainingArguments(
                    output_dir=os.path.join(scratch, f"s{seed}", arm), alpha=spec["alpha"],
                    temperature=cli.temperature, num_train_epochs=cli.epochs, **common(seed),
                ),
                train_dataset=spec["data"], eval_dataset=dev, processing_class=tokenizer,
                compute_metrics=compute_metrics,
            )
            st.train()
            elapsed = time.perf_counter() - started
            row = {"seed": seed, "arm": arm, "train_seconds": elapsed, **st.evaluate()}
            if arm == "student_kd_cached":
                row["cache_seconds"] = cache_seconds
            runs.append(row)
            print(f"[hoc] seed {seed} {arm}: micro-F1 {row['eval_micro_f1']:.4f}")

    def agg(arm: str, key: str) -> tuple[float, float]:
        values = [r[key] for r in runs if r["arm"] == arm and key in r]
        return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    info = machine()
    lines = [
        f"Machine: {machine_line(info)}.",
        f"HoC abstract level, train subset {cli.train_size} (per seed), validation {len(dev)} abstracts, "
        f"seeds {seeds}, student {cli.student_layers} layers, {cli.epochs} epochs, alpha {cli.alpha}, "
        f"T {cli.temperature}. Mean ± std over seeds.",
        "",
        "| model | micro-F1 | macro-F1 | train time (s) |",
        "| --- | --- | --- | --- |",
    ]
    for arm in ("teacher", "student_alone", "student_kd_online", "student_kd_cached"):
        mi, mis = agg(arm, "eval_micro_f1")
        ma, mas = agg(arm, "eval_macro_f1")
        ts, _ = agg(arm, "train_seconds")
        lines.append(f"| {arm} | {100 * mi:.2f} ± {100 * mis:.2f} | {100 * ma:.2f} ± {100 * mas:.2f} | {ts:.0f} |")
    markdown = "\n".join(lines)
    payload = {"machine": info, "settings": vars(cli) | {"seeds": seeds}, "runs": runs}
    paths = write_results("hoc_quality", payload, markdown, Path(cli.out) if cli.out else None)
    print(markdown)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
