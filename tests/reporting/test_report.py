"""Teacher-vs-student report: ratios, table, files, latency, size on disk and plots, with tiny offline models."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import tiny_bert
from safetensors.torch import save_file

from hf_kd.evaluation import model_stats
from hf_kd.evaluation.model_stats import measure_latency, model_size, time_batch
from hf_kd.reporting import plots as plots_module
from hf_kd.reporting.plots import plot_per_label_f1, plot_training_curves
from hf_kd.reporting.report import (
    build_report,
    format_table,
    print_report,
    write_report,
)


def latency_of(**ms_per_example: float) -> dict:
    """A hand-made `measure_latency`-shaped result: `latency_of(b1=10.0, b32=3.0)`."""
    return {
        "device": "cpu",
        "num_threads": 4,
        "seq_len": 128,
        "n_runs": 5,
        "per_batch_size": {
            key[1:]: {"batch_size": int(key[1:]), "ms_per_example": value} for key, value in ms_per_example.items()
        },
    }


@pytest.fixture
def hand_report() -> dict:
    teacher = {
        "metrics": {"micro_f1": 0.8, "macro_f1": 0.5, "accuracy": 0.9, "eval_runtime": 12.0, "epoch": 3.0},
        "parameters": 100_000_000,
        "size_mb": 400.0,
        "latency": latency_of(b1=10.0, b32=3.0),
    }
    student = {
        "metrics": {"micro_f1": 0.6, "macro_f1": 0.25, "only_student": 0.1, "note": "not a number"},
        "parameters": 25_000_000,
        "size_mb": 50.0,
        "latency": latency_of(b1=2.5, b32=0.5),
    }
    return build_report(teacher, student, extra={"task": "hoc"})


# ----------------------------------------------------------------------------- ratios


def test_ratios_on_hand_made_numbers(hand_report):
    ratios = hand_report["ratios"]
    assert ratios["metrics"] == pytest.approx({"micro_f1": 0.75, "macro_f1": 0.5})
    assert ratios["parameters"] == pytest.approx(0.25)
    assert ratios["size"] == pytest.approx(0.125)
    # speed-up = teacher latency / student latency, per batch size
    assert ratios["speedup"] == pytest.approx({"1": 4.0, "32": 6.0})
    # bookkeeping and non-numeric entries are dropped, each side's own metrics kept
    assert set(hand_report["teacher"]["metrics"]) == {"micro_f1", "macro_f1", "accuracy"}
    assert set(hand_report["student"]["metrics"]) == {"micro_f1", "macro_f1", "only_student"}
    assert hand_report["extra"] == {"task": "hoc"}


def test_missing_or_zero_denominators_give_none():
    report = build_report(
        {"metrics": {"f1": 0.0, "auroc": float("nan")}, "latency": latency_of(b1=1.0)},
        {"metrics": {"f1": 0.3, "auroc": 0.7}, "parameters": 10, "latency": latency_of(b8=1.0)},
    )
    assert report["ratios"]["metrics"] == {"f1": None, "auroc": None}
    assert report["ratios"]["parameters"] is None and report["ratios"]["size"] is None
    assert report["ratios"]["speedup"] == {}


def test_bad_sides_are_rejected():
    with pytest.raises(TypeError, match="teacher"):
        build_report([0.5], {"metrics": {}})
    with pytest.raises(TypeError, match=r"student\['parameters'\]"):
        build_report({"metrics": {}}, {"metrics": {}, "parameters": "many"})


# ----------------------------------------------------------------------------- table and files


def _rows(table: str) -> dict[str, list[str]]:
    rows = {}
    for line in table.splitlines():
        if line.startswith("| ") and not line.startswith("| |"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_format_table_rows(hand_report):
    rows = _rows(format_table(hand_report))
    assert rows["micro_f1"] == ["0.8000", "0.6000", "0.750"]
    assert rows["accuracy"] == ["0.9000", "–", "–"]
    assert rows["only_student"] == ["–", "0.1000", "–"]
    assert rows["Parameters"] == ["100.00M", "25.00M", "0.250"]
    assert rows["Size on disk (MB)"] == ["400.0", "50.0", "0.125"]
    assert rows["Latency, batch 1 (ms/example)"] == ["10.00", "2.50", "0.250"]
    assert rows["Latency, batch 32 (ms/example)"] == ["3.00", "0.50", "0.167"]
    assert rows["Speed-up, batch 1 (teacher / student latency)"][-1] == "4.00×"
    assert rows["Speed-up, batch 32 (teacher / student latency)"][-1] == "6.00×"
    assert "eval_runtime" not in rows and "epoch" not in rows
    # batch 1 comes before batch 32 (numeric, not string order)
    keys = list(rows)
    assert keys.index("Latency, batch 1 (ms/example)") < keys.index("Latency, batch 32 (ms/example)")


def test_write_report_round_trips(hand_report, tmp_path):
    hand_report["student"]["metrics"]["auroc"] = float("nan")
    paths = write_report(hand_report, tmp_path / "out")
    assert paths == {"json": tmp_path / "out" / "report.json", "markdown": tmp_path / "out" / "report.md"}
    text = paths["json"].read_text()
    assert "NaN" not in text  # strict JSON
    loaded = json.loads(text)
    assert loaded["student"]["metrics"]["auroc"] is None
    assert loaded["ratios"]["speedup"] == pytest.approx({"1": 4.0, "32": 6.0})
    assert loaded["extra"] == {"task": "hoc"}
    # The markdown holds the table, which is the same whether built from the report or from its JSON.
    assert paths["markdown"].read_text().endswith(format_table(hand_report))
    assert "| auroc | – | – | – |" in format_table(hand_report)
    assert format_table(loaded) == format_table(hand_report)


def test_print_report(hand_report, capsys):
    print_report(hand_report)
    assert format_table(hand_report) in capsys.readouterr().out


# ----------------------------------------------------------------------------- latency


def test_latency_keys_and_positive_numbers(tokenizer):
    model = tiny_bert()
    model.train()
    seen = []

    def hook(module, args, kwargs):
        seen.append(
            {
                "shape": tuple(kwargs["input_ids"].shape),
                "keys": sorted(kwargs),
                "ids": kwargs["input_ids"].clone(),
                "inference": torch.is_inference_mode_enabled(),
                "training": module.training,
            }
        )

    model.register_forward_pre_hook(hook, with_kwargs=True)
    threads = torch.get_num_threads()
    result = measure_latency(model, tokenizer, batch_sizes=(1, 4), seq_len=128, n_warmup=1, n_runs=2, num_threads=1)

    assert result["num_threads"] == 1 and torch.get_num_threads() == threads
    assert result["seq_len"] == 64  # clipped to tiny_bert's max_position_embeddings
    assert result["inputs"] == "synthetic token ids" and result["device"] == "cpu"
    assert set(result["per_batch_size"]) == {"1", "4"}
    for size, entry in result["per_batch_size"].items():
        assert entry["batch_size"] == int(size)
        assert len(entry["runs_ms"]) == 2 and all(r > 0 for r in entry["runs_ms"])
        assert entry["ms_per_batch"] > 0 and entry["examples_per_s"] > 0
        assert entry["ms_per_example"] == pytest.approx(entry["ms_per_batch"] / int(size))
        assert entry["examples_per_s"] == pytest.approx(1000.0 * int(size) / entry["ms_per_batch"])

    assert [s["shape"] for s in seen] == [(1, 64)] * 3 + [(4, 64)] * 3  # warm-up + timed runs
    assert all(s["inference"] and not s["training"] for s in seen)
    assert seen[0]["keys"] == ["attention_mask", "input_ids", "token_type_ids"]
    ids = seen[-1]["ids"]
    assert (ids[:, 0] == tokenizer.cls_token_id).all() and (ids[:, -1] == tokenizer.sep_token_id).all()
    inner = ids[:, 1:-1]
    assert inner.min() > max(tokenizer.all_special_ids) and inner.max() < len(tokenizer)
    assert model.training  # mode restored


def test_latency_from_example_inputs_passes_only_their_keys():
    model = tiny_bert()
    keys = []
    model.register_forward_pre_hook(lambda m, a, kw: keys.append(sorted(kw)), with_kwargs=True)
    result = measure_latency(model, {"input_ids": [[2, 7, 3]]}, batch_sizes=(2,), seq_len=8, n_warmup=0, n_runs=1)
    assert keys == [["input_ids"]]
    assert result["seq_len"] == 8 and set(result["per_batch_size"]) == {"2"}


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"batch_sizes": ()}, "batch_sizes"), ({"batch_sizes": (0,)}, "batch_sizes"), ({"n_runs": 0}, "n_runs")],
)
def test_latency_rejects_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        measure_latency(tiny_bert(), None, **kwargs)


# ----------------------------------------------------------------------------- size


def test_size_on_disk_equals_safetensors_file(tmp_path):
    model = tiny_bert()
    model.save_pretrained(tmp_path / "saved")
    file = tmp_path / "saved" / "model.safetensors"
    # a checkpoint's projections file is not part of the student
    save_file({"w": torch.zeros(100, 100)}, str(tmp_path / "saved" / "hf_kd_projections.safetensors"))

    from_dir = model_size(tmp_path / "saved")
    assert from_dir["size_bytes"] == file.stat().st_size
    assert from_dir["size_mb"] == pytest.approx(file.stat().st_size / 1e6)
    assert from_dir["parameters"] == model.num_parameters()

    from_model = model_size(model)
    assert from_model == from_dir

    with pytest.raises(ValueError, match="safetensors"):
        model_size(tmp_path)


def test_size_of_plain_module():
    module = torch.nn.Linear(10, 5)
    size = model_size(module)
    assert size["parameters"] == 55
    # float32 data plus a small header
    assert 55 * 4 < size["size_bytes"] < 55 * 4 + 1024


# ----------------------------------------------------------------------------- plots


@pytest.fixture
def captured_figures(monkeypatch):
    figures = []
    original = plots_module._figure

    def capture(*args):
        figure = original(*args)
        figures.append(figure)
        return figure

    monkeypatch.setattr(plots_module, "_figure", capture)
    return figures


def test_training_curves(tmp_path, captured_figures):
    history = [
        {"loss": 1.0, "hard_loss": 0.8, "distill_loss": 1.2, "step": 1},
        {"loss": 0.7, "hard_loss": 0.6, "distill_loss": 0.8, "step": 2},
        {"eval_loss": 0.9, "eval_micro_f1": 0.4, "eval_f1_a": 0.3, "eval_runtime": 1.0, "step": 2},
        {"train_runtime": 3.0, "step": 2},
    ]
    path = plot_training_curves(history, tmp_path / "plots" / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loss_axes, eval_axes = captured_figures[0].axes
    assert [line.get_label() for line in loss_axes.lines] == ["loss", "hard_loss", "distill_loss", "eval_loss"]
    assert list(loss_axes.lines[1].get_xdata()) == [1.0, 2.0] and list(loss_axes.lines[1].get_ydata()) == [0.8, 0.6]
    assert [line.get_label() for line in eval_axes.lines] == ["eval_micro_f1"]

    with pytest.raises(ValueError, match="log_history"):
        plot_training_curves([{"train_runtime": 3.0, "step": 2}], tmp_path / "empty.png")


def test_per_label_f1_reads_sanitized_keys(tmp_path, captured_figures):
    names = ["Sustaining proliferative signaling", "Évading growth-suppressors"]
    teacher = {"f1_sustaining_proliferative_signaling": 0.9, "f1_evading_growth_suppressors": 0.7}
    student = {"eval_f1_sustaining_proliferative_signaling": 0.8, "eval_f1_evading_growth_suppressors": 0.5}
    path = plot_per_label_f1(teacher, student, names, tmp_path / "f1.png")
    assert path.stat().st_size > 0
    axes = captured_figures[0].axes[0]
    widths = [patch.get_width() for patch in axes.patches]
    assert widths == pytest.approx([0.9, 0.7, 0.8, 0.5])
    assert [t.get_text() for t in axes.get_yticklabels()] == names

    with pytest.raises(ValueError, match="student_metrics.*f1_evading_growth_suppressors"):
        plot_per_label_f1(teacher, {"f1_sustaining_proliferative_signaling": 0.8}, names, tmp_path / "x.png")


def test_latency_numbers_are_finite_in_report(tokenizer):
    """A report built from real measurements has finite positive speed-ups at every timed batch size."""
    teacher, student = tiny_bert(layers=2), tiny_bert(layers=1, hidden_size=16)
    kwargs = {"batch_sizes": (1, 2), "seq_len": 16, "n_warmup": 0, "n_runs": 1}
    report = build_report(
        {"metrics": {}, **model_size(teacher), "latency": measure_latency(teacher, tokenizer, **kwargs)},
        {"metrics": {}, **model_size(student), "latency": measure_latency(student, tokenizer, **kwargs)},
    )
    assert set(report["ratios"]["speedup"]) == {"1", "2"}
    assert all(math.isfinite(v) and v > 0 for v in report["ratios"]["speedup"].values())
    assert 0 < report["ratios"]["parameters"] < 1 and 0 < report["ratios"]["size"] < 1


def test_time_batch_skips_warmup_and_reports_the_median_of_the_timed_runs(monkeypatch):
    clock = [0.0]
    durations = iter([100.0, 100.0, 1.0, 3.0, 2.0])  # two warm-up calls (slow), then three timed ones
    events: list[str] = []

    def call():
        events.append("call")
        clock[0] += next(durations)

    monkeypatch.setattr(model_stats.time, "perf_counter", lambda: clock[0])
    result = time_batch(call, batch_size=4, n_warmup=2, n_runs=3, synchronize=lambda: events.append("sync"))
    assert result["runs_ms"] == [1000.0, 3000.0, 2000.0]
    assert result["ms_per_batch"] == 2000.0 and result["ms_per_example"] == 500.0
    assert result["examples_per_s"] == 2.0
    assert events == ["sync", "call", "sync"] * 5  # synchronized around every call, warm-up included


def test_a_plot_failure_is_logged_with_its_message(tmp_path, monkeypatch, caplog):
    from types import SimpleNamespace

    from hf_kd.pipeline import run_report

    def failing(*args, **kwargs):
        raise ValueError("Axis limits cannot be NaN or Inf")

    monkeypatch.setattr(plots_module, "plot_per_label_f1", failing)
    run = SimpleNamespace(validation_split="validation", root=tmp_path, task="multi_label_classification")
    run.label_names = ["a", "b"]
    metrics = {"validation": {"f1_a": 0.5, "f1_b": 0.2}}
    assert run_report._plots(run, metrics, metrics, tmp_path) == []
    assert "Could not write the plots: ValueError: Axis limits cannot be NaN or Inf" in caplog.text


def test_labels_no_installed_font_draws_are_numbered_with_a_legend_in_the_report(tmp_path, captured_figures):
    from hf_kd.reporting.plots import label_font

    names = ["胸痛", "发热"]
    assert label_font(["Sustaining proliferative signaling"]) is not None  # Latin: the default font
    assert label_font(names) is None  # no CJK font on these machines (LastResort's boxes do not count)
    from hf_kd.evaluation.numeric import metric_keys

    keys = metric_keys(names, 2)
    teacher = {f"f1_{k}": 0.9 for k in keys}
    student = {f"f1_{k}": 0.8 for k in keys}
    plot_per_label_f1(teacher, student, names, tmp_path / "f1.png")
    axes = captured_figures[0].axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["0", "1"]
    report = build_report({"metrics": {"a": 1.0}}, {"metrics": {"a": 0.9}}, extra={"label_legend": names})
    table = format_table(report)
    assert "| 0 | 胸痛 |" in table and "| 1 | 发热 |" in table


def test_a_font_that_draws_the_labels_is_used(tmp_path, captured_figures, monkeypatch):
    names = ["胸痛", "发热"]
    default = plots_module.label_font(["a"])
    monkeypatch.setattr(plots_module, "label_font", lambda n: default)  # as on a machine with a CJK font
    from hf_kd.evaluation.numeric import metric_keys

    keys = metric_keys(names, 2)
    plot_per_label_f1({f"f1_{k}": 0.9 for k in keys}, {f"f1_{k}": 0.8 for k in keys}, names, tmp_path / "f1.png")
    assert [t.get_text() for t in captured_figures[0].axes[0].get_yticklabels()] == names


def test_report_shows_latency_at_the_data_length_and_the_unknown_token_rates():
    teacher = {"metrics": {"a": 1.0}, "latency": latency_of(b32=3.0)}
    student = {"metrics": {"a": 0.9}, "latency": latency_of(b32=1.0)}
    teacher["latency_typical"] = {**latency_of(b32=1.5), "seq_len": 24}
    student["latency_typical"] = {**latency_of(b32=0.3), "seq_len": 24}
    rates = {"teacher": {"tokenizer": "t", "train": 0.348, "transfer set": None}}
    report = build_report(teacher, student, extra={"unknown_token_rate": rates})
    rows = _rows(format_table(report))
    assert rows["Latency at 24 tokens, batch 32 (ms/example)"] == ["1.50", "0.30", "0.200"]
    assert rows["Latency, batch 32 (ms/example)"] == ["3.00", "1.00", "0.333"]
    assert "Unknown-token rate (teacher tokenizer: train 34.8 %)" in format_table(report)


def test_timings_name_the_cpu_and_its_instruction_sets(tokenizer, monkeypatch, tmp_path):
    import builtins

    from hf_kd.evaluation import model_stats

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse avx2 avx512f avx512_vnni amx_int8\n"
        "processor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse avx2 avx512f avx512_vnni amx_int8\n"
    )
    real_open = builtins.open
    monkeypatch.setattr(
        builtins, "open", lambda f, *a, **k: real_open(cpuinfo if f == "/proc/cpuinfo" else f, *a, **k)
    )
    cpu = model_stats.cpu_description()
    assert cpu["model"] == "Test CPU 9000" and cpu["features"] == ["avx2", "avx512f", "avx512_vnni", "amx_int8"]
    latency = measure_latency(tiny_bert(), tokenizer, batch_sizes=(1,), seq_len=8, n_warmup=0, n_runs=1)
    assert latency["cpu"] == cpu
    report = build_report({"metrics": {"a": 1.0}, "latency": latency}, {"metrics": {"a": 0.9}, "latency": latency})
    assert "CPU: Test CPU 9000, " in format_table(report) and "(avx2, avx512f, avx512_vnni, amx_int8)" in format_table(
        report
    )
    # Without any of the listed sets, the report says so rather than print an empty list.
    cpuinfo.write_text("model name\t: Old CPU\nflags\t\t: fpu sse sse2\n")
    bare = {**latency, "cpu": model_stats.cpu_description()}
    assert "none of AVX2, AVX-512, VNNI, AMX" in format_table(build_report({"metrics": {}, "latency": bare}, {}))


def test_interleaved_rounds_alternate_the_models_and_give_the_median_round_and_ratio_spread():
    from hf_kd.evaluation.model_stats import interleaved_latency

    calls: list[str] = []
    teacher_rounds, student_rounds = iter([10.0, 12.0, 30.0, 11.0, 13.0]), iter([5.0, 4.0, 15.0, 5.0, 6.0])

    def timer(name, values):
        def one_round():
            calls.append(name)
            ms = next(values)
            return latency_of(b4=ms) | {
                "per_batch_size": {"4": {"batch_size": 4, "ms_per_example": ms, "runs_ms": [4 * ms]}}
            }

        return one_round

    timed = interleaved_latency({"t": timer("t", teacher_rounds), "s": timer("s", student_rounds)}, rounds=5)
    assert calls == ["t", "s"] * 5  # one of each per round, in turn
    teacher, student = timed["t"]["per_batch_size"]["4"], timed["s"]["per_batch_size"]["4"]
    assert teacher["rounds_ms_per_example"] == [10.0, 12.0, 30.0, 11.0, 13.0] and timed["t"]["rounds"] == 5
    assert teacher["ms_per_example"] == 12.0 and student["ms_per_example"] == 5.0  # the median round
    assert teacher["ms_per_batch"] == 48.0 and teacher["runs_ms"] == [40.0, 48.0, 120.0, 44.0, 52.0]
    report = build_report({"metrics": {}, "latency": timed["t"]}, {"metrics": {}, "latency": timed["s"]})
    # Round by round 2, 3, 2, 2.2, 2.1667: the median of the ratios and their range, not 12 / 5 of the medians.
    assert report["ratios"]["speedup"] == pytest.approx({"4": 13 / 6})
    assert report["ratios"]["speedup_min_max"]["4"] == pytest.approx([2.0, 3.0])
    table = format_table(report)
    assert "2.17× (2.00–3.00)" in table and "5 rounds interleaved" in table
    with pytest.raises(ValueError, match="`rounds` must be an integer >= 1, got 0"):
        interleaved_latency({"t": timer("t", iter([1.0]))}, rounds=0)


def test_a_single_timing_keeps_the_ratio_of_the_medians(hand_report):
    assert "speedup_min_max" not in hand_report["ratios"]
    assert "6.00×" in format_table(hand_report) and "rounds interleaved" not in format_table(hand_report)
