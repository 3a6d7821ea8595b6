"""BLURB's HoC score: sentence predictions pooled per abstract, micro-F1 over abstract x label cells."""

import datasets
import evaluate

from hf_kd.corpora import blurb_hoc_f1


class HfKdBlurbHoc(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="BLURB Hallmarks of Cancer micro-F1 at abstract level (hf_kd.corpora.blurb_hoc_f1).",
            citation="",
            inputs_description="predictions: sentence probabilities; references: sentence multi-hot labels.",
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("float64")),
                }
            ),
        )

    def _compute(self, predictions, references, groups=None, threshold=0.5):
        if groups is None or len(groups) != len(predictions):
            raise ValueError("`groups` (the abstract of each sentence) must have one entry per prediction.")
        return blurb_hoc_f1(predictions, references, groups, threshold=threshold)
