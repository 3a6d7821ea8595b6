"""Binary triage metrics: AUROC, AUPRC, Brier, ECE, and sensitivity, specificity, PPV, NPV at a threshold."""

import datasets
import evaluate

from hf_kd.metrics import binary_metrics
from hf_kd.thresholds import choose_threshold


class HfKdTriage(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Triage metrics of a binary classifier (hf_kd.metrics.binary_metrics).",
            citation="",
            inputs_description="predictions: positive-class probabilities; references: 0/1 (-100 ignored).",
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, threshold=0.5):
        chosen = (
            choose_threshold(threshold, predictions, references) if isinstance(threshold, str | dict) else threshold
        )
        return {**binary_metrics(predictions, references, threshold=float(chosen)), "threshold": float(chosen)}
