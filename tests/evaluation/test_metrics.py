"""Tests for `hf_kd.evaluation.metrics`: small arrays checked against scikit-learn or hand-computed values."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from hf_kd.evaluation.blurb import aggregate_by_group, blurb_hoc_f1
from hf_kd.evaluation.metrics import (
    agreement,
    binary_metrics,
    expected_calibration_error,
    make_compute_metrics,
    multilabel_metrics,
    sigmoid,
    single_label_metrics,
    softmax,
)
from hf_kd.evaluation.thresholds import positive_rate_threshold, tune_thresholds


@dataclass
class _EvalPrediction:
    """Duck-typed stand-in for `transformers.EvalPrediction` (importing transformers takes seconds)."""

    predictions: object
    label_ids: object


def _random_multilabel(seed: int = 0, n: int = 40, num_labels: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, num_labels)) < 0.4).astype(int)
    probs = np.clip(0.35 * labels + 0.65 * rng.random((n, num_labels)), 0.0, 1.0)
    return probs, labels


# ------------------------------------------------------------------------------------------------------------------
# sigmoid / softmax
# ------------------------------------------------------------------------------------------------------------------


def test_sigmoid_matches_formula_and_is_stable() -> None:
    x = np.array([-3.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(sigmoid(x), 1.0 / (1.0 + np.exp(-x)), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would raise here
        extreme = sigmoid(np.array([-1000.0, 1000.0]))
    np.testing.assert_array_equal(extreme, [0.0, 1.0])
    assert sigmoid(np.array([1.0], dtype=np.float32)).dtype == np.float32


def test_softmax_matches_formula_and_is_stable() -> None:
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    expected = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax(x), expected, rtol=1e-12)
    np.testing.assert_allclose(softmax(x + 1000.0), expected, rtol=1e-12)  # naive exp would overflow to inf/inf
    np.testing.assert_allclose(softmax(x.T, axis=0), expected.T, rtol=1e-12)


# ------------------------------------------------------------------------------------------------------------------
# multilabel_metrics
# ------------------------------------------------------------------------------------------------------------------


def test_multilabel_metrics_matches_sklearn() -> None:
    probs, labels = _random_multilabel()
    preds = (probs >= 0.5).astype(int)
    metrics = multilabel_metrics(probs, labels)
    assert metrics["micro_f1"] == pytest.approx(f1_score(labels, preds, average="micro", zero_division=0))
    assert metrics["macro_f1"] == pytest.approx(f1_score(labels, preds, average="macro", zero_division=0))
    micro_precision = precision_score(labels, preds, average="micro", zero_division=0)
    assert metrics["micro_precision"] == pytest.approx(micro_precision)
    assert metrics["micro_recall"] == pytest.approx(recall_score(labels, preds, average="micro", zero_division=0))
    per_label = f1_score(labels, preds, average=None, zero_division=0)
    for j in range(labels.shape[1]):
        assert metrics[f"f1_{j}"] == pytest.approx(per_label[j])


def test_multilabel_metrics_per_label_threshold_and_inclusive_comparison() -> None:
    probs, labels = _random_multilabel(seed=1)
    thresholds = np.array([0.3, 0.5, 0.7, 0.9])
    metrics = multilabel_metrics(probs, labels, threshold=thresholds)
    preds = (probs >= thresholds).astype(int)
    assert metrics["micro_f1"] == pytest.approx(f1_score(labels, preds, average="micro", zero_division=0))
    assert metrics["macro_f1"] == pytest.approx(f1_score(labels, preds, average="macro", zero_division=0))
    # A probability equal to the threshold is a positive prediction.
    assert multilabel_metrics([[0.5]], [[1]])["micro_f1"] == 1.0


def test_multilabel_metrics_excludes_unlabeled_rows_and_counts_empty_labels_as_zero() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.1], [0.9, 0.9], [0.8, 0.2]])
    labels = np.array([[1, 0], [0, 0], [-100, -100], [0, 0]])
    metrics = multilabel_metrics(probs, labels)
    # Rows 0, 1, 3 only: label 0 has tp=1, fp=1 -> F1 = 2/3; label 1 has no gold and no predicted positive -> 0.
    assert metrics["f1_0"] == pytest.approx(2 / 3)
    assert metrics["f1_1"] == 0.0
    assert metrics["macro_f1"] == pytest.approx(1 / 3)
    assert metrics["micro_precision"] == pytest.approx(0.5)
    assert metrics["micro_recall"] == pytest.approx(1.0)


def test_multilabel_metrics_label_names_are_sanitized() -> None:
    probs, labels = _random_multilabel(num_labels=3)
    names = ["Sustaining Proliferative-Signaling", "Évading  growth (suppressors)", "!!!"]
    metrics = multilabel_metrics(probs, labels, label_names=names)
    per_label = f1_score(labels, (probs >= 0.5).astype(int), average=None, zero_division=0)
    assert metrics["f1_sustaining_proliferative_signaling"] == pytest.approx(per_label[0])
    assert metrics["f1_evading_growth_suppressors"] == pytest.approx(per_label[1])
    assert metrics["f1_2"] == pytest.approx(per_label[2])  # nothing left after sanitizing -> index
    with pytest.raises(ValueError, match="duplicated"):
        multilabel_metrics(probs, labels, label_names=["A b", "a-B", "c"])
    with pytest.raises(ValueError, match="label_names"):
        multilabel_metrics(probs, labels, label_names=["a", "b"])


def test_multilabel_metrics_rejects_bad_input() -> None:
    probs, labels = _random_multilabel(n=4, num_labels=2)
    nan_probs = probs.copy()
    nan_probs[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"`probs`.*NaN"):
        multilabel_metrics(nan_probs, labels)
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(4, 3\)"):
        multilabel_metrics(probs, np.zeros((4, 3), dtype=int))
    with pytest.raises(ValueError, match=r"`probs`.*\[0, 1\]"):
        multilabel_metrics(probs * 3.0 - 1.0, labels)
    with pytest.raises(ValueError, match="`labels`"):
        multilabel_metrics(probs, labels + 1)
    with pytest.raises(ValueError, match="threshold"):
        multilabel_metrics(probs, labels, threshold=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="threshold"):
        multilabel_metrics(probs, labels, threshold=1.5)
    with pytest.raises(ValueError, match="no labeled"):
        multilabel_metrics(probs, np.full_like(labels, -100))


# ------------------------------------------------------------------------------------------------------------------
# tune_thresholds
# ------------------------------------------------------------------------------------------------------------------


def test_tune_thresholds_global_hand_computed() -> None:
    # t <= 0.30: F1 = 6/7; (0.30, 0.55]: 2/3; (0.55, 0.62]: 4/5; (0.62, 0.90]: 1/2 -> best region t <= 0.3,
    # and 0.3 is its grid value closest to 0.5.
    probs = np.array([[0.3], [0.55], [0.62], [0.9]])
    labels = np.array([[1], [0], [1], [1]])
    best = tune_thresholds(probs, labels)
    assert isinstance(best, float)
    assert best == pytest.approx(0.3)


def test_tune_thresholds_per_label_and_tie_breaks() -> None:
    probs = np.c_[[0.3, 0.55, 0.62, 0.9], [0.1, 0.2, 0.8, 0.7], [0.1, 0.6, 0.2, 0.3]]
    labels = np.c_[[1, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]]
    best = tune_thresholds(probs, labels, per_label=True)
    # Label 1 is perfect for any t in (0.2, 0.7]: the tie goes to 0.5. Label 2 has no positive: F1 = 0 everywhere.
    np.testing.assert_allclose(best, [0.3, 0.5, 0.5])
    # Equally close to 0.5 -> the lower threshold wins; duplicates in the grid are harmless.
    assert tune_thresholds([0.2, 0.8], [0, 1], grid=[0.6, 0.4, 0.6]) == pytest.approx(0.4)


def test_tune_thresholds_global_beats_every_grid_value() -> None:
    probs, labels = _random_multilabel(seed=3, n=60)
    best = tune_thresholds(probs, labels)
    grid = np.round(np.arange(1, 20) * 0.05, 2)
    scores = [f1_score(labels, (probs >= t).astype(int), average="micro", zero_division=0) for t in grid]
    assert f1_score(labels, (probs >= best).astype(int), average="micro", zero_division=0) == pytest.approx(
        max(scores)
    )
    with pytest.raises(ValueError, match="grid"):
        tune_thresholds(probs, labels, grid=[0.5, 1.2])


# ------------------------------------------------------------------------------------------------------------------
# aggregate_by_group / blurb_hoc_f1
# ------------------------------------------------------------------------------------------------------------------


def test_aggregate_by_group_first_seen_order_and_reductions() -> None:
    values = np.array([[1, 0], [0, 0], [0, 1], [5, 2], [2, 2]])
    groups = ["b", "a", "b", "c", "a"]
    unique, maxed = aggregate_by_group(values, groups)
    assert unique.tolist() == ["b", "a", "c"]
    np.testing.assert_array_equal(maxed, [[1, 1], [2, 2], [5, 2]])
    np.testing.assert_array_equal(aggregate_by_group(values, groups, reduce="min")[1], [[0, 0], [0, 0], [5, 2]])
    np.testing.assert_array_equal(aggregate_by_group(values, groups, reduce="sum")[1], [[1, 1], [2, 2], [5, 2]])
    np.testing.assert_allclose(aggregate_by_group(values, groups, reduce="mean")[1], [[0.5, 0.5], [1, 1], [5, 2]])
    np.testing.assert_array_equal(
        aggregate_by_group(values > 1, groups, reduce="any")[1], [[False, False], [True, True], [True, True]]
    )
    with pytest.raises(ValueError, match="reduce"):
        aggregate_by_group(values, groups, reduce="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(5, 2\).*\(4,\)"):
        aggregate_by_group(values, groups[:4])


def test_blurb_hoc_f1_unions_sentences_per_document() -> None:
    groups = np.array([101, 101, 202, 202, 303])
    probs = np.array(
        [[0.9, 0.1, 0.2], [0.1, 0.2, 0.7], [0.2, 0.6, 0.1], [0.3, 0.1, 0.1], [0.1, 0.1, 0.1]],
    )
    labels = np.array([[0, 0, 0], [1, 0, 1], [0, 0, 0], [0, 1, 0], [0, 0, 0]])
    # Sentence-level micro F1 is 1/3, but the document-level label sets match exactly.
    assert multilabel_metrics(probs, labels)["micro_f1"] == pytest.approx(1 / 3)
    result = blurb_hoc_f1(probs, labels, groups)
    assert result["micro_f1"] == 1.0
    assert result["n_documents"] == 3

    # Now document 303 gets a false positive (label 0) and document 202 a missed gold label (label 2).
    probs[4, 0] = 0.8
    labels[2, 2] = 1
    result = blurb_hoc_f1(probs, labels, groups)
    doc_gold = np.array([[1, 0, 1], [0, 1, 1], [0, 0, 0]])
    doc_pred = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0]])
    assert result["micro_precision"] == pytest.approx(0.75)
    assert result["micro_recall"] == pytest.approx(0.75)
    assert result["micro_f1"] == pytest.approx(f1_score(doc_gold, doc_pred, average="micro"))
    assert result["macro_f1"] == pytest.approx(f1_score(doc_gold, doc_pred, average="macro", zero_division=0))
    # Hard 0/1 predictions give the same result as the probabilities they come from.
    assert blurb_hoc_f1((probs >= 0.5).astype(int), labels, groups) == result


def test_blurb_hoc_f1_ignores_unlabeled_sentences() -> None:
    groups = ["d1", "d1", "d2"]
    probs = np.array([[0.9, 0.9], [0.1, 0.1], [0.9, 0.1]])
    labels = np.array([[-100, -100], [0, 1], [-100, -100]])
    result = blurb_hoc_f1(probs, labels, groups)
    # Only sentence 2 counts: d1 predicts nothing, gold {label 1}; d2 is dropped.
    assert result["n_documents"] == 1
    assert result["micro_recall"] == 0.0
    assert result["micro_precision"] == 0.0
    with pytest.raises(ValueError, match="groups"):
        blurb_hoc_f1(probs, labels, groups[:2])


# ------------------------------------------------------------------------------------------------------------------
# single_label_metrics / binary_metrics / positive_rate_threshold
# ------------------------------------------------------------------------------------------------------------------


def test_single_label_metrics_matches_sklearn_and_ignores_minus_100() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(30, 3))
    labels = rng.integers(0, 3, size=30)
    labels[[0, 5, 9]] = -100
    keep = labels != -100
    preds = logits.argmax(axis=1)
    metrics = single_label_metrics(logits, labels)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(labels[keep], preds[keep]))
    assert metrics["macro_f1"] == pytest.approx(f1_score(labels[keep], preds[keep], average="macro"))
    assert single_label_metrics(softmax(logits), labels) == metrics
    with pytest.raises(ValueError, match="`labels`"):
        single_label_metrics(logits, np.full(30, 3))
    with pytest.raises(ValueError, match=r"\(30,\)"):
        single_label_metrics(logits, labels[:10])


def test_binary_metrics_matches_sklearn() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, size=50)
    scores = np.clip(0.3 * labels + 0.7 * rng.random(50), 0.0, 1.0)
    masked_labels = labels.copy()
    masked_labels[:5] = -100
    metrics = binary_metrics(scores, masked_labels, threshold=0.4)
    y, s = labels[5:], scores[5:]
    preds = (s >= 0.4).astype(int)
    assert metrics["auroc"] == pytest.approx(roc_auc_score(y, s))
    assert metrics["auprc"] == pytest.approx(average_precision_score(y, s))
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, s))
    assert metrics["f1"] == pytest.approx(f1_score(y, preds))
    assert metrics["ppv"] == pytest.approx(precision_score(y, preds))
    assert metrics["sensitivity"] == pytest.approx(recall_score(y, preds))
    assert metrics["specificity"] == pytest.approx(recall_score(1 - y, 1 - preds))
    assert metrics["npv"] == pytest.approx(precision_score(1 - y, 1 - preds))
    assert metrics["prevalence"] == pytest.approx(y.mean())
    assert metrics["ece"] == pytest.approx(expected_calibration_error(s, y))
    assert metrics["threshold"] == 0.4
    # Python lists give what arrays give.
    assert binary_metrics(list(scores), list(masked_labels), threshold=0.4) == pytest.approx(metrics, nan_ok=True)


def test_binary_metrics_single_class_gives_nan_ranking_metrics() -> None:
    metrics = binary_metrics([0.1, 0.8], [1, 1])
    assert math.isnan(metrics["auroc"]) and math.isnan(metrics["auprc"])
    assert metrics["brier"] == pytest.approx((0.81 + 0.04) / 2)
    assert metrics["sensitivity"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"`scores`.*NaN"):
        binary_metrics([np.nan, 0.3], [0, 1])


def test_positive_rate_threshold() -> None:
    assert positive_rate_threshold([1, 0, 0, 1, -100, 0]) == pytest.approx(2 / 5)
    assert positive_rate_threshold([[1, 0], [0, 0], [-100, -100]]) == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="single class"):
        positive_rate_threshold([0, 0, 0])
    with pytest.raises(ValueError, match="train_labels"):
        positive_rate_threshold([0, 2, 1])


# ------------------------------------------------------------------------------------------------------------------
# agreement / expected_calibration_error
# ------------------------------------------------------------------------------------------------------------------


def test_agreement() -> None:
    student = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    teacher = np.array([[0.8, 0.2], [0.7, 0.3], [0.1, 0.9]])
    assert agreement(student, teacher, "single_label_classification") == pytest.approx(1 / 3)
    # Cells at 0.5: (pos, neg) vs (pos, pos) and (pos, neg) vs (neg, neg) -> 2 of 4 cells agree.
    ml_student = np.array([[0.6, 0.4], [0.5, 0.1]])
    ml_teacher = np.array([[0.7, 0.6], [0.4, 0.2]])
    assert agreement(ml_student, ml_teacher, "multi_label_classification") == pytest.approx(0.5)
    assert agreement([0.2, 0.7, 0.5], [0.4, 0.3, 0.9], "binary") == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="problem_type"):
        agreement(student, teacher, "regression")
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 2\)"):
        agreement(student, ml_teacher, "multi_label_classification")


def test_expected_calibration_error_single_label_hand_computed() -> None:
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 0])
    # 5 bins: (0.8, 1] holds conf 0.9 (correct); (0.6, 0.8] holds 0.7, 0.7 (1 of 2 correct); (0.4, 0.6] holds 0.55
    # (wrong): ECE = (|1 - 0.9| + 2 * |0.5 - 0.7| + |0 - 0.55|) / 4.
    assert expected_calibration_error(probs, labels, n_bins=5) == pytest.approx(1.05 / 4)
    # One bin: |mean accuracy - mean confidence| = |0.5 - 0.7125|.
    assert expected_calibration_error(probs, labels, n_bins=1) == pytest.approx(0.2125)
    # An ignored example changes nothing.
    extended = np.vstack([probs, [[0.5, 0.5]]])
    assert expected_calibration_error(extended, np.r_[labels, -100], n_bins=5) == pytest.approx(1.05 / 4)
    with pytest.raises(ValueError, match="sum to 1"):
        expected_calibration_error(probs * 0.5, labels)


def test_expected_calibration_error_binary_cells_hand_computed() -> None:
    probs = np.array([0.9, 0.25, 0.65, 0.15])
    labels = np.array([1, 1, 0, 0])
    # Confidences max(p, 1 - p) = 0.9 (correct), 0.75 (wrong), 0.65 (wrong), 0.85 (correct): bin (0.8, 1] gives
    # 2 * |1 - 0.875| and bin (0.6, 0.8] gives 2 * |0 - 0.7|, so ECE = 1.65 / 4.
    assert expected_calibration_error(probs, labels, n_bins=5) == pytest.approx(0.4125)
    # Multi-label: the same cells as a (2, 2) matrix, plus an ignored cell.
    ml_probs = np.c_[probs.reshape(2, 2), [0.99, 0.01]]
    ml_labels = np.c_[labels.reshape(2, 2), [-100, -100]]
    assert expected_calibration_error(ml_probs, ml_labels, n_bins=5) == pytest.approx(0.4125)
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(probs, labels, n_bins=0)


# ------------------------------------------------------------------------------------------------------------------
# make_compute_metrics
# ------------------------------------------------------------------------------------------------------------------


def test_make_compute_metrics_multi_label_takes_first_tuple_element() -> None:
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(12, 3))
    labels = (rng.random((12, 3)) < 0.5).astype(np.float32)
    compute = make_compute_metrics("multi_label_classification", threshold=0.4, label_names=["x", "y", "z"])
    result = compute(_EvalPrediction(predictions=(logits, rng.normal(size=(12, 5))), label_ids=labels))
    expected = multilabel_metrics(sigmoid(logits), labels, threshold=0.4, label_names=["x", "y", "z"])
    assert result == {**expected, "threshold": 0.4}  # the threshold used is reported, fixed or chosen by a rule
    assert set(result) >= {"f1_x", "f1_y", "f1_z"}


def test_make_compute_metrics_single_label_and_binary_heads() -> None:
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(20, 2))
    labels = rng.integers(0, 2, size=20)
    labels[labels.argmax()], labels[labels.argmin()] = 1, 0  # both classes present
    single = make_compute_metrics("single_label_classification")(_EvalPrediction(logits, labels))
    assert single == single_label_metrics(logits, labels)

    binary = make_compute_metrics("binary", threshold=0.3)
    two_logit = binary(_EvalPrediction(logits, labels))
    expected = binary_metrics(sigmoid(logits[:, 1] - logits[:, 0]), labels, threshold=0.3)
    assert two_logit == pytest.approx(expected)
    one_logit = binary((logits[:, 1:], labels))  # a plain (predictions, label_ids) pair works too
    assert one_logit == pytest.approx(binary_metrics(sigmoid(logits[:, 1]), labels, threshold=0.3))


def test_trainer_compute_metrics_is_a_deprecated_alias_of_the_one_factory() -> None:
    from hf_kd.evaluation.task_metrics import trainer_compute_metrics

    rng = np.random.default_rng(8)
    logits, labels = rng.normal(size=(16, 3)), rng.integers(0, 3, size=16)
    with pytest.warns(FutureWarning, match="make_compute_metrics"):
        old = trainer_compute_metrics("single_label_classification", ["a", "b", "c"], "f1")  # the rule is not applied
    new = make_compute_metrics("single_label_classification", label_names=["a", "b", "c"])
    assert old((logits, labels)) == new((logits, labels))
    multi = (rng.normal(size=(16, 3)), (rng.random((16, 3)) < 0.4).astype(np.float32))
    with pytest.warns(FutureWarning):
        old_multi = trainer_compute_metrics("multi_label_classification", ["a", "b", "c"], "f1")(multi)
    assert old_multi == make_compute_metrics("multi_label_classification", "f1", ["a", "b", "c"])(multi)


def test_make_compute_metrics_regression_and_bad_arguments() -> None:
    compute = make_compute_metrics("regression")
    result = compute(_EvalPrediction(np.array([[1.0], [2.0], [3.0]]), np.array([1.5, 2.0, 5.0])))
    assert result["mse"] == pytest.approx((0.25 + 0.0 + 4.0) / 3)
    assert result["mae"] == pytest.approx(2.5 / 3)
    with pytest.raises(ValueError, match="problem_type"):
        make_compute_metrics("token_classification")
    with pytest.raises(ValueError, match="threshold"):
        make_compute_metrics("binary", threshold=[0.5, 0.5])
    with pytest.raises(ValueError, match="num_classes"):
        make_compute_metrics("single_label_classification")(_EvalPrediction(np.zeros((3, 1)), np.zeros(3)))
    with pytest.raises(ValueError, match=r"`predictions`.*NaN"):
        make_compute_metrics("multi_label_classification")(_EvalPrediction(np.full((2, 2), np.nan), np.zeros((2, 2))))


def test_compute_metrics_tune_reports_the_f1_at_the_tuned_threshold() -> None:

    rng = np.random.default_rng(0)
    labels = (rng.random((40, 3)) < 0.2).astype(float)
    logits = rng.normal(size=(40, 3)) + 1.5 * labels - 2.0  # informative but badly calibrated: 0.5 is a poor cut
    out = make_compute_metrics("multi_label_classification", threshold="f1")((logits, labels))
    best = float(tune_thresholds(sigmoid(logits), labels))
    assert out["threshold"] == best and best != 0.5
    assert out["micro_f1"] == multilabel_metrics(sigmoid(logits), labels, threshold=best)["micro_f1"]
    at_half = make_compute_metrics("multi_label_classification")((logits, labels))["micro_f1"]
    assert out["micro_f1"] > at_half
    with pytest.raises(ValueError, match="'tune'.*'f1'"):
        make_compute_metrics("binary", threshold="tune")
    with pytest.raises(ValueError, match="multi-label and binary tasks only"):
        make_compute_metrics("single_label_classification", threshold="f1")
