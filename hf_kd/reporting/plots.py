"""Figures of a distillation run: training curves and per-label F1 of teacher vs student.

The figures are drawn on matplotlib's Agg canvas without touching pyplot's global state; they hold numbers and label
names only, never example text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..constants import IGNORE_INDEX, is_number
from ..evaluation.numeric import metric_keys
from .report import quality_metrics

__all__ = ["label_font", "plot_binary_curves", "plot_per_label_f1", "plot_training_curves"]

_METRIC_PREFIXES = ("eval_", "test_", "predict_")


def _figure(width: float, height: float) -> Any:
    """A matplotlib figure on the Agg canvas, without touching pyplot's global state or backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


_CHARMAPS: dict[str, set[int]] = {}


def _charmap(path: str) -> set[int]:
    if path not in _CHARMAPS:
        from matplotlib.ft2font import FT2Font

        try:
            _CHARMAPS[path] = set(FT2Font(path).get_charmap())
        except (OSError, RuntimeError, ValueError):
            _CHARMAPS[path] = set()
    return _CHARMAPS[path]


def label_font(names: Sequence[str]) -> str | None:
    """
    A font file that has a glyph for every character of `names`: matplotlib's default font when it does (Latin
    names), else the first installed font that does (e.g. a CJK font for Chinese labels), else `None` (the figure
    then numbers its labels, and the report gives the legend).

    Args:
        names (`Sequence[str]`):
            The label names.

    Returns:
        `str` or `None`: The font file's path.
    """
    from matplotlib import font_manager

    needed = {ord(c) for name in names for c in str(name) if not c.isspace()}
    default = font_manager.findfont(font_manager.FontProperties(), fallback_to_default=True)
    if needed <= _charmap(default):
        return default
    for entry in font_manager.fontManager.ttflist:
        # LastResort maps every code point to a box naming its Unicode block: glyphs, but not readable ones.
        if "lastresort" not in Path(entry.fname).name.lower() and needed <= _charmap(entry.fname):
            return entry.fname
    return None


def _series(log_history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    steps, values = [], []
    for entry in log_history:
        if key in entry and is_number(entry[key]) and is_number(entry.get("step")):
            steps.append(float(entry["step"]))
            values.append(float(entry[key]))
    return steps, values


def plot_training_curves(
    log_history: Sequence[Mapping[str, Any]], path: str | Path, metrics: Sequence[str] | None = None
) -> Path:
    """
    Plot the training loss (with its `hard_loss`, `distill_loss` and intermediate parts when logged) and, in a second
    panel when any were logged, the evaluation metrics against the step, from a `Trainer`'s `state.log_history`.

    Args:
        log_history (`Sequence[Mapping[str, Any]]`):
            `trainer.state.log_history`: dicts with a `step` and the logged values.
        path (`str` or `Path`):
            Image file to write (the format follows the extension, e.g. `.png`, `.svg`).
        metrics (`Sequence[str]`, *optional*):
            Evaluation keys to plot in the second panel. Defaults to every numeric `eval_*` key except the loss, the
            runtime/throughput entries and the per-label `eval_f1_*` scores.

    Returns:
        `Path`: The file written.
    """
    train_keys = ("loss", "hard_loss", "distill_loss", "hidden_loss", "attention_loss")
    train_series = {k: _series(log_history, k) for k in train_keys}
    train_series = {k: v for k, v in train_series.items() if v[0]}
    eval_loss = _series(log_history, "eval_loss")
    if metrics is None:
        keys: list[str] = []
        for entry in log_history:
            for key in quality_metrics(entry):
                per_label = key.startswith("eval_f1_")
                if key.startswith("eval_") and key != "eval_loss" and not per_label and key not in keys:
                    keys.append(key)
    else:
        keys = list(metrics)
    eval_series = {k: _series(log_history, k) for k in keys}
    eval_series = {k: v for k, v in eval_series.items() if v[0]}
    if not train_series and not eval_loss[0] and not eval_series:
        raise ValueError("`log_history` holds no training loss and no evaluation metric with a `step`.")

    figure = _figure(11 if eval_series else 6, 4)
    loss_axes, eval_axes = figure.subplots(1, 2) if eval_series else (figure.subplots(), None)
    for key, (steps, values) in train_series.items():
        loss_axes.plot(steps, values, label=key, linewidth=2 if key == "loss" else 1.2)
    if eval_loss[0]:
        loss_axes.plot(*eval_loss, label="eval_loss", linestyle="--", marker="o")
    loss_axes.set(title="Training loss", xlabel="step", ylabel="loss")
    if loss_axes.lines:
        loss_axes.legend(fontsize="small")
    if eval_axes is not None:  # a second panel only when evaluations were logged
        for key, (steps, values) in eval_series.items():
            eval_axes.plot(steps, values, label=key, marker="o")
        eval_axes.set(title="Evaluation metrics", xlabel="step")
        eval_axes.legend(fontsize="small")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    return out


def _per_label_values(metrics: Mapping[str, Any], keys: list[str], side: str) -> list[float]:
    values = []
    for key in keys:
        for prefix in ("", *_METRIC_PREFIXES):
            name = f"{prefix}f1_{key}"
            if name in metrics and is_number(metrics[name]):
                values.append(float(metrics[name]))
                break
        else:
            raise ValueError(f"`{side}_metrics` has no `f1_{key}` entry (with or without an eval_/test_ prefix).")
    return values


def plot_per_label_f1(
    teacher_metrics: Mapping[str, Any],
    student_metrics: Mapping[str, Any],
    label_names: Sequence[str],
    path: str | Path,
) -> Path:
    """
    Grouped horizontal bars of the teacher's and the student's F1 for each label (multi-label) or class (single-label).

    The scores are read from the `f1_<key>` entries that `hf_kd.evaluation.metrics.multilabel_metrics` writes, where
    `<key>` is the label name sanitized as that function does (lower-cased, accents stripped, other characters turned
    into `_`); an `eval_`, `test_` or `predict_` prefix is accepted.

    Args:
        teacher_metrics (`Mapping[str, Any]`):
            The teacher's metrics.
        student_metrics (`Mapping[str, Any]`):
            The student's metrics.
        label_names (`Sequence[str]`):
            Label names, in the order passed to the metric function; they label the bars, drawn with a font that has
            their glyphs ([`label_font`]), or as numbers when no installed font has them.
        path (`str` or `Path`):
            Image file to write.

    Returns:
        `Path`: The file written.
    """
    names = [str(name) for name in label_names]
    if not names:
        raise ValueError("`label_names` is empty.")
    keys = metric_keys(names, len(names))
    teacher = _per_label_values(teacher_metrics, keys, "teacher")
    student = _per_label_values(student_metrics, keys, "student")

    figure = _figure(8, 1.2 + 0.45 * len(names))
    axes = figure.subplots()
    positions = list(range(len(names)))
    height = 0.4
    axes.barh([p - height / 2 for p in positions], teacher, height=height, label="teacher")
    axes.barh([p + height / 2 for p in positions], student, height=height, label="student")
    font = label_font(names)
    if font is None:  # no installed font draws these names: numbers, with the legend in report.md
        axes.set_yticks(positions, labels=[str(i) for i in positions])
        axes.set_ylabel("label number (legend in report.md)")
    else:
        from matplotlib.font_manager import FontProperties

        axes.set_yticks(positions, labels=names, fontproperties=FontProperties(fname=font))
    axes.invert_yaxis()
    axes.set(xlim=(0, 1), xlabel="F1", title="F1 per label (validation)")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    return out


def plot_binary_curves(sides: Mapping[str, tuple[Any, Any, float]], path: str | Path, n_bins: int = 10) -> Path:
    """
    ROC curve, precision-recall curve and reliability diagram of binary classifiers, side by side (e.g. teacher vs
    student), each operating threshold marked.

    Args:
        sides (`Mapping[str, tuple]`):
            Name -> `(probabilities, labels, threshold)`: positive-class probabilities and 0/1 labels (`-100`
            ignored) of one split, and the model's operating threshold.
        path (`str` or `Path`):
            Image file to write.
        n_bins (`int`, *optional*, defaults to 10):
            Confidence bins of the reliability diagram.

    Returns:
        `Path`: The file written.
    """
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    figure = _figure(15, 4.6)
    roc_axes, pr_axes, calibration_axes = figure.subplots(1, 3)
    for index, (name, (probs, labels, threshold)) in enumerate(sides.items()):
        probs, labels = np.asarray(probs, dtype=float).reshape(-1), np.asarray(labels).reshape(-1)
        keep = labels != IGNORE_INDEX
        probs, gold = probs[keep], labels[keep] == 1
        color = f"C{index}"
        fpr, tpr, _ = roc_curve(gold, probs)
        roc_axes.plot(fpr, tpr, color=color, label=f"{name} (AUROC {auc(fpr, tpr):.3f})")
        predicted = probs >= threshold
        sensitivity = (predicted & gold).sum() / max(gold.sum(), 1)
        false_positive_rate = (predicted & ~gold).sum() / max((~gold).sum(), 1)
        roc_axes.plot([false_positive_rate], [sensitivity], "o", color=color)
        precision, recall, _ = precision_recall_curve(gold, probs)
        pr_axes.plot(
            recall, precision, color=color, label=f"{name} (AUPRC {average_precision_score(gold, probs):.3f})"
        )
        ppv = (predicted & gold).sum() / max(predicted.sum(), 1)
        pr_axes.plot([sensitivity], [ppv], "o", color=color)
        observed, predicted_mean = calibration_curve(gold, probs, n_bins=n_bins, strategy="uniform")
        calibration_axes.plot(predicted_mean, observed, "o-", color=color, label=name)
    roc_axes.plot([0, 1], [0, 1], ":", color="grey")
    roc_axes.set(title="ROC (dot: operating threshold)", xlabel="false-positive rate", ylabel="sensitivity")
    prevalence = float(np.mean(gold)) if len(gold) else 0.0
    pr_axes.axhline(prevalence, linestyle=":", color="grey", label=f"prevalence {prevalence:.2f}")
    pr_axes.set(title="Precision-recall", xlabel="sensitivity (recall)", ylabel="PPV (precision)", ylim=(0, 1.02))
    calibration_axes.plot([0, 1], [0, 1], ":", color="grey")
    calibration_axes.set(title="Reliability", xlabel="predicted probability", ylabel="observed positive rate")
    for axes in (roc_axes, pr_axes, calibration_axes):
        axes.legend(fontsize="small", loc="lower left" if axes is pr_axes else "lower right")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    return out
