"""A pipeline run you can trust: bad input refused before any stage with one clear line, stages recomputed exactly
when their inputs change, one run per folder, interrupted stages resumed, and no example text in any message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import save_model_dir, tiny_bert
from transformers import Trainer

from hf_kd import cli
from hf_kd.pipeline.markers import LOCK_FILE, RunLockedError, files_identity
from hf_kd.pipeline.run import DONE_FILE, run_pipeline
from hf_kd.recipe.config import DistillationPipelineConfig

CANARY = "zebra canary patient seventeen"


def _write(recipe: dict, tmp_path: Path, name: str = "recipe.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return str(path)


def _run_cli(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    return exit_info.value.code, capsys.readouterr().err


def _messages(err: str) -> list[str]:
    """The lines of stderr that are not progress bars (datasets' and Trainer's)."""
    return [line for line in err.splitlines() if line.strip() and "/s]" not in line and "it/s" not in line]


def _markers(root: Path) -> list[Path]:
    return list(root.rglob(DONE_FILE)) if root.exists() else []


def _set(recipe: dict, dotted: str, value) -> dict:
    section, _, field = dotted.rpartition(".")
    (recipe.setdefault(section, {}) if section else recipe)[field] = value
    return recipe


BAD_FIELDS = [
    ("student.temperature", -1.0, "`student` section: `temperature` must be a finite number > 0, got -1.0"),
    ("student.alpha", 2.0, "`alpha` must be in \\[0, 1\\], got 2.0"),
    ("student.head_learning_rate", -0.5, "`head_learning_rate` must be > 0"),
    ("student.from_teacher_layers", [5], "from_teacher_layers` \\[5\\].*teacher, which has 2"),
    ("evaluation.gate_metric", "blurb_micro_f1", "gate_metric` is 'blurb_micro_f1', which a multi_label"),
    ("search.metric", "auroc", "search.metric` is 'auroc'"),
    ("data.max_length", 100, "max_length` is 100 but the teacher takes at most 64 tokens"),
    ("teacher.model", "./no/such/teacher", "`teacher.model`: the path './no/such/teacher' does not exist"),
    ("evaluation.threshold", {"sensitivity": 1.5}, "`evaluation.threshold`: `sensitivity` must be"),
]


@pytest.mark.parametrize(("field", "value", "pattern"), BAD_FIELDS, ids=[f[0] for f in BAD_FIELDS])
def test_bad_recipe_fields_fail_before_any_stage_in_one_line(recipe, tmp_path, capsys, field, value, pattern):
    import re

    code, err = _run_cli(["distill", _write(_set(recipe, field, value), tmp_path)], capsys)
    lines = _messages(err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("hf-kd: error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in err
    assert _markers(Path(recipe["output_dir"])) == []


def test_debug_shows_the_traceback(recipe, tmp_path):
    _set(recipe, "student.alpha", 2.0)
    with pytest.raises(ValueError, match="alpha"):
        cli.main(["distill", _write(recipe, tmp_path), "--debug"])


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"", "is empty"),
        (b"text,labels\n\xff\xfe not utf8,a\n", "is not UTF-8 text"),
        (b'text,labels\n"unclosed,a\n', "cannot be read as csv"),
    ],
)
def test_unreadable_data_files_are_named_with_their_split(recipe, tmp_path, capsys, content, pattern):
    data = tmp_path / "bad"
    data.mkdir()
    (data / "train.csv").write_bytes(content)
    (data / "validation.csv").write_text("text,labels\nx,a\n")
    recipe["data"] = {"dataset": "files", "data_files": {"train": str(data / "train.csv"), "validation": str(
        data / "validation.csv")}, "max_length": 32}  # fmt: skip
    code, err = _run_cli(["distill", _write(recipe, tmp_path)], capsys)
    assert code == 2 and "train.csv" in err and "split 'train'" in err and pattern in err, err
    assert "Traceback" not in err and _markers(Path(recipe["output_dir"])) == []


def test_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("data:\n  dataset: files\n  path: [unclosed\nteacher: {model: x}\n")
    code, err = _run_cli(["distill", str(path)], capsys)
    assert code == 2 and "broken.yaml" in err and "not valid YAML (line" in err and len(_messages(err)) == 1


def test_declared_label_names_catch_a_stray_label(recipe, tmp_path, capsys):
    recipe["data"]["label_names"] = ["cough", "fever"]  # the files also hold "pain"
    code, err = _run_cli(["distill", _write(recipe, tmp_path)], capsys)
    assert code == 2 and "Unknown label 'pain'" in err and "split 'train'" in err and "row" in err


def test_a_free_text_label_column_is_refused_without_showing_it(recipe, tmp_path, capsys):
    data = tmp_path / "notes"
    data.mkdir()
    for split, n in (("train", 60), ("validation", 8)):
        rows = [{"note": f"{CANARY} {i} with a long free-text description of the case", "text": "x"} for i in range(n)]
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe["data"] = {"dataset": "files", "path": str(data), "label_column": "note", "max_length": 32}
    code, err = _run_cli(["distill", _write(recipe, tmp_path)], capsys)
    assert code == 2 and "looks like free text" in err and CANARY not in err
    assert not Path(recipe["output_dir"], "teacher").exists()


def test_note_text_in_a_small_validation_label_column_never_reaches_the_terminal(recipe, tmp_path, capsys):
    # A column mix-up in validation only: a few short notes, too few to look like free text by their counts.
    validation = Path(recipe["data"]["path"]) / "validation.jsonl"
    rows = [json.loads(line) for line in validation.read_text().splitlines()]
    note = f"{CANARY} reports chest pain"
    validation.write_text("".join(json.dumps({"text": r["text"], "labels": [note]}) + "\n" for r in rows))
    code, err = _run_cli(["distill", _write(recipe, tmp_path)], capsys)
    assert code == 2 and "Unknown label (not shown: it may be patient text)" in err and "split 'validation'" in err
    assert "canary" not in err and "chest" not in err
    assert not Path(recipe["output_dir"], "teacher").exists()


@pytest.fixture
def count_train(monkeypatch) -> list[str]:
    calls: list[str] = []
    original = Trainer.train

    def counting(self, *args, **kwargs):
        calls.append(Path(self.args.output_dir).parent.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", counting)
    return calls


def test_a_changed_field_recomputes_exactly_the_stages_after_it(recipe, count_train):
    first = run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    assert all(v == "ran" for v in first["stages"].values() if v != "disabled")
    root = Path(recipe["output_dir"])

    def rerun(**changes) -> dict:
        count_train.clear()
        result = run_pipeline(DistillationPipelineConfig.from_dict(recipe, overrides=changes))
        return {k: v.split(" ")[0] for k, v in result["stages"].items() if v != "disabled"}

    assert rerun() == dict.fromkeys(["teacher", "teacher_eval", "teacher_logits", "student", "evaluation"], "skipped")
    assert count_train == []
    student_only = rerun(**{"student.alpha": 0.9})
    assert student_only == {"teacher": "skipped", "teacher_eval": "skipped", "teacher_logits": "skipped",
                            "student": "ran", "evaluation": "ran"}  # fmt: skip
    assert count_train == ["student"]
    assert yaml.safe_load((root / "recipe.yaml").read_text())["student"]["alpha"] == 0.9  # the folder's recipe
    report_only = rerun(**{"student.alpha": 0.9, "evaluation.latency": False})
    assert [k for k, v in report_only.items() if v == "ran"] == ["evaluation"]
    everything = rerun(**{"student.alpha": 0.9, "evaluation.latency": False, "teacher.learning_rate": 2e-3})
    assert set(everything.values()) == {"ran"} and count_train == ["teacher", "student"]
    # The gate is read after the teacher's evaluation: changing it recomputes nothing.
    assert set(rerun(**{"student.alpha": 0.9, "evaluation.latency": False, "teacher.learning_rate": 2e-3,
                        "evaluation.min_teacher_metric": 0.0}).values()) == {"skipped"}  # fmt: skip
    # A stage is recomputed with the stages made from it, not every stage after it: the teacher's threshold changes
    # its evaluation and the report, not the cached logits or the student.
    threshold = rerun(**{"student.alpha": 0.9, "evaluation.latency": False, "teacher.learning_rate": 2e-3,
                         "evaluation.threshold": 0.4})  # fmt: skip
    assert [k for k, v in threshold.items() if v == "ran"] == ["teacher_eval", "evaluation"] and count_train == []


def test_another_teacher_in_the_same_folder_recomputes_everything(recipe, tmp_path, count_train):
    run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    recipe["teacher"]["model"] = save_model_dir(tiny_bert(num_labels=3, layers=2, seed=9), tmp_path / "t2", tmp_path)
    count_train.clear()
    result = run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    assert result["stages"]["teacher"] == "ran" and count_train == ["teacher", "student"]


def test_a_model_folder_copied_with_new_times_keeps_its_identity_and_one_edited_in_place_does_not(tmp_path):
    folder = tmp_path / "teacher"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(bytes(range(256)) * 30_000)  # 7.7 MB: larger than any file a config or tokenizer has
    (folder / "config.json").write_text("{}")
    before = files_identity(folder)
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**12))  # a fresh copy: new times, the same bytes
    assert files_identity(folder) == before
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # the same size and, below, the same time: other weights
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**12))
    assert files_identity(folder) != before


def test_one_run_per_folder(recipe, tmp_path):
    root = Path(recipe["output_dir"])
    root.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (root / LOCK_FILE).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "started": "t"}))
        with pytest.raises(RunLockedError, match=f"{root}.*in use by another hf-kd run \\(process {holder.pid}"):
            run_pipeline(DistillationPipelineConfig.from_dict(recipe))
        assert _markers(root) == []
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone: its lock is stale, the next run takes it over and releases it at the end.
    run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    assert not (root / LOCK_FILE).exists() and (root / "evaluation" / DONE_FILE).is_file()


def test_a_lock_from_another_host_or_unreadable_is_never_taken_over_without_force(recipe, tmp_path, capsys):
    root = Path(recipe["output_dir"])
    root.mkdir(parents=True)
    lock = root / LOCK_FILE
    lock.write_text(json.dumps({"pid": 1234, "host": "node-7", "started": "2026-12-06T01:00:00"}))
    with pytest.raises(RunLockedError, match="locked by an hf-kd run on host 'node-7' \\(process 1234, started"):
        run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    lock.write_text("{not json")
    with pytest.raises(RunLockedError, match="lock file that cannot be read"):
        run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    assert _markers(root) == [] and lock.read_text() == "{not json"  # nothing written, the lock left alone
    # From the CLI: one line naming the holder; --force-unlock is the user's explicit word.
    lock.write_text(json.dumps({"pid": 1234, "host": "node-7", "started": "t"}))
    recipe_path = tmp_path / "locked.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(SystemExit):
        cli.main(["distill", str(recipe_path)])
    assert "host 'node-7'" in capsys.readouterr().err
    assert cli.main(["distill", str(recipe_path), "--force-unlock"]) == 0
    assert not lock.exists() and (root / "evaluation" / DONE_FILE).is_file()


def test_an_interrupted_stage_resumes_from_its_last_checkpoint(recipe, monkeypatch):
    recipe["teacher"].update(num_train_epochs=2, per_device_train_batch_size=4, save_steps=2)  # 12 steps
    original_step = Trainer.training_step
    steps = {"n": 0}

    def dying(self, *args, **kwargs):
        steps["n"] += 1
        if steps["n"] == 5:
            raise KeyboardInterrupt  # killed during step 5, after the checkpoint of step 4
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", dying)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    checkpoints = Path(recipe["output_dir"], "teacher", "checkpoints")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-4"]  # only the last one is kept
    monkeypatch.setattr(Trainer, "training_step", original_step)
    resumed_from: list = []
    original_train = Trainer.train

    def recording(self, *args, resume_from_checkpoint=None, **kwargs):
        resumed_from.append(resume_from_checkpoint)
        return original_train(self, *args, resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    monkeypatch.setattr(Trainer, "train", recording)
    run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    assert resumed_from[0] == str(checkpoints / "checkpoint-4")
    history = json.loads(Path(recipe["output_dir"], "teacher", "log_history.json").read_text())
    assert history[-1]["step"] == 12  # it went on to the end
    assert not checkpoints.exists()  # removed once the stage's model is saved


def test_changed_inputs_discard_the_checkpoints_of_an_interrupted_stage(recipe, monkeypatch):
    recipe["teacher"].update(num_train_epochs=2, per_device_train_batch_size=4, save_steps=2)
    original_step = Trainer.training_step
    steps = {"n": 0}

    def dying(self, *args, **kwargs):
        steps["n"] += 1
        if steps["n"] == 5:
            raise KeyboardInterrupt
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", dying)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    monkeypatch.setattr(Trainer, "training_step", original_step)
    recipe["teacher"]["learning_rate"] = 5e-3  # another teacher run: its old checkpoint must not be resumed
    resumed_from: list = []
    original_train = Trainer.train

    def recording(self, *args, resume_from_checkpoint=None, **kwargs):
        resumed_from.append(resume_from_checkpoint)
        return original_train(self, *args, resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    monkeypatch.setattr(Trainer, "train", recording)
    run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    assert resumed_from[0] is None


def test_no_example_text_in_any_message_or_output(recipe, tmp_path, capsys, caplog):
    data = tmp_path / "canary"
    data.mkdir()
    labels = ("cough", "fever", "pain")
    for split, n in (("train", 24), ("validation", 8), ("test", 8)):
        rows = [{"text": f"{CANARY} {labels[i % 3]}", "labels": [labels[i % 3]]} for i in range(n)]
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe["data"]["path"] = str(data)
    recipe["data"]["max_unknown_rate"] = 1.0  # the canary is a word the tiny vocabulary cannot spell
    recipe["evaluation"]["plots"] = True
    with caplog.at_level("INFO"):
        assert cli.main(["distill", _write(recipe, tmp_path)]) == 0
    captured = capsys.readouterr()
    assert CANARY not in captured.out + captured.err + caplog.text
    root = Path(recipe["output_dir"])
    for path in root.rglob("*"):
        if path.is_file() and "dataset" not in path.parts:  # the tokenized set holds token ids, not text
            assert CANARY.encode() not in path.read_bytes(), path
    # The student's card says where it came from: the teacher's layers, not its own folder.
    card = (root / "student" / "model" / "README.md").read_text()
    assert "layers 0 of the teacher" in card and str(root / "student") not in card


def test_every_cli_error_is_one_line_with_exit_code_two(recipe, tmp_path, capsys):
    code, err = _run_cli(
        ["evaluate", "--model", str(tmp_path / "nowhere"), "--recipe", _write(recipe, tmp_path)], capsys
    )
    lines = _messages(err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("hf-kd: error: ") and "nowhere" in lines[0]


def test_no_copy_of_the_text_outside_the_run_folder_after_a_run(recipe, tmp_path, monkeypatch):
    import tempfile
    import time

    import datasets

    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    data = tmp_path / "canary_data"
    data.mkdir()
    for split, n in (("train", 24), ("validation", 8), ("test", 8)):
        rows = [{"text": f"{CANARY} {i} fever", "labels": ["fever"] if i % 2 else ["cough"]} for i in range(n)]
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe["data"]["path"] = str(data)
    recipe["data"]["max_unknown_rate"] = 1.0  # the canary and numbers are words the tiny vocabulary cannot spell
    started = time.time()
    run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    root = Path(recipe["output_dir"]).resolve()
    assert not (root / "cache").exists()  # the datasets cache of the run went with its success
    leaks = []
    for top in {home, Path(tempfile.gettempdir())}:
        for path in top.rglob("*") if top.exists() else []:
            try:
                inside = path.resolve().is_relative_to(root) or path.resolve().is_relative_to(data.resolve())
                if inside or not path.is_file() or path.stat().st_mtime < started or path.stat().st_size > 50e6:
                    continue
                if CANARY.encode() in path.read_bytes():
                    leaks.append(str(path))
            except OSError:
                continue
    assert leaks == []
