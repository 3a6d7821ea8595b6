"""Multi-label F1 (micro, macro, per label) at a threshold or a threshold rule, as an `evaluate` metric."""

import evaluate

from hf_kd.evaluation.evaluate_metrics import metric_info
from hf_kd.evaluation.metrics import multilabel_metrics
from hf_kd.evaluation.thresholds import choose_threshold


class HfKdMultilabelF1(evaluate.Metric):
    def _info(self):
        return metric_info(
            "Multi-label micro/macro F1, precision, recall and per-label F1 (hf_kd.evaluation.metrics).",
            "predictions: per-label probabilities; references: multi-hot labels, -100 ignored.",
        )

    def _compute(self, predictions, references, threshold=0.5, label_names=None):
        chosen = (
            choose_threshold(threshold, predictions, references) if isinstance(threshold, str | dict) else threshold
        )
        result = multilabel_metrics(predictions, references, threshold=chosen, label_names=label_names)
        return {**result, "threshold": float(chosen) if isinstance(chosen, int | float) else chosen}
