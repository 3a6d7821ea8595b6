"""The task module: each task type's problem type, threshold rule, scores and metrics, against the plain formulas."""

from __future__ import annotations

import numpy as np
import pytest

from hf_kd.constants import TASK_TYPES, THRESHOLDED_TASKS
from hf_kd.evaluation.blurb import blurb_hoc_f1
from hf_kd.evaluation.metrics import binary_metrics, multilabel_metrics, single_label_metrics
from hf_kd.evaluation.tasks import TASKS, split_metrics, task_type

NAMES = ["alpha", "beta", "gamma"]


def _data(task: str, rng: np.random.Generator, n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    if task == "multi_label_classification":
        labels = (rng.random((n, 3)) < 0.4).astype(np.float32)
        labels[0], labels[1] = 1, 0  # every label has both values
        return rng.normal(size=(n, 3)), labels
    if task == "binary":
        return rng.normal(size=(n, 2)), np.arange(n) % 2
    if task == "single_label_classification":
        return rng.normal(size=(n, 3)), np.arange(n) % 3
    return rng.normal(size=(n, 1)), rng.normal(size=n)


def test_every_task_has_one_type_with_its_problem_type_and_threshold_rule():
    assert list(TASKS) == list(TASK_TYPES)
    assert {name for name, kind in TASKS.items() if kind.thresholded} == set(THRESHOLDED_TASKS)
    assert task_type("binary").problem_type == "single_label_classification"  # a two-logit single-label head
    assert all(task_type(name).problem_type == name for name in TASK_TYPES if name != "binary")
    with pytest.raises(ValueError, match="'token_classification'"):
        task_type("token_classification")


def test_scores_are_the_plain_formulas():
    logits = np.array([[0.0, 2.0], [1.0, -1.0]])
    sigmoid = 1 / (1 + np.exp(-logits))
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(task_type("multi_label_classification").scores(logits), sigmoid)
    np.testing.assert_allclose(task_type("single_label_classification").scores(logits), softmax)
    np.testing.assert_allclose(task_type("binary").scores(logits), softmax[:, 1])  # the second class is positive
    np.testing.assert_allclose(task_type("regression").scores(logits[:, :1]), logits[:, 0])
    with pytest.raises(ValueError, match="one value per row"):  # not its first column, silently
        task_type("regression").scores(logits)


@pytest.mark.parametrize("task", TASK_TYPES)
def test_a_split_reports_every_metric_its_task_offers_to_a_gate_or_a_search(task):
    rng = np.random.default_rng(3)
    logits, labels = _data(task, rng)
    groups = np.repeat(np.arange(len(labels) // 4), 4)  # four rows per document: BLURB's scores for multi-label
    got = split_metrics(logits, labels, groups, task, NAMES, threshold=0.4)
    assert set(task_type(task).metric_names(NAMES, grouped=True)) <= set(got)
    default = task_type(task).default_metric(grouped=True)
    assert default is None if task == "regression" else default in got


def test_each_task_s_metrics_are_the_plain_metric_functions():
    rng = np.random.default_rng(4)
    logits, labels = _data("multi_label_classification", rng)
    groups = np.repeat(np.arange(6), 4)
    probs = 1 / (1 + np.exp(-logits))
    multi = task_type("multi_label_classification").metrics(logits, labels, groups, NAMES, 0.3)
    assert multi["micro_f1"] == multilabel_metrics(probs, labels, threshold=0.3, label_names=NAMES)["micro_f1"]
    assert multi["blurb_micro_f1"] == blurb_hoc_f1(probs, labels, groups, threshold=0.3)["micro_f1"]
    assert multi["threshold"] == 0.3
    logits, labels = _data("binary", rng)
    positive = 1 / (1 + np.exp(logits[:, 0] - logits[:, 1]))
    assert task_type("binary").metrics(logits, labels, threshold=0.6) == pytest.approx(
        binary_metrics(positive, labels, threshold=0.6)
    )
    logits, labels = _data("single_label_classification", rng)
    assert task_type("single_label_classification").metrics(logits, labels, label_names=NAMES) == pytest.approx(
        single_label_metrics(logits, labels, label_names=NAMES)
    )
    logits, labels = _data("regression", rng)
    errors = logits[:, 0] - labels
    assert task_type("regression").metrics(logits, labels) == pytest.approx(
        {"mse": float(np.mean(errors**2)), "mae": float(np.mean(np.abs(errors)))}
    )


def test_a_task_names_its_losses_for_the_model_card():
    from types import SimpleNamespace

    from hf_kd.reporting.card_data import _losses

    args = SimpleNamespace(single_label_distillation_loss="kl", multi_label_distillation_loss="bernoulli_kl")
    assert _losses(args, "multi_label_classification")[0] == {
        "hard": "binary cross-entropy",
        "distill": "bernoulli_kl",
    }
    assert _losses(args, "binary")[0] == {"hard": "cross-entropy", "distill": "kl"}
    assert _losses(args, "regression")[0] == {"hard": "MSE", "distill": "mse"}
    assert set(_losses(args, None)[0]) == {"distill (single-label)", "distill (multi-label)"}  # unknown: both


def test_each_task_s_decisions_are_the_plain_rules():
    from hf_kd.evaluation.thresholds import decided_labels, predicted_labels

    logits = np.array([[2.0, -1.0, 0.5], [-3.0, 0.2, 1.0], [0.0, 0.0, -2.0]])
    probs = 1 / (1 + np.exp(-logits))
    # multi-label: every label whose probability reaches the threshold (one per label too)
    assert predicted_labels(logits, "multi_label_classification", NAMES, 0.6) == [
        [n for n, p in zip(NAMES, row, strict=True) if p >= 0.6] for row in probs
    ]
    cuts = np.array([0.9, 0.5, 0.5])
    labels = np.array([[1, 0, 1], [0, 1, 1], [-100, -100, -100]])  # the unlabeled row is left out
    assert decided_labels(logits, labels, "multi_label_classification", cuts) == (
        (probs[:2] >= cuts).astype(int).tolist(),
        labels[:2].tolist(),
    )
    # single-label: the argmax, whatever the threshold
    assert predicted_labels(logits, "single_label_classification", NAMES, 0.99) == ["alpha", "gamma", "alpha"]
    assert decided_labels(logits, np.array([0, -100, 2]), "single_label_classification") == ([0, 0], [0, 2])
    # binary: the second, positive name when its probability (softmax of two logits) reaches the threshold
    two = logits[:, :2]
    positive = np.exp(two[:, 1]) / np.exp(two).sum(axis=1)
    assert predicted_labels(two, "binary", ["no", "yes"], 0.1) == ["yes" if p >= 0.1 else "no" for p in positive]
    assert decided_labels(two, np.array([1, 0, -100]), "binary", 0.1) == (
        (positive[:2] >= 0.1).astype(int).tolist(),
        [1, 0],
    )
    # regression: the value; no threshold
    assert predicted_labels(logits[:, :1], "regression", []) == logits[:, 0].tolist()
    with pytest.raises(ValueError, match=r"one value per row, got shape \(3, 3\)"):
        predicted_labels(logits, "regression", [])


@pytest.mark.parametrize("task", TASK_TYPES)
def test_the_trainer_s_compute_metrics_is_the_task_type_s_metrics(task):
    from hf_kd.evaluation.metrics import make_compute_metrics

    rng = np.random.default_rng(5)
    logits, labels = _data(task, rng)
    names = NAMES if task != "binary" else ["no", "yes"]
    compute = make_compute_metrics(task, threshold=0.3, label_names=names)
    assert compute((logits, labels)) == task_type(task).metrics(logits, labels, label_names=names, threshold=0.3)
    if task == "regression":
        with pytest.raises(ValueError, match="labels"):
            compute((logits, labels[:-1]))  # one label short: not broadcast, not misaligned
