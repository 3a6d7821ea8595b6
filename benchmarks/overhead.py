"""Training-loop overhead of `DistillationTrainer` against a plain `Trainer` and a hand-written KD subclass.

    python benchmarks/overhead.py [--steps 20] [--repeats 3] [--threads N] [--out benchmarks/results]

Everything runs in ONE process, on the same synthetic data (random token ids, multi-hot labels; no real text), with
tiny random BERTs built from configs: a 6-layer, 384-wide teacher and a 3-layer student made from it with
`hf_kd.student_from_teacher`. Arms, each `--steps` optimizer steps at batch 16, sequence length 128, and the arms
interleaved `--repeats` times (A B C D A B C D ...), median wall time of `train()` reported:

- `plain`: `transformers.Trainer` fine-tuning the student on the labels (the reference, ratio 1.00);
- `manual_kd`: the usual ~20-line hand-written KD `Trainer` subclass (compute_loss override, teacher in eval mode
  under `no_grad`, KL between softmaxes);
- `hf_kd_online`: `DistillationTrainer` with the teacher run online;
- `hf_kd_cached`: `DistillationTrainer` reading a `teacher_logits` column made once by `hf_kd.cache_teacher_logits`
  (the caching time is reported separately);
- `hf_kd_transfer`: the same with three rows in four unlabeled (labels `-100`, distillation term only), as in a
  transfer set: the cost of a row does not depend on whether it has labels.

Then `predict()` on the same number of examples, `DistillationTrainer` (teacher attached) against `Trainer`.
Peak RSS per arm is sampled with psutil (falls back to `resource`). Writes `overhead.json` and `overhead.md`.
"""

from __future__ import annotations

import copy
import gc
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PeakRSS, benchmark_parser, machine, machine_line, quiet_logs, write_results  # noqa: E402

from hf_kd import DistillationTrainer, DistillationTrainingArguments, cache_teacher_logits  # noqa: E402
from hf_kd.data.collator import DistillationDataCollator  # noqa: E402
from hf_kd.training.student import student_from_teacher  # noqa: E402

NUM_LABELS = 10
VOCAB = 30522


class ManualKDTrainer(Trainer):
    """The usual hand-written KD trainer found in tutorials (softmax KL; not multi-label aware)."""

    def __init__(self, *args, teacher_model=None, alpha=0.5, temperature=2.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher_model.to(self.args.device).eval()
        self.alpha, self.temperature = alpha, temperature

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        with torch.no_grad():
            teacher_logits = self.teacher(**{k: v for k, v in inputs.items() if k != "labels"}).logits
        t = self.temperature
        kd = F.kl_div(
            F.log_softmax(outputs.logits / t, dim=-1), F.softmax(teacher_logits / t, dim=-1), reduction="batchmean"
        ) * (t * t)
        loss = self.alpha * outputs.loss + (1 - self.alpha) * kd
        return (loss, outputs) if return_outputs else loss


def synthetic_dataset(n: int, seq_len: int, seed: int) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, VOCAB, (n, seq_len), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    labels = (torch.rand(n, NUM_LABELS, generator=g) < 0.2).float()
    return Dataset.from_dict(
        {
            "input_ids": ids.tolist(),
            "attention_mask": torch.ones_like(ids).tolist(),
            "token_type_ids": torch.zeros_like(ids).tolist(),
            "labels": labels.tolist(),
        }
    )


def build_models(hidden: int, teacher_layers: int, student_layers: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=teacher_layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=4 * hidden,
        max_position_embeddings=512,
        num_labels=NUM_LABELS,
        problem_type="multi_label_classification",
    )
    teacher = BertForSequenceClassification(config).eval()
    student = student_from_teacher(teacher, num_layers=student_layers)
    return teacher, student


def main() -> None:
    parser = benchmark_parser(__doc__, "overhead", seq_len=128, threads=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--teacher_layers", type=int, default=6)
    parser.add_argument("--student_layers", type=int, default=3)
    cli = parser.parse_args()

    if cli.threads:
        torch.set_num_threads(cli.threads)
    quiet_logs(logging.ERROR)

    n = cli.steps * cli.batch_size
    train = synthetic_dataset(n, cli.seq_len, seed=1)
    evalset = synthetic_dataset(n, cli.seq_len, seed=2)
    teacher, student0 = build_models(cli.hidden, cli.teacher_layers, cli.student_layers)
    # The default collator of DistillationTrainer needs a tokenizer; all arms use the same collator so that only the
    # trainer differs.
    from transformers import BertTokenizerFast

    vocab_dir = tempfile.mkdtemp(prefix="hf_kd_bench_vocab_")
    vocab = Path(vocab_dir) / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(VOCAB - 5)]))
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    collator = DistillationDataCollator(tokenizer)

    t0 = time.perf_counter()
    cached_train = cache_teacher_logits(teacher, train, batch_size=32)
    cache_seconds = time.perf_counter() - t0
    hidden = [[-100.0] * NUM_LABELS if i % 4 else row for i, row in enumerate(cached_train["labels"])]
    transfer_train = cached_train.remove_columns("labels").add_column("labels", hidden)

    out_root = tempfile.mkdtemp(prefix="hf_kd_bench_")
    common = dict(
        per_device_train_batch_size=cli.batch_size,
        per_device_eval_batch_size=cli.batch_size,
        max_steps=cli.steps,
        learning_rate=5e-5,
        logging_steps=10_000,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )

    def make_trainer(arm: str):
        model = copy.deepcopy(student0)
        if arm == "plain":
            args = TrainingArguments(output_dir=f"{out_root}/{arm}", **common)
            return Trainer(model=model, args=args, train_dataset=train, data_collator=collator)
        if arm == "manual_kd":
            args = TrainingArguments(output_dir=f"{out_root}/{arm}", **common)
            return ManualKDTrainer(
                model=model, args=args, train_dataset=train, data_collator=collator, teacher_model=teacher
            )
        args = DistillationTrainingArguments(output_dir=f"{out_root}/{arm}", alpha=0.5, temperature=2.0, **common)
        if arm == "hf_kd_online":
            return DistillationTrainer(
                model=model, teacher_model=teacher, args=args, train_dataset=train, data_collator=collator
            )
        if arm in ("hf_kd_cached", "hf_kd_transfer"):
            data = cached_train if arm == "hf_kd_cached" else transfer_train
            return DistillationTrainer(model=model, args=args, train_dataset=data, data_collator=collator)
        raise ValueError(arm)

    arms = ["plain", "manual_kd", "hf_kd_online", "hf_kd_cached", "hf_kd_transfer"]
    times: dict[str, list[float]] = {a: [] for a in arms}
    rss: dict[str, list[float]] = {a: [] for a in arms}
    rss_delta: dict[str, list[float]] = {a: [] for a in arms}
    for rep in range(cli.repeats):
        for arm in arms:
            trainer = make_trainer(arm)
            gc.collect()
            with PeakRSS() as mem:
                start = time.perf_counter()
                trainer.train()
                elapsed = time.perf_counter() - start
            times[arm].append(elapsed)
            rss[arm].append(mem.peak_mb)
            rss_delta[arm].append(mem.delta_mb)
            print(f"[overhead] repeat {rep + 1}/{cli.repeats} {arm}: {elapsed:.2f}s, peak RSS {mem.peak_mb:.0f} MB")
            del trainer
            gc.collect()

    # predict(): DistillationTrainer (teacher attached, not run at prediction) vs plain Trainer.
    pred_times: dict[str, list[float]] = {"plain": [], "hf_kd": []}
    pred_args = dict(common, max_steps=-1)
    for rep in range(cli.repeats):
        for arm in ("plain", "hf_kd"):
            model = copy.deepcopy(student0)
            if arm == "plain":
                trainer = Trainer(
                    model=model,
                    args=TrainingArguments(output_dir=f"{out_root}/p-{arm}", **pred_args),
                    data_collator=collator,
                )
            else:
                trainer = DistillationTrainer(
                    model=model,
                    teacher_model=teacher,
                    args=DistillationTrainingArguments(output_dir=f"{out_root}/p-{arm}", **pred_args),
                    data_collator=collator,
                )
            start = time.perf_counter()
            trainer.predict(evalset)
            pred_times[arm].append(time.perf_counter() - start)
            print(f"[overhead] predict repeat {rep + 1}/{cli.repeats} {arm}: {pred_times[arm][-1]:.2f}s")
            del trainer

    info = machine()
    med = {a: statistics.median(v) for a, v in times.items()}
    pmed = {a: statistics.median(v) for a, v in pred_times.items()}
    ratio = {a: med[a] / med["plain"] for a in arms}
    pred_ratio = pmed["hf_kd"] / pmed["plain"]
    cached_total = med["hf_kd_cached"] + cache_seconds
    targets = {
        "cached_student_stage_le_1.05x_plain": {"value": ratio["hf_kd_cached"], "met": ratio["hf_kd_cached"] <= 1.05},
        "transfer_rows_le_1.05x_plain": {"value": ratio["hf_kd_transfer"], "met": ratio["hf_kd_transfer"] <= 1.05},
        "predict_le_1.02x_plain": {"value": pred_ratio, "met": pred_ratio <= 1.02},
    }
    labels = {
        "plain": "plain `Trainer` (student only)",
        "manual_kd": "hand-written KD `Trainer` subclass (online teacher)",
        "hf_kd_online": "`DistillationTrainer`, online teacher",
        "hf_kd_cached": "`DistillationTrainer`, cached logits",
        "hf_kd_transfer": "`DistillationTrainer`, cached logits, 3 rows in 4 unlabeled (transfer set)",
    }
    lines = [
        f"Machine: {machine_line(info)}.",
        f"Setup: teacher {cli.teacher_layers}x{cli.hidden} BERT, student {cli.student_layers}x{cli.hidden} "
        f"(random weights), {NUM_LABELS} labels multi-label, batch {cli.batch_size}, seq {cli.seq_len}, "
        f"{cli.steps} steps, {cli.repeats} interleaved repeats, median shown.",
        "",
        "| arm | train() median (s) | runs (s) | ratio vs plain | peak RSS (MB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for a in arms:
        runs = ", ".join(f"{x:.2f}" for x in times[a])
        lines.append(f"| {labels[a]} | {med[a]:.2f} | {runs} | {ratio[a]:.2f}x | {max(rss[a]):.0f} |")
    lines += [
        "",
        f"Teacher logits cached once in {cache_seconds:.2f} s ({n} examples); cached arm including caching: "
        f"{cached_total:.2f} s ({cached_total / med['plain']:.2f}x plain).",
        "",
        "| predict() | median (s) | runs (s) | ratio |",
        "| --- | --- | --- | --- |",
        f"| plain `Trainer` | {pmed['plain']:.2f} | {', '.join(f'{x:.2f}' for x in pred_times['plain'])} | 1.00x |",
        f"| `DistillationTrainer` | {pmed['hf_kd']:.2f} | {', '.join(f'{x:.2f}' for x in pred_times['hf_kd'])} | "
        f"{pred_ratio:.2f}x |",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
        f"| cached-logits student stage <= 1.05x plain | {ratio['hf_kd_cached']:.2f}x | "
        f"{'yes' if targets['cached_student_stage_le_1.05x_plain']['met'] else 'NO'} |",
        f"| transfer-set rows (cached logits) <= 1.05x plain | {ratio['hf_kd_transfer']:.2f}x | "
        f"{'yes' if targets['transfer_rows_le_1.05x_plain']['met'] else 'NO'} |",
        f"| predict() <= 1.02x plain | {pred_ratio:.2f}x | "
        f"{'yes' if targets['predict_le_1.02x_plain']['met'] else 'NO'} |",
    ]
    markdown = "\n".join(lines)
    payload = {
        "machine": info,
        "settings": vars(cli) | {"num_labels": NUM_LABELS, "examples": n},
        "train_seconds": times,
        "train_median_seconds": med,
        "ratio_vs_plain": ratio,
        "peak_rss_mb": rss,
        "rss_growth_mb": rss_delta,
        "cache_seconds": cache_seconds,
        "predict_seconds": pred_times,
        "predict_median_seconds": pmed,
        "predict_ratio": pred_ratio,
        "targets": targets,
    }
    write_results(cli.name, payload, markdown, cli.out)


if __name__ == "__main__":
    main()
