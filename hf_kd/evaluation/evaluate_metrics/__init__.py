"""Our task metrics as `evaluate` modules, loadable offline and combinable with any other `evaluate` metric.

Each folder here is an `evaluate` metric script around a function of `hf_kd.evaluation.metrics` (or
`hf_kd.evaluation.blurb` for BLURB HoC); nothing is fetched from the Hub:

```python
import evaluate
from hf_kd.evaluation.evaluate_metrics import metric_path

f1 = evaluate.load(metric_path("hf_kd_multilabel_f1"))
ece = evaluate.load(metric_path("hf_kd_calibration_error"))
both = evaluate.combine([f1, ece, evaluate.load("path/to/your/metric")])
both.compute(predictions=probabilities, references=multi_hot_labels)
```

- `hf_kd_multilabel_f1`: predictions are per-label probabilities, references multi-hot labels (`-100` ignored);
  `compute(..., threshold=0.5, label_names=None)`, the threshold a number or a rule (`"f1"`, `"prevalence"`,
  `{"sensitivity": s}`);
- `hf_kd_blurb_hoc`: sentence probabilities and labels; `compute(..., groups=..., threshold=0.5)`, `groups` the
  abstract of each sentence;
- `hf_kd_triage`: positive-class probabilities and 0/1 labels; `compute(..., threshold=0.5)` (a number or a rule);
- `hf_kd_agreement`: the student's probabilities (logits for single-label) and the teacher's;
  `compute(..., problem_type=...)`;
- `hf_kd_calibration_error`: probabilities and labels; `compute(..., n_bins=15)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["METRICS", "metric_info", "metric_path"]

METRICS = (
    "hf_kd_multilabel_f1",
    "hf_kd_blurb_hoc",
    "hf_kd_triage",
    "hf_kd_agreement",
    "hf_kd_calibration_error",
)
"""The `evaluate` modules of this folder."""


def metric_path(name: str) -> str:
    """
    The local path of one of our `evaluate` modules, for `evaluate.load`.

    Args:
        name (`str`):
            One of [`METRICS`].

    Returns:
        `str`: The module's folder.

    Raises:
        `ValueError`: When `name` is not one of [`METRICS`].
    """
    if name not in METRICS:
        raise ValueError(f"Unknown hf_kd metric {name!r}; the metrics are {list(METRICS)}.")
    return str(Path(__file__).resolve().parent / name)


def metric_info(description: str, inputs: str, per_label: bool = True) -> Any:
    """
    The `evaluate.MetricInfo` of one of our metrics: float rows of predictions and references (one value per label),
    or one float prediction and one integer reference per example (`per_label=False`).

    Args:
        description (`str`):
            What the metric computes.
        inputs (`str`):
            What its predictions and references are.
        per_label (`bool`, *optional*, defaults to `True`):
            Rows of values (multi-label, probabilities per class) rather than one value per example.

    Returns:
        `evaluate.MetricInfo`: The info.
    """
    import datasets
    import evaluate

    if per_label:
        value = datasets.Sequence(datasets.Value("float64"))
        features = datasets.Features({"predictions": value, "references": value})
    else:
        features = datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("int64")})
    return evaluate.MetricInfo(description=description, citation="", inputs_description=inputs, features=features)
