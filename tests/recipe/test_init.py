"""`hf-kd init` targets, and a new user's path on a data set of train and test files only: init, then distill, export
and predict, without editing the recipe."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tokenizer, save_model_dir, tiny_bert

from hf_kd.cli import main
from hf_kd.recipe.config import DistillationPipelineConfig
from hf_kd.recipe.template import starting_recipe

SPELLED = "the a patient fever cough pain tumor cell cancer growth death immune signal chest acute chronic".split()
CANARY = "CANARYWORD"


def _files(folder: Path, n_train: int = 60, n_test: int = 20, labelled_test: bool = False, words: int = 6):
    """Train and test JSONL files with an `id` column; the test file without labels unless asked."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for i in range(n):
                label = ["acute", "chronic", "routine"][i % 3]
                text = " ".join(rng.choice(SPELLED) for _ in range(words)) + f" {label if label != 'routine' else ''}"
                row = {"id": f"{split}-{i:03d}", "text": text}
                if split == "train" or labelled_test:
                    row["label"] = label
                handle.write(json.dumps(row) + "\n")
    return folder / "train.jsonl", folder / "test.jsonl"


def _teacher(tmp_path: Path, layers: int = 4) -> str:
    return save_model_dir(tiny_bert(num_labels=3, layers=layers, hidden_size=32), tmp_path / "teacher", tmp_path)


@pytest.mark.parametrize(
    ("target", "student", "export"),
    [
        ("accurate", {"num_layers": 2}, None),
        ("deploy", {"from_teacher_layers": [0, 2], "prune_vocabulary": True}, "int8"),
        ("smallest", {"from_teacher_layers": [0, 2], "prune_vocabulary": True, "hidden_size": 16}, "int8"),
    ],
)
def test_targets_write_their_student_and_say_why(tmp_path, target, student, export):
    train, test = _files(tmp_path / "data")
    recipe, summary = starting_recipe(
        {"train": str(train), "test": str(test)}, _teacher(tmp_path), label_column="label", target=target
    )
    assert {k: recipe["student"][k] for k in student} == student
    assert recipe["evaluation"].get("export") == export
    assert ("general_distillation" in recipe["student"]) == (target == "smallest")
    assert summary["target"] == target and any(line.startswith(f"target {target}") for line in summary["chosen"])
    assert recipe["data"]["validation_size"] == 8  # 10 % of 60 rows is too few to score: the fewest that can
    assert any("validation_size 8" in c for c in summary["chosen"])


def test_max_length_is_the_99th_percentile_of_the_token_lengths_rounded_up(tmp_path):
    train, test = _files(tmp_path / "data", words=10)
    teacher = _teacher(tmp_path)
    recipe, summary = starting_recipe({"train": str(train), "test": str(test)}, teacher, label_column="label")
    tokenizer = make_tokenizer(tmp_path / "tok")
    texts = [json.loads(line)["text"] for line in train.read_text().splitlines()]
    p99 = int(np.ceil(np.percentile([len(tokenizer(t)["input_ids"]) for t in texts], 99)))
    assert recipe["data"]["max_length"] == -(-p99 // 8) * 8 and recipe["data"]["max_length"] < 256
    assert any(f"is {p99} tokens" in c for c in summary["chosen"])


def test_an_unknown_target_and_an_unreadable_teacher_are_named(tmp_path):
    train, test = _files(tmp_path / "data")
    with pytest.raises(
        ValueError, match=r"`--target` must be one of \['accurate', 'deploy', 'smallest'\], got 'tiny'"
    ):
        starting_recipe({"train": str(train)}, _teacher(tmp_path), label_column="label", target="tiny")
    with pytest.raises(ValueError, match=r"`--model /nowhere/model`: `hf-kd init` reads the teacher's tokenizer"):
        starting_recipe({"train": str(train)}, "/nowhere/model", label_column="label")


@pytest.mark.slow
def test_a_new_user_goes_from_train_and_test_files_to_predictions_without_editing_the_recipe(tmp_path, capsys):
    train, test = _files(tmp_path / "data")
    teacher = _teacher(tmp_path)
    recipe_file = tmp_path / "recipe.yaml"
    init = ["init", "--train", str(train), "--test", str(test), "--model", teacher, "--label_column", "label"]
    assert main([*init, "--output", str(recipe_file)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["splits"] == {"train": 60, "test": 20} and summary["target"] == "deploy"
    assert summary["transfer_set"]["rows"] == {"test": 20}
    config = DistillationPipelineConfig.from_yaml(recipe_file)
    # Tiny budgets for the test, given on the command line: the recipe file stays as init wrote it.
    small = ["--teacher.num_train_epochs", "1", "--student.num_train_epochs", "1", "--evaluation.latency", "false"]
    small += ["--output_dir", str(tmp_path / "run"), "--evaluation.plots", "false"]
    assert main(["distill", str(recipe_file), *small]) == 0
    run = tmp_path / "run"
    done = json.loads((run / "evaluation" / "DONE.json").read_text())
    assert set(done["student"]) == {"validation"}  # held out of train: 8 of 60 rows (10 % would be too few)
    predicted = [json.loads(line) for line in (run / "evaluation" / "predictions_test.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predicted] == [f"test-{i:03d}" for i in range(20)]
    # Export the student again by hand, then predict the test file with it and with the PyTorch student.
    assert (
        main(["export", str(run / "student" / "model"), "--output", str(tmp_path / "onnx"), "--quantize", "int8"]) == 0
    )
    capsys.readouterr()
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(tmp_path / "onnx"), str(test), "--output", str(out)]) == 0
    rows = out.read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("id,prediction,p_") and len(rows) == 21
    # The PyTorch student through `hf-kd predict` gives the run's own predictions of the test file.
    assert main(["predict", str(run / "student" / "model"), str(test), "--output", str(tmp_path / "p.jsonl")]) == 0
    by_command = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [p["prediction"] for p in by_command] == [p["prediction"] for p in predicted]
    for a, b in zip(by_command, predicted):
        assert all(abs(a["probabilities"][k] - b["probabilities"][k]) < 1e-4 for k in a["probabilities"])
    assert main(["predict", str(run / "evaluation" / "export"), str(test), "--output", str(tmp_path / "e.jsonl")]) == 0
    assert CANARY not in (tmp_path / "e.jsonl").read_text() and "patient" not in (tmp_path / "e.jsonl").read_text()
    assert config.data.validation_size == 8 and config.evaluation.export == "int8"
