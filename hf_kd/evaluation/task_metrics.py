"""The old home of each task's metrics, kept so that its imports still work: they now live in the task module,
`hf_kd.evaluation.tasks` (`metric_names`, `default_metric`, `split_metrics`, `user_metric`). The one `compute_metrics`
factory is `hf_kd.evaluation.metrics.make_compute_metrics`; `trainer_compute_metrics` is its deprecated alias.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from ..constants import has_threshold
from .metrics import make_compute_metrics
from .tasks import default_metric, metric_names, split_metrics, user_metric

__all__ = ["default_metric", "metric_names", "split_metrics", "trainer_compute_metrics", "user_metric"]


def trainer_compute_metrics(task: str, label_names: Sequence[str], threshold: Any, evaluate_metric: Any = None) -> Any:
    """
    Deprecated alias kept for old imports: the one factory is [`~hf_kd.evaluation.metrics.make_compute_metrics`]
    (pass `threshold` only for a task decided at a threshold).

    Args:
        task (`str`):
            The task.
        label_names (`Sequence[str]`):
            The label names.
        threshold (`float`, `str` or `dict`):
            The threshold rule, ignored for a task without an operating threshold.
        evaluate_metric (`evaluate.EvaluationModule`, *optional*):
            The user's `evaluate` metric, computed too.

    Returns:
        `Callable`: For `Trainer(compute_metrics=...)`.
    """
    warnings.warn(
        "`trainer_compute_metrics` is deprecated; use `hf_kd.evaluation.make_compute_metrics`.",
        FutureWarning,
        stacklevel=2,
    )
    chosen = {"threshold": threshold} if has_threshold(task) else {}
    return make_compute_metrics(task, label_names=label_names, evaluate_metric=evaluate_metric, **chosen)
