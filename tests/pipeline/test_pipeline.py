"""End-to-end tests of the recipe pipeline on a tiny generated dataset with tiny random BERT models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import CLINICAL_LABELS, micro_f1_from_saved, save_model_dir, tiny_bert
from transformers import Trainer

from hf_kd.pipeline.run import DONE_FILE, QualityGateError, run_pipeline
from hf_kd.recipe.config import DistillationPipelineConfig

LABELS = list(CLINICAL_LABELS)


@pytest.fixture
def count_train(monkeypatch) -> list[str]:
    calls: list[str] = []
    original = Trainer.train

    def counting(self, *args, **kwargs):
        calls.append(self.args.output_dir)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", counting)
    return calls


def test_end_to_end_then_resume_trains_nothing(recipe, count_train, tmp_path):
    config = DistillationPipelineConfig.from_dict(recipe)
    result = run_pipeline(config)
    root = Path(recipe["output_dir"])

    for stage in ("teacher", "teacher_eval", "teacher_logits", "student", "evaluation"):
        assert (root / stage / DONE_FILE).is_file(), stage
    assert not (root / "student_warmup").exists()  # warm-up disabled by default
    assert len(count_train) == 2  # teacher fine-tuning and student distillation
    assert result["stages"]["teacher"] == "ran"

    # The student is built from one teacher layer, saved as safetensors with its tokenizer and label names.
    student_dir = Path(result["student_model"])
    assert (student_dir / "model.safetensors").is_file()
    assert (student_dir / "tokenizer.json").is_file() or (student_dir / "vocab.txt").is_file()
    student_config = json.loads((student_dir / "config.json").read_text())
    assert student_config["num_hidden_layers"] == 1
    assert list(student_config["id2label"].values()) == LABELS
    # The tokenizer truncates where training did, so that an export and `hf-kd predict` read what the student read.
    assert json.loads((student_dir / "tokenizer_config.json").read_text())["model_max_length"] == 32

    # The cached training set has the teacher's logits, one per label.
    import datasets

    cached = datasets.load_from_disk(str(root / "teacher_logits" / "dataset"))
    assert len(cached) == 24 and len(cached[0]["teacher_logits"]) == 3

    # Metrics of both models on validation and test, with a threshold tuned on validation and reused on test.
    for side in ("teacher", "student"):
        assert set(result[side]) == {"validation", "test"}
        assert result[side]["validation"]["threshold"] == result[side]["test"]["threshold"]
        stage = root / ("teacher_eval" if side == "teacher" else "evaluation")
        for split in ("validation", "test"):  # the reported F1 is the F1 of the saved predictions at the threshold
            threshold = result[side][split]["threshold"]
            expected = micro_f1_from_saved(stage, split, threshold)
            assert result[side][split]["micro_f1"] == pytest.approx(expected, abs=1e-9)
    assert (root / "recipe.yaml").is_file()
    assert DistillationPipelineConfig.from_yaml(root / "recipe.yaml") == config
    if result["report"] is not None:
        assert (root / "report.json").is_file() and (root / "report.md").is_file()
        assert (student_dir / "README.md").is_file()

    # A second run resumes from the markers: nothing is trained again and the same results come back.
    count_train.clear()
    again = run_pipeline(config)
    assert count_train == []
    assert all(v.startswith("skipped") or v == "disabled" for v in again["stages"].values())
    assert again["student"] == json.loads(json.dumps(result["student"]))


def test_crash_after_teacher_resumes_at_next_stage(recipe, count_train):
    config = DistillationPipelineConfig.from_dict(recipe)
    run_pipeline(config)
    root = Path(recipe["output_dir"])
    # Simulate a crash during the student stage: its marker is missing.
    (root / "student" / DONE_FILE).unlink()
    (root / "evaluation" / DONE_FILE).unlink()
    count_train.clear()
    result = run_pipeline(config)
    assert len(count_train) == 1 and "student" in count_train[0]
    assert result["stages"]["teacher"] == "skipped (done)"
    assert result["stages"]["student"] == "ran"


def test_quality_gate_error_names_metric_value_and_gate(recipe, count_train):
    recipe["evaluation"]["min_teacher_metric"] = 1.01
    config = DistillationPipelineConfig.from_dict(recipe)
    with pytest.raises(QualityGateError, match=r"micro_f1 = \d\.\d+ < min_teacher_metric = 1\.01"):
        run_pipeline(config)
    root = Path(recipe["output_dir"])
    assert (root / "teacher_eval" / DONE_FILE).is_file()
    assert not (root / "student").exists()  # no student was trained below the gate
    assert len(count_train) == 1


def test_already_finetuned_teacher_skips_stage_one_and_warmup_runs(recipe, count_train, tmp_path):
    id2label = dict(enumerate(LABELS))
    finetuned = save_model_dir(
        tiny_bert(num_labels=3, layers=2, id2label=id2label, problem_type="multi_label_classification"),
        tmp_path / "teacher_ft",
        tmp_path,
    )
    recipe["teacher"]["model"] = finetuned
    recipe["student"]["warmup_epochs"] = 1
    result = run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    assert result["stages"]["teacher"].startswith("skipped (teacher already fine-tuned")
    assert result["teacher_model"] == finetuned
    assert not (Path(recipe["output_dir"]) / "teacher" / "model").exists()
    # Warm-up then distillation: two training runs, none of them the teacher's.
    assert len(count_train) == 2
    assert "student_warmup" in count_train[0] and "student" in count_train[1]


def test_config_yaml_roundtrip_and_flat_keys_refused(tmp_path):
    nested = {
        "data": {"dataset": "hoc", "path": "../shared/data/hoc"},
        "teacher": {"model": "some/teacher", "learning_rate": "2e-4"},
        "student": {"alpha": 0.3, "from_teacher_layers": [0, 2, 4]},
        "evaluation": {"min_teacher_metric": 0.5},
        "search": {"n_particles": 3},
    }
    config = DistillationPipelineConfig.from_dict(nested)
    assert config.teacher.model == "some/teacher"
    assert config.teacher.training == {"learning_rate": 2e-4}  # a string is typed like its field
    assert config.student.training == {"alpha": 0.3}
    assert config.student.from_teacher_layers == [0, 2, 4]
    assert config.evaluation.min_teacher_metric == 0.5 and config.search.n_particles == 3
    path = tmp_path / "recipe.yaml"
    config.to_yaml(path)
    written = yaml.safe_load(path.read_text())
    assert written["student"]["alpha"] == 0.3 and "training" not in written["student"]
    assert DistillationPipelineConfig.from_yaml(path) == config
    path.write_text("teacher:\n  model: t\n  learning_rate: 1e-4\n")  # YAML 1.1 would read a string
    assert DistillationPipelineConfig.from_yaml(path).teacher.training["learning_rate"] == 1e-4
    with pytest.raises(ValueError, match="'student.alfa'"):
        DistillationPipelineConfig.from_dict(nested, overrides={"student.alfa": 0.1})
    with pytest.raises(ValueError, match="'student.alfa'"):
        DistillationPipelineConfig.from_dict({**nested, "student": {"alfa": 0.1}})
    # The flat and prefixed spellings of earlier versions are refused, naming the nested spelling.
    for flat in ({"alpha": 0.3}, {"teacher_model": "t"}, {"student.alpha": 0.3}):
        with pytest.raises(ValueError, match=r"inside their section.*did you mean --(student\.alpha|teacher\.model)"):
            DistillationPipelineConfig.from_dict({**nested, **flat})
    with pytest.raises(ValueError, match="'student.training'"):
        DistillationPipelineConfig.from_dict({**nested, "student": {"training": {"alpha": 0.3}}})


def test_search_backend_random_searches_the_recipe_space_through_optuna(recipe, monkeypatch):
    pytest.importorskip("optuna")
    from hf_kd.pipeline.recipe_search import run_search

    seen: list[tuple[str, float, float]] = []
    original = Trainer.train

    def recording(self, *args, **kwargs):
        seen.append((self.args.output_dir, self.args.alpha, self.args.temperature))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", recording)
    recipe["search"] = {
        "hp_space": {"alpha": [0.1, 0.9], "temperature": [1.0, 8.0, "log"]},
        "backend": "random",
        "n_trials": 3,
    }
    best = run_search(DistillationPipelineConfig.from_dict(recipe))
    trials = [(a, t) for folder, a, t in seen if Path(folder).parts[-2:] == ("search", "random")]
    assert len(seen) == 4 and len(trials) == 3  # the teacher once, then one student per trial
    assert all(0.1 <= a <= 0.9 and 1.0 <= t <= 8.0 for a, t in trials)
    assert len(set(trials)) == 3  # sampled, not the recipe's own alpha/temperature
    assert (best.hyperparameters["alpha"], best.hyperparameters["temperature"]) in trials
    # The best recipe is a recipe: the best values in its student section, the fine-tuned teacher, its own folder.
    best_recipe = DistillationPipelineConfig.from_yaml(
        Path(recipe["output_dir"]) / "search" / "random" / "best_recipe.yaml"
    )
    assert best_recipe.student.training["alpha"] == best.hyperparameters["alpha"]
    assert best_recipe.student.training["temperature"] == best.hyperparameters["temperature"]
    assert best_recipe.student.from_teacher_layers == [0]
    assert best_recipe.teacher.model == str(Path(recipe["output_dir"]) / "teacher" / "model")
    assert best_recipe.output_dir == str(Path(recipe["output_dir"]) / "best")

    # Seeded sampler: the same recipe samples the same points, and the teacher stages are reused.
    seen.clear()
    again = run_search(DistillationPipelineConfig.from_dict(recipe))
    assert [(a, t) for _, a, t in seen] == trials
    assert again.hyperparameters == best.hyperparameters


def test_unknown_search_backend_is_refused(recipe):
    recipe["search"] = {"backend": "grid"}
    with pytest.raises(ValueError, match=r"search.backend.*'grid'"):
        DistillationPipelineConfig.from_dict(recipe)


def test_online_teacher_distils_without_the_cached_column(recipe, monkeypatch):
    from hf_kd import DistillationTrainer

    seen: list[tuple[bool, bool]] = []
    original = DistillationTrainer.__init__

    def recording(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.train_dataset is not None:
            seen.append((self.teacher_model is not None, "teacher_logits" in self.train_dataset.column_names))

    monkeypatch.setattr(DistillationTrainer, "__init__", recording)
    recipe["student"]["online_teacher"] = True
    run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    assert seen[-1] == (True, False)  # the student's trainer: a teacher, no cached column
    done = json.loads((Path(recipe["output_dir"]) / "student" / DONE_FILE).read_text())
    assert done["online_teacher"] is True

    recipe["student"]["online_teacher"] = False
    recipe["output_dir"] += "-cached"
    run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    assert seen[-1] == (False, True)


def test_same_recipe_gives_the_same_models_whatever_ran_before(recipe, tmp_path):
    import torch
    from safetensors.torch import load_file

    # A base whose head does not fit the 3 labels: the teacher's head is newly initialised, as from a Hub encoder.
    recipe["teacher"]["model"] = save_model_dir(tiny_bert(num_labels=5, layers=2), tmp_path / "base5", tmp_path)
    weights = []
    for k, noise in enumerate((0, 12345)):
        torch.manual_seed(noise)  # the process's RNG state before the run must not matter
        torch.rand(noise % 97 + 1)
        recipe["output_dir"] = str(tmp_path / f"run{k}")
        run_pipeline(DistillationPipelineConfig.from_dict(recipe))
        weights.append(
            {
                side: load_file(str(tmp_path / f"run{k}" / side / "model" / "model.safetensors"))
                for side in ("teacher", "student")
            }
        )
    for side in ("teacher", "student"):
        assert weights[0][side].keys() == weights[1][side].keys()
        for name, tensor in weights[0][side].items():
            assert torch.equal(tensor, weights[1][side][name]), (side, name)


def test_search_trials_distil_like_the_student_stage(recipe, monkeypatch):
    # Stage 5 and the search build their trainer in one place: with `online_teacher`, trials read no cached column.
    pytest.importorskip("optuna")
    from hf_kd import DistillationTrainer
    from hf_kd.pipeline.recipe_search import run_search

    seen: list[tuple[bool, bool]] = []
    original = DistillationTrainer.train

    def recording(self, *args, **kwargs):
        seen.append((self.teacher_model is not None, "teacher_logits" in self.train_dataset.column_names))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DistillationTrainer, "train", recording)
    recipe["student"]["online_teacher"] = True
    recipe["search"] = {"hp_space": {"alpha": [0.1, 0.9]}, "backend": "random", "n_trials": 1}
    run_search(DistillationPipelineConfig.from_dict(recipe))
    assert seen[-1] == (True, False)
