"""Expected calibration error with equal-width confidence bins."""

import evaluate

from hf_kd.evaluation.evaluate_metrics import metric_info
from hf_kd.evaluation.metrics import expected_calibration_error


class HfKdCalibrationError(evaluate.Metric):
    def _info(self):
        return metric_info(
            "Expected calibration error (hf_kd.evaluation.metrics.expected_calibration_error).",
            "predictions: probabilities; references: labels of the same shape (-100 ignored).",
        )

    def _compute(self, predictions, references, n_bins=15):
        return {"ece": expected_calibration_error(predictions, references, n_bins=n_bins)}
