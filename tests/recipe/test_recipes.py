"""The shipped own-data recipes run as written (on tiny files with their columns), `hf-kd init`, and the pipeline's
Hub push."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import MINILM, save_model_dir, tiny_bert

from hf_kd.pipeline.run import run_pipeline
from hf_kd.recipe.config import DistillationPipelineConfig

ROOT = Path(__file__).resolve().parents[2]
OWN_DATA = ROOT / "recipes" / "own_data"
WORDS = ("patient", "fever", "cough", "pain", "chest", "acute", "chronic", "the", "a", "with")
TINY = {"max_steps": 2, "per_device_train_batch_size": 8, "logging_steps": 1, "use_cpu": True}


def _write_split(path: Path, rows: list[dict]) -> None:
    """Write rows in the format the file's extension names (CSV, JSON Lines or Parquet)."""
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    dataset = datasets.Dataset.from_list(rows)
    if path.suffix == ".csv":
        dataset.to_csv(str(path), index=False)
    elif path.suffix == ".parquet":
        dataset.to_parquet(str(path))
    else:
        dataset.to_json(str(path), lines=True)


def _labels(data: dict, rng: random.Random):
    """A label cell in the recipe's format: a name, or names joined by its delimiter."""
    names = data.get("label_names") or ["I10", "E11", "J45"]
    if "label_delimiter" in data:
        return data["label_delimiter"].join(sorted({rng.choice(names) for _ in range(rng.randint(1, 2))}))
    return rng.choice(names)


SPELLED = [w for w in WORDS if w != "with"]  # the words the tiny test vocabulary spells (no [UNK])


def _own_data_recipe(name: str, tmp_path: Path) -> tuple[dict, dict]:
    """The shipped recipe, its data files written under tmp_path with its own columns and label format, a tiny
    teacher, and tiny training budgets; the recipe's sections are otherwise as shipped."""
    shipped = yaml.safe_load((OWN_DATA / f"{name}.yaml").read_text())
    recipe = json.loads(json.dumps(shipped))
    data = recipe["data"]
    rng = random.Random(0)
    files = {}
    for split, relative in data["data_files"].items():
        target = tmp_path / relative
        rows = []
        for _ in range(24 if split == "train" else 16):
            label = _labels(data, rng)
            rows.append(
                {data["text_column"]: " ".join(rng.choice(SPELLED) for _ in range(8)), data["label_column"]: label}
            )
        if split != "train" and data.get("label_names"):  # every class in the evaluation splits
            for index, label in enumerate(data["label_names"]):
                rows[index][data["label_column"]] = label
        _write_split(target, rows)
        files[split] = str(target)
    data["data_files"] = files
    data["max_length"] = 32
    labels = len(data.get("label_names") or ["I10", "E11", "J45"])
    teacher = tiny_bert(num_labels=labels, layers=4)  # the recipes take 3 of the teacher's layers
    recipe["teacher"] = {"model": save_model_dir(teacher, tmp_path / "teacher", tmp_path), **TINY}
    student = {k: v for k, v in recipe["student"].items() if k in ("num_layers", "alpha", "temperature")}
    recipe["student"] = {**student, **TINY}
    recipe["evaluation"].update({"min_teacher_metric": None, "latency": False, "plots": False})
    recipe["output_dir"] = str(tmp_path / "run")
    return shipped, recipe


@pytest.mark.parametrize("name", ["single_label", "multi_label", "binary"])
def test_own_data_recipes_run_as_shipped(name, tmp_path):
    shipped, recipe = _own_data_recipe(name, tmp_path)
    config = DistillationPipelineConfig.from_dict(recipe)
    result = run_pipeline(config)

    student = json.loads((Path(result["student_model"]) / "config.json").read_text())
    names = list(student["id2label"].values())
    validation = result["student"]["validation"]
    if name == "single_label":
        assert names == shipped["data"]["label_names"]  # the declared order is the id order
        assert {"accuracy", "macro_f1"} <= set(validation)
        assert "hf_kd_threshold" not in student
    elif name == "multi_label":
        assert student["problem_type"] == "multi_label_classification"
        assert sorted(names) == ["E11", "I10", "J45"]  # names split on the recipe's ";"
        assert "micro_f1" in validation and student["hf_kd_threshold"] == validation["threshold"]
    else:
        assert names == shipped["data"]["label_names"] == ["routine", "emergency"]
        assert {"auroc", "sensitivity", "specificity", "ppv", "npv"} <= set(validation)
        # The recipe's clinical operating point: the highest threshold keeping validation sensitivity >= 0.95.
        assert shipped["evaluation"]["threshold"] == {"sensitivity": 0.95}
        assert validation["sensitivity"] >= 0.95
        assert student["hf_kd_threshold"] == pytest.approx(validation["threshold"])
    assert student["num_hidden_layers"] == shipped["student"]["num_layers"] == 3


def test_hf_kd_init_writes_a_recipe_that_the_pipeline_reads(tmp_path):
    rng = random.Random(1)
    files = {}
    for split, n in (("train", 20), ("validation", 10)):
        rows = [
            {"note": " ".join(rng.choice(WORDS) for _ in range(6)), "triage": rng.choice(["home", "admit"])}
            for _ in range(n)
        ]
        files[split] = tmp_path / f"{split}.csv"
        _write_split(files[split], rows)
    teacher = save_model_dir(tiny_bert(num_labels=2), tmp_path / "teacher", tmp_path)
    command = [sys.executable, "-m", "hf_kd.cli", "init", "--train", str(files["train"]), "--validation"]
    command += [str(files["validation"]), "--model", teacher, "--text_column", "note", "--label_column", "triage"]
    out = tmp_path / "recipe.yaml"

    # Two named classes and no --positive: refused, naming the classes, nothing written.
    refused = subprocess.run([*command, "--output", str(out)], capture_output=True, text=True)
    assert refused.returncode == 2 and "--positive" in refused.stderr and "admit" in refused.stderr
    assert not out.exists()

    done = subprocess.run([*command, "--positive", "admit", "--output", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["task"] == "binary" and summary["splits"] == {"train": 20, "validation": 10}
    config = DistillationPipelineConfig.from_yaml(out)
    assert config.data.problem_type == "binary" and config.data.label_names == ["home", "admit"]
    assert (config.data.text_column, config.data.label_column) == ("note", "triage")
    assert config.teacher.model == teacher and config.evaluation.threshold == "f1"
    for row in json.loads(json.dumps(summary)).values():
        assert "patient" not in str(row)  # counts and names only, never a text

    again = subprocess.run([*command, "--positive", "admit", "--output", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr


def test_pipeline_pushes_the_student_with_its_distillation_card(recipe, monkeypatch):
    from huggingface_hub import HfApi

    uploads = []

    def create_repo(self, repo_id, **kwargs):
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, repo_id, folder_path, ignore_patterns=(), **kwargs):
        import fnmatch

        folder = Path(folder_path)
        files = [p.name for p in folder.iterdir() if not any(fnmatch.fnmatch(p.name, g) for g in ignore_patterns)]
        uploads.append((repo_id, (folder / "README.md").read_text(), sorted(files)))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    recipe["student"]["hub_model_id"] = "hospital/triage-student"
    result = run_pipeline(DistillationPipelineConfig.from_dict(recipe))

    ((repo, readme, files),) = uploads
    assert repo == "hospital/triage-student"
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    assert "tokenizer.json" in files or "vocab.txt" in files
    assert "knowledge-distillation" in readme and "distilled with `hf_kd`" in readme
    assert "| Temperature | 2 |" in readme and "| Alpha (weight of the hard-label loss) | 0.3 |" in readme
    done = json.loads((Path(recipe["output_dir"]) / "evaluation" / "DONE.json").read_text())
    assert done["pushed_to"] == "hospital/triage-student"
    assert result["stages"]["evaluation"] == "ran"
    # A resumed run does not push again.
    run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    assert len(uploads) == 1


def test_init_writes_and_prints_non_ascii_label_names_as_they_are(tmp_path, capsys):
    import json

    from hf_kd.cli import main

    names = ["发热", "咳嗽", "胸痛"]
    for split, n in (("train", 12), ("validation", 6)):
        rows = [{"text": f"患者 {i}", "label": names[i % 3]} for i in range(n)]
        (tmp_path / f"{split}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
    out = tmp_path / "recipe.yaml"
    args = ["init", "--train", str(tmp_path / "train.jsonl"), "--validation", str(tmp_path / "validation.jsonl")]
    assert main([*args, "--label_column", "label", "--model", str(MINILM), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    written = out.read_text(encoding="utf-8")
    for name in names:
        assert name in printed and name in written
    assert "\\u" not in printed and "\\u" not in written
    # The English teacher cannot read 患者: init says so, with the rate, without the text.
    summary = json.loads(printed)
    assert summary["unknown_token_rate"]["train"] > 0.1 and "may not read this language" in summary["warning"]
    assert "患者" not in printed


@pytest.mark.parametrize(
    "path",
    sorted(p.relative_to(ROOT).as_posix() for d in ("hoc", "dsg_kd") for p in (ROOT / "recipes" / d).glob("*.yaml")),
)
def test_every_shipped_recipe_parses_and_names_a_local_run_folder(path):
    config = DistillationPipelineConfig.from_yaml(ROOT / path)
    assert Path(config.output_dir).parts[0] == "runs", config.output_dir
    general = config.student.general_distillation
    if general is not None:  # a general stage must have something to learn (the stage's own check)
        from hf_kd.pipeline.stage_models import general_arguments

        assert general_arguments(config, Path(config.output_dir)).uses_intermediate_losses
