"""Damaged inputs named: weights, configs and tokenizers of the teacher and of a reused stage, markers, the cached
logits; and label values from the data never quoted in the "known labels" of an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_kd import cli
from hf_kd.data.labels import encode_labels
from hf_kd.pipeline.run import run_pipeline
from hf_kd.recipe.config import DistillationPipelineConfig

CANARY = "CANARYNOTE"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _write(recipe: dict, tmp_path: Path) -> str:
    import yaml

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("hf-kd: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


@pytest.mark.parametrize(
    ("file", "damage", "pattern"),
    [
        ("model.safetensors", _truncate, r"model\.safetensors' cannot be read as safetensors .*truncated or damaged"),
        ("config.json", lambda p: p.write_text("{not json"), r"config\.json' is not valid JSON"),
        ("tokenizer.json", lambda p: p.write_text('{"model": '), r"tokenizer\.json' is not valid JSON"),
    ],
)
def test_a_damaged_teacher_file_is_named_before_any_work(recipe, tmp_path, capsys, file, damage, pattern):
    damage(Path(recipe["teacher"]["model"]) / file)
    with pytest.raises(SystemExit):
        cli.main(["distill", _write(recipe, tmp_path)])
    line = _one_error_line(capsys)
    assert "`teacher.model`" in line
    import re

    assert re.search(pattern, line), line
    assert not (Path(recipe["output_dir"]) / "teacher" / "DONE.json").exists()


def test_a_damaged_stage_model_is_named_when_it_is_read_again(recipe, tmp_path, capsys):
    run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    _truncate(Path(recipe["output_dir"]) / "teacher" / "model" / "model.safetensors")
    recipe["student"]["alpha"] = 0.6  # the student is made again from the kept teacher
    with pytest.raises(SystemExit):
        cli.main(["distill", _write(recipe, tmp_path)])
    line = _one_error_line(capsys)
    assert "teacher/model/model.safetensors' cannot be read as safetensors" in line


def test_a_damaged_marker_names_the_file_and_what_to_do(recipe, tmp_path, capsys):
    run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    marker = Path(recipe["output_dir"]) / "teacher" / "DONE.json"
    marker.write_text("{garbage")
    with pytest.raises(SystemExit):
        cli.main(["distill", _write(recipe, tmp_path)])
    line = _one_error_line(capsys)
    assert str(marker) in line and "is damaged" in line and "delete it, and the next run recomputes that stage" in line
    marker.unlink()  # what the message says to do
    capsys.readouterr()
    assert cli.main(["distill", _write(recipe, tmp_path)]) == 0


def test_damaged_cached_logits_are_computed_again_and_said_so(recipe, caplog):
    first = run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    data = Path(recipe["output_dir"]) / "teacher_logits" / "dataset"
    for arrow in data.glob("*.arrow"):
        _truncate(arrow)
    recipe["student"]["alpha"] = 0.6
    with caplog.at_level("WARNING"):
        again = run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    assert "The cached teacher logits in" in caplog.text and "computing them again" in caplog.text
    assert again["stages"]["teacher_logits"] == "ran" and again["stages"]["teacher"].startswith("skipped")
    assert first["teacher"] == again["teacher"]
    import datasets

    assert len(datasets.load_from_disk(str(data))) == 24


def _labels(values_by_split: dict[str, list]):
    import datasets

    return datasets.DatasetDict(
        {s: datasets.Dataset.from_dict({"text": ["t"] * len(v), "label": v}) for s, v in values_by_split.items()}
    )


def test_known_labels_read_from_the_data_are_counted_not_quoted_when_they_may_be_text():
    notes = [f"{CANARY} reported {i} said" for i in range(3)]
    data = _labels({"train": notes * 4, "validation": [f"{CANARY} other note"]})
    with pytest.raises(ValueError) as error:
        encode_labels(data, "label", problem_type="single_label_classification")
    message = str(error.value)
    assert CANARY not in message and "reported" not in message
    assert "known labels: 3 read from the training split (not shown" in message and "(row 0)" in message


def test_known_labels_that_are_tokens_or_declared_are_shown():
    data = _labels({"train": ["E11", "I10"] * 3, "validation": ["J45"]})
    with pytest.raises(ValueError, match=r"Unknown label 'J45'.*known labels: \['E11', 'I10'\]"):
        encode_labels(data, "label", problem_type="single_label_classification")
    declared = _labels({"train": ["chest pain", "fever"] * 3, "validation": ["cough now"]})
    with pytest.raises(ValueError, match=r"known labels: \['chest pain', 'fever'\]") as error:
        encode_labels(
            declared, "label", problem_type="single_label_classification", label_names=["chest pain", "fever"]
        )
    assert "cough now" not in str(error.value)


def test_a_canary_in_the_label_column_of_every_split_never_reaches_a_message(recipe, tmp_path, capsys):
    data = tmp_path / "labels_canary"
    data.mkdir()
    for split, n in (("train", 24), ("validation", 8), ("test", 8)):
        rows = [{"text": "fever cough", "labels": f"{CANARY} {split} note {i % 3}"} for i in range(n)]
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe["data"]["path"] = str(data)
    with pytest.raises(SystemExit):
        cli.main(["distill", _write(recipe, tmp_path)])
    captured = capsys.readouterr()
    assert CANARY not in captured.out + captured.err and "hf-kd: error:" in captured.err


def test_a_full_disk_mid_checkpoint_stops_in_one_line_and_the_rerun_resumes_to_the_same_metrics(
    recipe, tmp_path, capsys, monkeypatch, caplog
):
    import errno

    import transformers.modeling_utils as modeling_utils

    recipe["teacher"].update(save_steps=1, num_train_epochs=2)  # a checkpoint at each of the 6 steps
    reference = json.loads(json.dumps(recipe))
    reference["output_dir"] = str(tmp_path / "uninterrupted")
    expected = run_pipeline(DistillationPipelineConfig.from_dict(reference))

    original = modeling_utils.safe_save_file
    calls = []

    def full_disk(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 3:  # the third checkpoint: half its weights reach the disk, then the disk is full
            scratch = tmp_path / "scratch.safetensors"
            original(tensors, str(scratch), metadata=metadata)
            Path(filename).write_bytes(scratch.read_bytes()[: scratch.stat().st_size // 2])
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        return original(tensors, filename, metadata=metadata)

    monkeypatch.setattr(modeling_utils, "safe_save_file", full_disk)
    path = _write(recipe, tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main(["distill", path])
    line = _one_error_line(capsys)
    assert "No space left on the device of" in line and "checkpoint-3" in line and "MB free there" in line
    checkpoints = Path(recipe["output_dir"]) / "teacher" / "checkpoints"
    assert (checkpoints / "checkpoint-2" / "hf_kd_complete.json").is_file()
    assert not (checkpoints / "checkpoint-3" / "hf_kd_complete.json").exists()

    monkeypatch.setattr(modeling_utils, "safe_save_file", original)  # space freed: the same command again
    with caplog.at_level("WARNING"):
        assert cli.main(["distill", path]) == 0
    assert "Skipping the incomplete checkpoint" in caplog.text and "checkpoint-3" in caplog.text
    done = json.loads((Path(recipe["output_dir"]) / "evaluation" / "DONE.json").read_text())
    for side in ("teacher", "student"):
        for split, metrics in expected[side].items():
            for name, value in metrics.items():
                if isinstance(value, float):
                    assert done[side][split][name] == pytest.approx(value, abs=1e-4), (side, split, name)
