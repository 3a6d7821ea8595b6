"""The shipped offline recipes, end to end on the real data and model in ../shared, shrunk to a few examples."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from conftest import micro_f1_from_saved
from huggingface_hub import ModelCard

from hf_kd.pipeline.run import run_pipeline
from hf_kd.recipe.config import DistillationPipelineConfig

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"

pytestmark = [pytest.mark.slow]

SMALL = {
    "data.train_size": 24,
    "data.eval_size": 24,
    "data.max_length": 48,
    "teacher.num_train_epochs": 1,
    "student.num_train_epochs": 1,
    "teacher.logging_steps": 1,
    "student.logging_steps": 1,
    "evaluation.min_teacher_metric": None,
    "evaluation.latency_batch_sizes": [1],
    "evaluation.plots": False,
}


def _texts(path: Path, fields: tuple[str, ...], n: int = 24) -> list[str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:n]]
    return [row[f] for row in rows for f in fields if row.get(f)]


def _outputs(root: Path) -> str:
    """Every text file the run wrote (reports, cards, markers, configs, logs)."""
    suffixes = {".json", ".md", ".yaml", ".txt", ".csv", ".log"}
    return "\n".join(
        p.read_text(encoding="utf-8", errors="replace")
        for p in root.rglob("*")
        if p.is_file() and p.suffix in suffixes and "dataset" not in p.parts and "cache" not in p.parts
    )


@pytest.mark.parametrize(
    ("recipe", "data_file", "text_fields"),
    [
        ("recipes/hoc/offline.yaml", "hoc/abstract_level_train.jsonl", ("text",)),
        ("recipes/hoc/offline_abstract.yaml", "hoc/abstract_level_train.jsonl", ("text",)),
        ("recipes/dsg_kd/offline.yaml", "codiesp/codiesp_train.jsonl", ("text_es", "text_en_mt")),
    ],
)
def test_offline_recipe_end_to_end_on_shared_data(recipe, data_file, text_fields, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # recipe paths are relative to the repository root
    config = DistillationPipelineConfig.from_yaml(recipe, {**SMALL, "output_dir": str(tmp_path / "run")})
    result = run_pipeline(config)
    run = tmp_path / "run"
    assert result["stages"]["teacher"] == "ran" and result["stages"]["student"] == "ran"

    report = json.loads((run / "report.json").read_text())
    teacher, student = report["teacher"], report["student"]
    marked = {
        "teacher_eval": json.loads((run / "teacher_eval" / "DONE.json").read_text())["metrics"],
        "evaluation": json.loads((run / "evaluation" / "DONE.json").read_text())["student"],
    }
    for side, stage in ((teacher, "teacher_eval"), (student, "evaluation")):
        for split in ("validation", "test"):  # the reported F1 is that of the saved predictions at the threshold
            expected = micro_f1_from_saved(run / stage, split, marked[stage][split]["threshold"])
            assert side["metrics"][f"{split}_micro_f1"] == pytest.approx(expected, abs=1e-9)
    # 3 of the 6 layers: fewer parameters, smaller on disk, the student is faster or as fast at batch 1.
    assert 0.6 < student["parameters"] / teacher["parameters"] < 0.9
    assert (run / "student" / "model" / "model.safetensors").is_file()
    assert not list(run.rglob("pytorch_model.bin"))

    student_config = json.loads((run / "student" / "model" / "config.json").read_text())
    assert student_config["num_hidden_layers"] == 3
    assert student_config["problem_type"] == "multi_label_classification"
    assert not any(name.startswith("LABEL_") for name in student_config["id2label"].values())

    # The teacher's cached logits came from its own inputs: for the cross-lingual recipe, another text column.
    cached = datasets.load_from_disk(str(run / "teacher_logits" / "dataset"))
    assert len(cached[0]["teacher_logits"]) == len(student_config["id2label"])
    if config.data.level == "sentence":  # all the sentences of 24 abstracts, scored per abstract (BLURB)
        assert len(cached) > 24 and len(set(cached["group"] if "group" in cached.column_names else [])) <= 24
        for side in (teacher, student):  # scored per abstract: the union of its sentences' predictions
            assert side["metrics"]["validation_blurb_micro_f1"] != side["metrics"]["validation_micro_f1"]
    else:
        assert len(cached) == 24
    if config.data.teacher_text_column not in (None, config.data.text_column):
        assert cached[0]["teacher_input_ids"] != cached[0]["input_ids"]

    card = ModelCard.load(run / "student" / "model" / "README.md")
    assert {"knowledge-distillation", "hf-kd"} <= set(card.data.tags)
    assert card.data.model_name == "run"

    # Privacy: no example text in anything the run wrote or printed.
    written = _outputs(run) + capsys.readouterr().out
    for text in _texts(SHARED / "data" / data_file, text_fields):
        snippet = text.strip()[:40]
        assert snippet not in written
