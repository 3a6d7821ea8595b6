"""Binary (triage) tasks: threshold rules, the pipeline's binary task from a two-class CSV, and `hf-kd evaluate`."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import save_model_dir, tiny_bert

from hf_kd import cli
from hf_kd.evaluation.thresholds import check_threshold_rule, choose_threshold, sensitivity_threshold
from hf_kd.pipeline.run import run_pipeline
from hf_kd.recipe.config import DistillationPipelineConfig

TRIAGE_METRICS = ("auroc", "auprc", "brier", "ece", "sensitivity", "specificity", "ppv", "npv", "f1")


def test_sensitivity_threshold_is_the_highest_reaching_the_target():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.clip(0.4 * labels + 0.6 * rng.random(200), 0, 1)
    for target in (0.5, 0.8, 0.95, 1.0):
        chosen = sensitivity_threshold(scores, labels, target)
        sensitivity = lambda t: ((scores >= t) & (labels == 1)).sum() / (labels == 1).sum()  # noqa: E731
        assert sensitivity(chosen) >= target
        higher = [t for t in np.unique(scores) if t > chosen]
        assert all(sensitivity(t) < target for t in higher)  # no higher threshold reaches it


def test_threshold_rules_and_their_errors():
    probs, labels = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])
    assert choose_threshold(0.3, probs, labels) == 0.3
    assert choose_threshold("prevalence", probs, labels) == 0.5
    assert choose_threshold({"sensitivity": 1.0}, probs, labels) == 0.35
    assert choose_threshold("f1", probs, labels) == 0.35  # F1 0.8 for t in (0.1, 0.35]: the grid value nearest 0.5
    for bad, pattern in ((1.5, "in \\[0, 1\\]"), ("youden", "'f1', 'prevalence'"), ({"sensitivity": 0}, "\\(0, 1\\]")):
        with pytest.raises(ValueError, match=pattern):
            check_threshold_rule(bad)


def _write_csv(folder: Path, seed: int = 0) -> Path:
    """A two-class CSV per split with arbitrary column names: `note` (text) and `triage` (routine/emergency)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, n in (("train", 40), ("validation", 20), ("test", 20)):
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["note", "triage"])
            writer.writeheader()
            for i in range(n):
                urgent = i % 3 == 0
                words = ["chest", "pain", "acute"] if urgent else ["cough", "chronic", "the"]
                writer.writerow(
                    {
                        "note": " ".join(rng.choice(words) for _ in range(6)),
                        "triage": "emergency" if urgent else "routine",
                    }
                )  # noqa: E501
    return folder


@pytest.fixture
def binary_recipe(tmp_path) -> dict:
    data = _write_csv(tmp_path / "triage")
    teacher = save_model_dir(tiny_bert(num_labels=2, layers=2), tmp_path / "teacher_base", tmp_path)
    common = {"per_device_train_batch_size": 8, "num_train_epochs": 2, "logging_steps": 1, "use_cpu": True}
    return {
        "data": {
            "dataset": "files",
            "data_files": {s: str(data / f"{s}.csv") for s in ("train", "validation", "test")},
            "text_column": "note",
            "label_column": "triage",
            "label_names": ["routine", "emergency"],
            "max_length": 16,
        },
        "teacher": {"model": teacher, "learning_rate": 1e-3, "head_learning_rate": 1e-2, **common},
        "student": {"from_teacher_layers": [0], "alpha": 0.5, **common},
        "evaluation": {
            "latency_batch_sizes": [2],
            "latency_rounds": 3,
            "batch_size": 8,
            "threshold": {"sensitivity": 0.9},
        },
        "output_dir": str(tmp_path / "run"),
        "seed": 0,
    }


def test_two_class_csv_is_a_binary_task_with_triage_metrics(binary_recipe, tmp_path, capsys):
    result = run_pipeline(DistillationPipelineConfig.from_dict(binary_recipe))
    root = Path(binary_recipe["output_dir"])
    report = json.loads((root / "report.json").read_text())
    assert report["extra"]["task"] == "binary"
    # Teacher and student timed in 3 interleaved rounds: each speed-up is the median of the rounds' ratios.
    rounds = {
        side: report[side]["latency"]["per_batch_size"]["2"]["rounds_ms_per_example"]
        for side in ("teacher", "student")
    }
    ratios = sorted(t / s for t, s in zip(rounds["teacher"], rounds["student"], strict=True))
    assert len(ratios) == 3 and report["ratios"]["speedup"]["2"] == pytest.approx(ratios[1])
    assert report["ratios"]["speedup_min_max"]["2"] == pytest.approx([ratios[0], ratios[2]])
    for side in ("teacher", "student"):
        for split in ("validation", "test"):
            for metric in TRIAGE_METRICS:
                assert f"{split}_{metric}" in report[side]["metrics"], (side, split, metric)
        # The operating point is the highest threshold with sensitivity >= 0.9 on validation (from the saved
        # probabilities: no lower positive score may pass it), and test is scored at that same threshold.
        threshold = result[side]["validation"]["threshold"]
        assert threshold == result[side]["test"]["threshold"]
        stage = root / ("teacher_eval" if side == "teacher" else "evaluation")
        saved = np.load(stage / "predictions_validation.npz")
        positives = np.sort(saved["probs"][saved["labels"] == 1])[::-1]
        assert threshold == pytest.approx(positives[int(np.ceil(0.9 * len(positives))) - 1])
        test = np.load(stage / "predictions_test.npz")
        caught = (test["probs"][test["labels"] == 1] >= threshold).mean()
        assert result[side]["test"]["sensitivity"] == pytest.approx(caught)
    table = (root / "report.md").read_text()
    assert "validation_auroc" in table and "validation_sensitivity" in table
    card = (Path(result["student_model"]) / "README.md").read_text()
    assert "auroc" in card and "specificity" in card
    assert (root / "evaluation" / "binary_curves.png").is_file()
    # The threshold travels with the student, and `hf-kd evaluate` uses it.
    threshold = json.loads((Path(result["student_model"]) / "config.json").read_text())["hf_kd_threshold"]
    assert threshold == result["student"]["validation"]["threshold"]
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(binary_recipe))
    capsys.readouterr()
    args = ["evaluate", "--model", result["student_model"], "--recipe", str(recipe_path), "--split", "test"]
    args += ["--evaluation.threshold", "0.99"]  # ignored: the saved operating point wins
    assert cli.main(args) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["threshold"] == threshold
    assert evaluated["auroc"] == pytest.approx(result["student"]["test"]["auroc"])
    assert evaluated["sensitivity"] == pytest.approx(result["student"]["test"]["sensitivity"])


def test_two_named_classes_need_their_order(binary_recipe):
    del binary_recipe["data"]["label_names"]
    with pytest.raises(ValueError, match="declare their order in `data.label_names: \\[negative, positive\\]`"):
        run_pipeline(DistillationPipelineConfig.from_dict(binary_recipe))


def test_gate_defaults_to_auroc_for_a_binary_task(binary_recipe):
    from hf_kd.pipeline.run import QualityGateError

    binary_recipe["evaluation"]["min_teacher_metric"] = 1.01
    with pytest.raises(QualityGateError, match="validation auroc = "):
        run_pipeline(DistillationPipelineConfig.from_dict(binary_recipe))


def test_gate_on_a_metric_that_cannot_be_computed_stops_the_run(binary_recipe, tmp_path, capsys):
    from hf_kd.pipeline.run import QualityGateError

    validation = Path(binary_recipe["data"]["data_files"]["validation"])
    lines = validation.read_text().splitlines()
    validation.write_text("\n".join([lines[0], *(row for row in lines[1:] if row.endswith("routine"))]) + "\n")
    binary_recipe["evaluation"].update(min_teacher_metric=0.5, threshold=0.5)  # AUROC of a one-class split: NaN
    config = DistillationPipelineConfig.from_dict(binary_recipe)
    with pytest.raises(QualityGateError, match="validation auroc is nan \\(no number"):
        run_pipeline(config)
    assert not (Path(binary_recipe["output_dir"]) / "teacher_logits").exists()
    # Rerun: the stored NaN (None in the stage marker) fails the gate the same way, from the CLI in one line.
    recipe_path = tmp_path / "gate.yaml"
    recipe_path.write_text(yaml.safe_dump(binary_recipe))
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        cli.main(["distill", str(recipe_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2 and err[-1].startswith("hf-kd: error: Teacher quality gate cannot be applied")
    assert "validation auroc is None" in err[-1]
