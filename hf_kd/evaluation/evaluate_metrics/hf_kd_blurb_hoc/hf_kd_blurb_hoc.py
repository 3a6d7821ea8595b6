"""BLURB's HoC score: sentence predictions pooled per abstract, micro-F1 over abstract x label cells."""

import evaluate

from hf_kd.evaluation.blurb import blurb_hoc_f1
from hf_kd.evaluation.evaluate_metrics import metric_info


class HfKdBlurbHoc(evaluate.Metric):
    def _info(self):
        return metric_info(
            "BLURB Hallmarks of Cancer micro-F1 at abstract level (hf_kd.evaluation.blurb.blurb_hoc_f1).",
            "predictions: sentence probabilities; references: sentence multi-hot labels.",
        )

    def _compute(self, predictions, references, groups=None, threshold=0.5):
        if groups is None or len(groups) != len(predictions):
            raise ValueError("`groups` (the abstract of each sentence) must have one entry per prediction.")
        return blurb_hoc_f1(predictions, references, groups, threshold=threshold)
