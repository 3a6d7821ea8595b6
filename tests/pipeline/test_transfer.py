"""Transfer sets: unlabeled text reaches the teacher's logit pass and the student's distillation term, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from conftest import CLINICAL_LABELS, HOC
from safetensors.torch import load_file
from transformers import Trainer

from hf_kd.cli import main
from hf_kd.constants import IGNORE_INDEX
from hf_kd.pipeline.run import run_pipeline
from hf_kd.pipeline.splits import load_recipe_data, subset, transfer_set
from hf_kd.recipe.config import DistillationPipelineConfig

UNLABELED_WORD = "tumor"  # in the tokenizer's vocabulary, in no labelled row: what the transfer set adds


def write_unlabeled(path: Path, n: int = 10, column: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(
                json.dumps({column: f"{UNLABELED_WORD} growth signal cell {'acute' if i % 2 else 'chronic'}"})
            )
            handle.write("\n")
    return path


@pytest.fixture
def train_sizes(monkeypatch) -> list[tuple[str, int]]:
    """(stage folder, rows of the trainer's training set) of every `Trainer.train` call."""
    seen: list[tuple[str, int]] = []
    original = Trainer.train

    def recording(self, *args, **kwargs):
        seen.append((Path(self.args.output_dir).parent.name, len(self.train_dataset)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", recording)
    return seen


def _student_weights(result) -> dict[str, torch.Tensor]:
    return load_file(str(Path(result["student_model"]) / "model.safetensors"))


def test_unlabeled_rows_reach_only_the_logit_pass_and_the_distillation(recipe, tmp_path, train_sizes):
    plain = run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    with_transfer = dict(recipe, output_dir=str(tmp_path / "with_transfer"))
    with_transfer["data"] = dict(recipe["data"], unlabeled_files=[str(write_unlabeled(tmp_path / "u.jsonl"))])
    result = run_pipeline(DistillationPipelineConfig.from_dict(with_transfer))

    # The teacher trains on the 24 labelled rows both times, the student on 24 + 10 with the transfer set.
    assert train_sizes == [("teacher", 24), ("student", 24), ("teacher", 24), ("student", 34)]
    # Teacher, gate, threshold and metrics: identical with and without the transfer set.
    assert result["teacher"] == plain["teacher"]
    # The cached set holds the teacher's logits of the unlabeled rows, after the labelled ones, labels -100.
    cached = datasets.load_from_disk(str(Path(with_transfer["output_dir"]) / "teacher_logits" / "dataset"))
    assert len(cached) == 34
    labels = np.asarray(cached["labels"])
    assert (labels[24:] == IGNORE_INDEX).all() and (labels[:24] != IGNORE_INDEX).all()
    assert np.isfinite(np.asarray(cached["teacher_logits"][24:])).all()
    # ... and the student learned from them: same seed, other weights.
    before, after = _student_weights(plain), _student_weights(result)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # The student's metrics are on the labelled splits only.
    assert set(result["student"]) == {"validation", "test"}


def test_adding_a_transfer_set_keeps_the_teacher_and_recomputes_from_the_logits(recipe, tmp_path, train_sizes):
    run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    train_sizes.clear()
    recipe["data"]["unlabeled_files"] = [str(write_unlabeled(tmp_path / "u.jsonl", n=6))]
    result = run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    assert result["stages"]["teacher"].startswith("skipped") and result["stages"]["teacher_eval"].startswith("skipped")
    assert result["stages"]["teacher_logits"] == "ran" and train_sizes == [("student", 30)]
    # A changed unlabeled file (same path) is a changed input too.
    write_unlabeled(tmp_path / "u.jsonl", n=8)
    train_sizes.clear()
    again = run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    assert again["stages"]["teacher"].startswith("skipped") and train_sizes == [("student", 32)]


def test_unlabeled_test_split_gets_predictions_and_joins_the_transfer_set(recipe, tmp_path, train_sizes):
    data = Path(recipe["data"]["path"])
    canary = "zebracanary"
    rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    recipe["data"]["max_unknown_rate"] = 1.0  # the canary is a word the tiny vocabulary cannot spell
    ids = [f"case-{900 - i}" for i in range(len(rows))]  # the file's own ids, not in row order
    text = "".join(json.dumps({"id": i, "text": f"{canary} {r['text']}"}) + "\n" for i, r in zip(ids, rows))
    (data / "test.jsonl").write_text(text)
    result = run_pipeline(DistillationPipelineConfig.from_dict(recipe))

    assert set(result["teacher"]) == {"validation"} and set(result["student"]) == {"validation"}
    assert train_sizes == [("teacher", 24), ("student", 24 + len(rows))]
    folder = Path(recipe["output_dir"]) / "evaluation"
    predictions = [json.loads(line) for line in (folder / "predictions_test.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == ids
    threshold = result["student"]["validation"]["threshold"]
    for p in predictions:  # label names at the student's threshold, with the probabilities they come from
        assert set(p) == {"id", "prediction", "probabilities"} and list(p["probabilities"]) == list(CLINICAL_LABELS)
        assert p["prediction"] == [n for n, s in p["probabilities"].items() if s >= threshold]
    # No text outside the run's cache: the canary is in no file the run keeps.
    for file in Path(recipe["output_dir"]).rglob("*"):
        if file.is_file() and "teacher_logits" not in file.parts:
            assert canary.encode() not in file.read_bytes(), file


def test_labelless_validation_split_and_unlabeled_file_without_text_are_named(recipe, tmp_path):
    data = Path(recipe["data"]["path"])
    rows = [json.loads(line) for line in (data / "validation.jsonl").read_text().splitlines()]
    (data / "validation.jsonl").write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in rows))
    with pytest.raises(ValueError, match="'validation' has no label column 'labels'"):
        run_pipeline(DistillationPipelineConfig.from_dict(recipe))

    write_label_rows = [json.dumps({"text": r["text"], "labels": ["cough"]}) + "\n" for r in rows]
    (data / "validation.jsonl").write_text("".join(write_label_rows))
    bad = write_unlabeled(tmp_path / "notes.jsonl", column="note")
    recipe["data"]["unlabeled_files"] = [str(bad)]
    with pytest.raises(ValueError, match=r"Column 'text' not found in split 'unlabeled \(.*notes.jsonl\)'"):
        run_pipeline(DistillationPipelineConfig.from_dict(recipe))


def test_subset_rest_is_the_complement_of_the_draw():
    rows = datasets.Dataset.from_dict({"text": [f"s{i}" for i in range(20)], "group": [i // 4 for i in range(20)]})
    kept, rest = subset(rows, 2, seed=3), subset(rows, 2, seed=3, rest=True)
    assert len(set(kept["group"])) == 2 and len(set(rest["group"])) == 3
    assert sorted([*kept["text"], *rest["text"]]) == sorted(rows["text"])
    flat = rows.remove_columns("group")
    assert sorted([*subset(flat, 5, 0)["text"], *subset(flat, 5, 0, rest=True)["text"]]) == sorted(flat["text"])
    assert len(subset(flat, None, 0, rest=True)) == 0 and len(subset(flat, 50, 0, rest=True)) == 0


def test_hoc_transfer_set_is_the_training_abstracts_outside_train_size(tmp_path):
    data = {"dataset": "hoc", "path": str(HOC), "level": "sentence", "train_size": 400}
    config = DistillationPipelineConfig.from_dict(
        {"data": {**data, "unlabeled_from_corpus": True}, "teacher": {"model": "unused"}}
    )
    raw, _, _ = load_recipe_data(config, cache_dir=str(tmp_path))
    transfer = transfer_set(raw, config.data, config.seed, 10)
    kept = subset(raw["train"], 400, config.seed)
    assert len(kept) + len(transfer) == len(raw["train"])
    assert len(set(raw["train"]["group"])) - 400 == 895  # the HoC training abstracts a recipe could not use
    assert set(transfer.column_names) == {"text", "labels"}
    assert (np.asarray(transfer["labels"]) == IGNORE_INDEX).all()
    assert sorted([*transfer["text"], *kept["text"]]) == sorted(raw["train"]["text"])


def test_init_accepts_an_unlabeled_test_file_and_unlabeled_files(tmp_path, capsys):
    from conftest import MINILM, write_label_files

    data = write_label_files(tmp_path / "data")
    rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    (data / "test.jsonl").write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in rows))
    extra = write_unlabeled(tmp_path / "notes.jsonl", n=7)
    out = tmp_path / "recipe.yaml"
    code = main(
        ["init", "--train", str(data / "train.jsonl"), "--validation", str(data / "validation.jsonl")]
        + ["--test", str(data / "test.jsonl"), "--unlabeled", str(extra), "--model", str(MINILM), "--output", str(out)]
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["transfer_set"]["rows"] == {"test": len(rows), "unlabeled_files": 7}
    assert "predictions" in summary["transfer_set"]["test"]
    recipe = DistillationPipelineConfig.from_yaml(out)
    assert recipe.data.unlabeled_files == [str(extra)] and recipe.data.data_files["test"] == str(data / "test.jsonl")


def test_a_transfer_set_for_a_regression_task_is_refused(tmp_path):
    rows = [{"text": f"patient fever {i}", "score": 0.1 * i + 0.05} for i in range(6)]
    for split in ("train", "validation"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = DistillationPipelineConfig.from_dict(
        {
            "data": {
                "dataset": "files",
                "path": str(tmp_path),
                "label_column": "score",
                "unlabeled_files": [str(write_unlabeled(tmp_path / "u" / "notes.jsonl"))],
            },
            "teacher": {"model": "unused"},
        }
    )
    from hf_kd.pipeline.splits import recipe_splits

    with pytest.raises(ValueError, match="needs a classification task; this one is regression"):
        recipe_splits(config, cache_dir=str(tmp_path / "cache"))


def test_a_transfer_sets_labels_are_hidden_once_per_part(tmp_path, monkeypatch):
    import hf_kd.pipeline.splits as splits

    hidden_rows = []
    original = splits.hide_labels
    monkeypatch.setattr(splits, "hide_labels", lambda d, *a: hidden_rows.append(len(d)) or original(d, *a))
    notes = write_unlabeled(tmp_path / "u.jsonl", n=7)
    data = {"dataset": "hoc", "path": str(HOC), "level": "sentence", "train_size": 400}
    config = DistillationPipelineConfig.from_dict(
        {"data": {**data, "unlabeled_from_corpus": True, "unlabeled_files": [str(notes)]}, "teacher": {"model": "x"}}
    )
    raw, _, _ = load_recipe_data(config, cache_dir=str(tmp_path))
    transfer = transfer_set(raw, config.data, config.seed, 10)
    rest = subset(raw["train"], 400, config.seed, rest=True)
    assert hidden_rows == [7, len(rest)]  # the files once (on load), the corpus' other abstracts once: no second pass
    assert transfer["text"] == [*raw["unlabeled"]["text"], *rest["text"]] and len(transfer) == 7 + len(rest)
    assert transfer.features["labels"] == raw["train"].features["labels"]
    assert (np.asarray(transfer["labels"]) == IGNORE_INDEX).all()


def test_unlabeled_from_corpus_with_every_training_row_labelled_adds_no_rows_and_keeps_the_files(tmp_path):
    """`data.unlabeled_from_corpus` with no `train_size` (every training row labelled): the corpus adds no row, the
    transfer set is the unlabeled files' rows (this crashed with a KeyError on `labels`: hiding the labels of zero
    rows wrote no column)."""
    notes = write_unlabeled(tmp_path / "u.jsonl", n=5)
    data = {"dataset": "hoc", "path": str(HOC), "level": "sentence", "train_size": None}
    config = DistillationPipelineConfig.from_dict(
        {"data": {**data, "unlabeled_from_corpus": True, "unlabeled_files": [str(notes)]}, "teacher": {"model": "x"}}
    )
    raw, _, _ = load_recipe_data(config, cache_dir=str(tmp_path))
    assert len(subset(raw["train"], None, config.seed, rest=True)) == 0
    transfer = transfer_set(raw, config.data, config.seed, 10)
    assert transfer["text"] == raw["unlabeled"]["text"] and len(transfer) == 5
    assert transfer.features["labels"] == raw["train"].features["labels"]
    assert (np.asarray(transfer["labels"]) == IGNORE_INDEX).all()
