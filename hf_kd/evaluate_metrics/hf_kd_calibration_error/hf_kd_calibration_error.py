"""Expected calibration error with equal-width confidence bins."""

import datasets
import evaluate

from hf_kd.metrics import expected_calibration_error


class HfKdCalibrationError(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Expected calibration error (hf_kd.metrics.expected_calibration_error).",
            citation="",
            inputs_description="predictions: probabilities; references: labels of the same shape (-100 ignored).",
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("float64")),
                }
            ),
        )

    def _compute(self, predictions, references, n_bins=15):
        return {"ece": expected_calibration_error(predictions, references, n_bins=n_bins)}
