"""Teacher-student agreement: the share of predictions on which the student agrees with its teacher."""

import datasets
import evaluate

from hf_kd.metrics import agreement


class HfKdAgreement(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Fraction of the student's predictions equal to the teacher's (hf_kd.metrics.agreement).",
            citation="",
            inputs_description="predictions: the student's probabilities (or logits, single-label); references: "
            "the teacher's.",
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("float64")),
                }
            ),
        )

    def _compute(self, predictions, references, problem_type="multi_label_classification"):
        return {"agreement": agreement(predictions, references, problem_type)}
