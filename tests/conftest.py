"""Shared fixtures: tiny random models and tokenizers built offline, and the path of ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("WANDB_DISABLED", "true")

SHARED = (Path(__file__).resolve().parents[1] / ".." / "shared").resolve()
MINILM = SHARED / "models" / "all-MiniLM-L6-v2"
HOC = SHARED / "data" / "hoc"
CODIESP = SHARED / "data" / "codiesp"


def pytest_configure(config):
    """The tests that use real data and weights read ../shared beside the checkout (CI has it): fail, never skip."""
    if not MINILM.is_dir() or not HOC.is_dir() or not CODIESP.is_dir():
        raise pytest.UsageError(f"The shared data and model are missing at {SHARED} (../shared beside the checkout).")


WORDS = (
    "the a patient fever cough pain tumor cell cancer growth death immune signal chest acute chronic "
    "el la paciente fiebre dolor tos con sin de y presento ##s ##ing ##ed"
).split()


def write_vocab(folder: Path, words: list[str] = WORDS) -> Path:
    """Write a WordPiece vocabulary file with the BERT special tokens first."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    return path


def make_tokenizer(folder: Path, words: list[str] = WORDS):
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab=str(write_vocab(folder, words)))


def tiny_bert(
    num_labels: int = 3,
    problem_type: str | None = None,
    hidden_size: int = 32,
    layers: int = 2,
    vocab_size: int = 64,
    seed: int = 0,
    id2label: dict[int, str] | None = None,
    dropout: float = 0.0,
):
    """A tiny random `BertForSequenceClassification`."""
    from transformers import BertConfig, BertForSequenceClassification

    kwargs = {}
    if id2label is not None:
        kwargs["id2label"] = id2label
        kwargs["label2id"] = {v: k for k, v in id2label.items()}
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=64,
        num_labels=num_labels,
        problem_type=problem_type,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **kwargs,
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


def random_dataset(
    n: int = 16, seq: int = 8, vocab: int = 64, num_labels: int = 3, kind: str = "single", seed: int = 0
):
    """A tokenized `datasets.Dataset` of random ids (all sequences the same length) and labels."""
    import datasets

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (n, seq), generator=g)
    data = {"input_ids": ids.tolist(), "attention_mask": torch.ones(n, seq, dtype=torch.long).tolist()}
    if kind == "single":
        data["labels"] = torch.randint(0, num_labels, (n,), generator=g).tolist()
    elif kind == "multi":
        data["labels"] = torch.randint(0, 2, (n, num_labels), generator=g).float().tolist()
    elif kind == "regression":
        data["labels"] = torch.randn(n, generator=g).tolist()
    return datasets.Dataset.from_dict(data)


@pytest.fixture
def tokenizer(tmp_path):
    return make_tokenizer(tmp_path / "tok")


class CountingTeacher(torch.nn.Module):
    """Wraps a teacher and counts its forward calls and the examples it saw."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config
        self.calls = 0
        self.examples = 0

    def forward(self, **kwargs):
        self.calls += 1
        self.examples += kwargs["input_ids"].shape[0]
        return self.model(**kwargs)


class StepLog:
    """A `TrainerCallback` recording the global step after each optimizer step (what a resumed run really ran)."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _StepLog(TrainerCallback):
            def __init__(self) -> None:
                self.steps: list[int] = []

            def on_step_end(self, args, state, control, **kwargs):
                self.steps.append(state.global_step)

        return _StepLog()


def mapped_rss(path: str | os.PathLike) -> int:
    """Bytes of the file `path` resident in this process's mappings of it (Linux `/proc/self/smaps`)."""
    import re

    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            inside = line.split(maxsplit=5)[-1] == str(path)
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1]) * 1024
    return total


def micro_f1_from_saved(stage_dir: Path, split: str, threshold: float) -> float:
    """Micro-F1 recomputed with scikit-learn from a stage's saved probabilities and labels (`predictions_<split>.npz`),
    at `threshold`: what a reported metric must equal."""
    import numpy as np
    from sklearn.metrics import f1_score

    saved = np.load(Path(stage_dir) / f"predictions_{split}.npz")
    return float(f1_score(saved["labels"].astype(int), (saved["probs"] >= threshold).astype(int), average="micro"))


def args_for(path, output_subdir: str = "out", **kwargs):
    """Small, fast `DistillationTrainingArguments` on CPU; keyword arguments override the defaults."""
    from hf_kd import DistillationTrainingArguments

    defaults = dict(
        output_dir=str(path / output_subdir) if output_subdir else str(path),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        num_train_epochs=1,
        learning_rate=1e-2,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )
    defaults.update(kwargs)
    return DistillationTrainingArguments(**defaults)


CLINICAL_LABELS = ("cough", "fever", "pain")
_FILE_WORDS = ("patient", "fever", "cough", "pain", "chest", "acute", "chronic", "the", "a", "with")


def write_label_files(folder, sizes=(("train", 24), ("validation", 12), ("test", 12)), seed: int = 0):
    """Multi-label JSONL splits (`text`, `labels` as lists of names from `CLINICAL_LABELS`) for pipeline tests."""
    import json
    import random
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, n in sizes:
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for _ in range(n):
                labels = sorted({rng.choice(CLINICAL_LABELS) for _ in range(rng.randint(1, 2))})
                words = [rng.choice(_FILE_WORDS) for _ in range(6)] + labels
                handle.write(json.dumps({"text": " ".join(words), "labels": labels}) + "\n")
    return folder


def save_model_dir(model, folder: Path, tmp_path: Path) -> str:
    """Save a tiny model with the test tokenizer, as a local checkpoint folder."""
    model.save_pretrained(folder)
    make_tokenizer(tmp_path / "tok").save_pretrained(folder)
    return str(folder)


@pytest.fixture
def recipe(tmp_path) -> dict:
    """A pipeline recipe over tiny multi-label JSONL files and a tiny 2-layer teacher, trained for a few steps."""
    data = write_label_files(tmp_path / "data")
    teacher = save_model_dir(tiny_bert(num_labels=3, layers=2), tmp_path / "teacher_base", tmp_path)
    common = {"per_device_train_batch_size": 8, "num_train_epochs": 1, "logging_steps": 1, "use_cpu": True}
    return {
        "data": {"dataset": "files", "path": str(data), "max_length": 32},
        "teacher": {"model": teacher, "learning_rate": 1e-3, "head_learning_rate": 1e-2, **common},
        "student": {"from_teacher_layers": [0], "alpha": 0.3, "temperature": 2.0, **common},
        "evaluation": {"latency_batch_sizes": [2], "plots": False, "batch_size": 8},
        "output_dir": str(tmp_path / "run"),
        "seed": 0,
    }
