"""Tests of the `hf-kd` command line: help, recipe overrides and errors (no training)."""

from __future__ import annotations

import pytest
import yaml

from hf_kd import cli
from hf_kd.recipe.config import DistillationPipelineConfig, RecipeError

RECIPE = {
    "data": {"dataset": "hoc", "path": "../shared/data/hoc", "train_size": 400},
    "teacher": {"model": "some/teacher", "learning_rate": 2.0e-4},
    "student": {"from_teacher_layers": [0, 2, 4], "alpha": 0.5},
    "search": {"hp_space": {"alpha": [0.1, 0.9]}, "n_trials": 4, "n_particles": 2},
    "output_dir": "runs/x",
}


@pytest.fixture
def recipe_path(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    return str(path)


def test_help_lists_subcommands_and_override_scheme(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("distill", "evaluate", "search"):
        assert command in out
    assert "--student.alpha" in out and "from_teacher_layers" in out


@pytest.mark.parametrize("command", ["distill", "evaluate", "search"])
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert "--section" in out or "<section>" in out
    if command == "evaluate":
        assert "--model" in out and "--split" in out
    if command == "search":
        assert "--n_particles" in out


def test_overrides_change_the_config(recipe_path):
    args = ["--student.alpha", "0.3", "--teacher.learning_rate=1e-4", "--data.train_size", "50"]
    config = DistillationPipelineConfig.from_yaml(recipe_path, args=[*args, "--student.temperature", "4"])
    assert config.student.training["alpha"] == 0.3
    assert config.student.training["temperature"] == 4
    assert config.teacher.training["learning_rate"] == 1e-4
    assert config.data.train_size == 50
    assert config.student.from_teacher_layers == [0, 2, 4]  # untouched
    config = DistillationPipelineConfig.from_yaml(recipe_path, args=["--student.from_teacher_layers", "0", "1"])
    assert config.student.from_teacher_layers == [0, 1]


def test_flat_spellings_are_refused_naming_the_nested_one(recipe_path):
    with pytest.raises(RecipeError, match=r"--temperature.*did you mean .*--student.temperature"):
        DistillationPipelineConfig.from_yaml(recipe_path, args=["--temperature", "4"])
    with pytest.raises(RecipeError, match=r"teacher_learning_rate"):
        DistillationPipelineConfig.from_yaml(recipe_path, args=["--teacher_learning_rate", "1e-4"])


def test_values_are_typed_per_field(recipe_path):
    with pytest.raises(RecipeError, match=r"--student.alpha: invalid float value: 'high'"):
        DistillationPipelineConfig.from_yaml(recipe_path, args=["--student.alpha", "high"])
    with pytest.raises(RecipeError, match=r"'data.train_size' must be int, got 2.5"):
        DistillationPipelineConfig.from_yaml(recipe_path, {"data.train_size": 2.5})
    with pytest.raises(ValueError, match=r"`evaluation.latency_rounds` must be an integer >= 1, got 0"):
        DistillationPipelineConfig.from_yaml(recipe_path, {"evaluation.latency_rounds": 0})
    config = DistillationPipelineConfig.from_yaml(recipe_path, args=["--evaluation.min_teacher_metric", "null"])
    assert config.evaluation.min_teacher_metric is None


def test_distill_runs_pipeline_with_overrides(recipe_path, monkeypatch, capsys):
    seen = {}

    def fake_run(config, force_unlock=False):
        seen.update(config=config, force_unlock=force_unlock)
        return {"output_dir": config.output_dir, "stages": {}, "student_model": "m"}

    monkeypatch.setattr("hf_kd.pipeline.run.run_pipeline", fake_run)
    assert cli.main(["distill", recipe_path, "--student.alpha", "0.2", "--output_dir", "runs/y"]) == 0
    assert seen["config"].student.training["alpha"] == 0.2
    assert seen["config"].output_dir == "runs/y" and seen["force_unlock"] is False
    assert '"runs/y"' in capsys.readouterr().out
    assert cli.main(["distill", recipe_path, "--force-unlock"]) == 0 and seen["force_unlock"] is True


def test_search_passes_trials_and_particles(recipe_path, monkeypatch, capsys):
    seen = {}

    class Best:
        objective = 0.5
        hyperparameters = {"alpha": 0.4}

    def fake_search(config, n_trials=None, n_particles=None, force_unlock=False):
        seen.update(config=config, n_trials=n_trials, n_particles=n_particles)
        return Best()

    monkeypatch.setattr("hf_kd.pipeline.recipe_search.run_search", fake_search)
    cli.main(["search", recipe_path, "--n_trials", "6", "--n_particles", "3"])
    assert (seen["n_trials"], seen["n_particles"]) == (6, 3)
    assert seen["config"].search.hp_space == {"alpha": [0.1, 0.9]}
    assert '"alpha": 0.4' in capsys.readouterr().out


def test_unknown_field_is_an_error_naming_it(recipe_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["distill", recipe_path, "--student.alfa", "0.3"])
    assert exit_info.value.code == 2
    assert "student.alfa" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["distill", recipe_path, "--not_a_field", "1"])
    assert "not_a_field" in capsys.readouterr().err


def test_override_without_value_is_an_error(recipe_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["distill", recipe_path, "--student.alpha"])
    assert "--student.alpha" in capsys.readouterr().err


def test_shared_cpu_sets_passive_waits_half_the_cores_and_no_onnxruntime_spinning(tmp_path, monkeypatch):
    import os

    import torch
    from conftest import save_model_dir, tiny_bert

    from hf_kd.cli import share_cpu
    from hf_kd.constants import SHARED_CPU_ENV
    from hf_kd.export.onnx import export_onnx
    from hf_kd.export.onnx_classifier import OnnxClassifier

    for name in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", SHARED_CPU_ENV):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    try:
        assert share_cpu() == 4
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and os.environ["OMP_NUM_THREADS"] == "4"
        assert torch.get_num_threads() == 4
        folder = save_model_dir(tiny_bert(num_labels=2, id2label={0: "a", 1: "b"}), tmp_path / "m", tmp_path)
        export_onnx(folder, tmp_path / "onnx")
        options = OnnxClassifier.from_pretrained(tmp_path / "onnx").session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.intra_op_num_threads == 4
        monkeypatch.delenv(SHARED_CPU_ENV)
        plain = OnnxClassifier.from_pretrained(tmp_path / "onnx").session.get_session_options()
        with pytest.raises(RuntimeError, match="does not have configuration"):  # onnxruntime's default: spinning
            plain.get_session_config_entry("session.intra_op.allow_spinning")
    finally:
        torch.set_num_threads(before)


def test_shared_cpu_flag_is_taken_anywhere_on_the_line(monkeypatch, capsys):
    import hf_kd.cli as cli_module

    called = []
    monkeypatch.setattr(cli_module, "share_cpu", lambda: called.append(1) or 1)
    with pytest.raises(SystemExit):
        cli_module.main(["predict", "--shared-cpu", "--help"])
    assert called == [1] and "hf-kd predict" in capsys.readouterr().out
