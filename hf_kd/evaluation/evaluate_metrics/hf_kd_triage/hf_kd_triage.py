"""Binary triage metrics: AUROC, AUPRC, Brier, ECE, and sensitivity, specificity, PPV, NPV at a threshold."""

import evaluate

from hf_kd.evaluation.evaluate_metrics import metric_info
from hf_kd.evaluation.metrics import binary_metrics
from hf_kd.evaluation.thresholds import choose_threshold


class HfKdTriage(evaluate.Metric):
    def _info(self):
        return metric_info(
            "Triage metrics of a binary classifier (hf_kd.evaluation.metrics.binary_metrics).",
            "predictions: positive-class probabilities; references: 0/1 (-100 ignored).",
            per_label=False,
        )

    def _compute(self, predictions, references, threshold=0.5):
        chosen = (
            choose_threshold(threshold, predictions, references) if isinstance(threshold, str | dict) else threshold
        )
        return {**binary_metrics(predictions, references, threshold=float(chosen)), "threshold": float(chosen)}
