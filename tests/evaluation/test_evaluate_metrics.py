"""Our metrics as `evaluate` modules (offline, combinable), and a user's `evaluate` metric inside compute_metrics."""

from __future__ import annotations

from pathlib import Path

import evaluate
import numpy as np
import pytest

from hf_kd.evaluation.blurb import blurb_hoc_f1
from hf_kd.evaluation.evaluate_metrics import METRICS, metric_path
from hf_kd.evaluation.metrics import (
    binary_metrics,
    expected_calibration_error,
    make_compute_metrics,
    multilabel_metrics,
)

USER_METRIC = """
import datasets
from pathlib import Path

import evaluate


class ExactRows(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="share of rows predicted exactly",
            citation="",
            inputs_description="",
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("float64")),
                }
            ),
        )

    def _compute(self, predictions, references):
        rows = [list(map(round, p)) == list(map(round, r)) for p, r in zip(predictions, references)]
        return {"exact_rows": sum(rows) / len(rows)}
"""

PROBS = [[0.9, 0.2, 0.6], [0.4, 0.7, 0.1], [0.6, 0.1, 0.8], [0.2, 0.3, 0.4]]
LABELS = [[1, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 1]]


@pytest.fixture
def user_metric(tmp_path) -> str:
    folder = tmp_path / "exact_rows"
    folder.mkdir()
    (folder / "exact_rows.py").write_text(USER_METRIC)
    return str(folder)


def test_two_of_our_metrics_and_a_users_combine_offline(user_metric, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    combined = evaluate.combine(
        [
            evaluate.load(metric_path("hf_kd_multilabel_f1")),
            evaluate.load(metric_path("hf_kd_calibration_error")),
            evaluate.load(user_metric),
        ]
    )
    result = combined.compute(predictions=PROBS, references=LABELS)
    expected = multilabel_metrics(PROBS, LABELS, threshold=0.5)
    assert {k: result[k] for k in expected} == pytest.approx(expected)
    assert result["ece"] == pytest.approx(expected_calibration_error(PROBS, LABELS))
    assert result["exact_rows"] == pytest.approx(2 / 4)  # rows 1 and 2 are predicted exactly at 0.5


def test_each_module_returns_the_function_it_wraps():
    f1 = evaluate.load(metric_path("hf_kd_multilabel_f1")).compute(
        predictions=PROBS, references=LABELS, threshold="f1"
    )
    assert f1["micro_f1"] == pytest.approx(multilabel_metrics(PROBS, LABELS, threshold=f1["threshold"])["micro_f1"])
    blurb = evaluate.load(metric_path("hf_kd_blurb_hoc")).compute(
        predictions=PROBS, references=LABELS, groups=[1, 1, 2, 2]
    )
    assert blurb == pytest.approx(blurb_hoc_f1(PROBS, LABELS, [1, 1, 2, 2]))
    scores, gold = [0.9, 0.2, 0.7, 0.4, 0.1], [1, 0, 1, 1, 0]
    triage = evaluate.load(metric_path("hf_kd_triage")).compute(predictions=scores, references=gold, threshold=0.3)
    assert {k: triage[k] for k in ("auroc", "sensitivity", "specificity")} == pytest.approx(
        {k: binary_metrics(scores, gold, threshold=0.3)[k] for k in ("auroc", "sensitivity", "specificity")}
    )
    agree = evaluate.load(metric_path("hf_kd_agreement")).compute(predictions=PROBS, references=LABELS)
    assert agree["agreement"] == pytest.approx(np.mean((np.array(PROBS) >= 0.5) == np.array(LABELS)))
    assert len(METRICS) == 5
    with pytest.raises(ValueError, match="'f2'"):
        metric_path("f2")


def test_compute_metrics_adds_a_users_evaluate_metric_on_the_predicted_labels(user_metric):
    logits = np.log(np.array(PROBS) / (1 - np.array(PROBS)))
    labels = np.array(LABELS, dtype=float)
    labels[3] = -100  # an unlabeled row: left out of the user's metric
    compute = make_compute_metrics(
        "multi_label_classification", threshold=0.5, evaluate_metric=evaluate.load(user_metric)
    )
    metrics = compute((logits, labels))
    assert metrics["exact_rows"] == pytest.approx(2 / 3)
    assert metrics["micro_f1"] == pytest.approx(
        make_compute_metrics("multi_label_classification")((logits, labels))["micro_f1"]
    )


def test_the_pipeline_reports_a_users_evaluate_metric(recipe, user_metric):
    from hf_kd.pipeline.run import run_pipeline
    from hf_kd.recipe.config import DistillationPipelineConfig

    recipe["evaluation"]["evaluate_metrics"] = [user_metric]
    result = run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    root = Path(recipe["output_dir"])
    for side, stage in (("teacher", "teacher_eval"), ("student", "evaluation")):
        for split in ("validation", "test"):
            saved = np.load(root / stage / f"predictions_{split}.npz")
            chosen = saved["probs"] >= result[side][split]["threshold"]
            exact = float(np.mean((chosen == saved["labels"].astype(bool)).all(axis=1)))
            assert result[side][split]["exact_rows"] == pytest.approx(exact)
