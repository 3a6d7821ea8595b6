"""Teacher-student agreement: the share of predictions on which the student agrees with its teacher."""

import evaluate

from hf_kd.evaluation.evaluate_metrics import metric_info
from hf_kd.evaluation.metrics import agreement


class HfKdAgreement(evaluate.Metric):
    def _info(self):
        return metric_info(
            "Fraction of the student's predictions equal to the teacher's (hf_kd.evaluation.metrics.agreement).",
            "predictions: the student's probabilities (or logits, single-label); references: the teacher's.",
        )

    def _compute(self, predictions, references, problem_type="multi_label_classification"):
        return {"agreement": agreement(predictions, references, problem_type)}
