"""The old path of `hf_kd.pipeline.scoring`, kept so that its imports still work.

The module was renamed because `hf_kd.evaluation` (the metrics package) and `hf_kd.pipeline.evaluation` sat one dot
apart; the pipeline's scoring of a model on a recipe's splits, the gate and `hf-kd evaluate` are in
`hf_kd.pipeline.scoring`. The evaluation *stage* is `hf_kd.pipeline.stages.evaluation`.
"""

from .scoring import (
    QualityGateError,
    apply_gate,
    evaluate_model,
    evaluate_splits,
    headline,
    predict_logits,
    result_summary,
    saved_threshold,
)

__all__ = [
    "QualityGateError",
    "apply_gate",
    "evaluate_model",
    "evaluate_splits",
    "headline",
    "predict_logits",
    "result_summary",
    "saved_threshold",
]
