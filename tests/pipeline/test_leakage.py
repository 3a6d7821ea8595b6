"""The leakage guard: transfer rows equal to a validation or test row never reach the teacher's logits."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
from conftest import MINILM, write_label_files

from hf_kd.cli import main
from hf_kd.data.leakage import count_leaked_rows, drop_leaked_rows, normalize_text, text_digests
from hf_kd.pipeline.run import run_pipeline
from hf_kd.recipe.config import DistillationPipelineConfig

CANARY = "zebracanary"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _disguise(text: str) -> str:
    """The same text once case, whitespace and punctuation are folded."""
    words = text.split()
    return "  ".join(w.upper() if i % 2 else w for i, w in enumerate(words)) + " ."


def test_normalize_text_folds_case_whitespace_and_punctuation_only():
    assert normalize_text("The cough, at night.") == normalize_text(" the  COUGH at\tnight ") == "the cough at night"
    assert normalize_text("ＣＯＵＧＨ！") == "cough"  # NFKC: full-width forms
    assert normalize_text("cough at night") != normalize_text("cough at nights")
    assert normalize_text("fever 38.5") != normalize_text("fever 385 2")


def test_drop_leaked_rows_drops_exactly_the_equal_rows_and_keeps_the_order():
    transfer = datasets.Dataset.from_dict({"text": ["a cough", "The Fever!", "chest pain", "fever", None, "x y"]})
    references = text_digests([datasets.Dataset.from_dict({"text": ["the fever", "X, Y"]})], ["text", None])
    kept, dropped = drop_leaked_rows(transfer, references)
    assert dropped == 2 and kept["text"] == ["a cough", "chest pain", "fever", None]
    assert count_leaked_rows(transfer, references) == 2
    # A teacher-side column is compared too: a row whose translation equals an evaluated row's leaks as well.
    two = datasets.Dataset.from_dict({"text": ["uno", "dos"], "text_en": ["one", "two"]})
    refs = text_digests([datasets.Dataset.from_dict({"text": ["tres"], "text_en": ["Two."]})], ["text", "text_en"])
    assert drop_leaked_rows(two, refs)[0]["text"] == ["uno"]


def test_the_fingerprint_changes_only_when_the_kept_rows_change():
    transfer = datasets.Dataset.from_dict({"text": ["a cough", "the fever", "chest pain", "night sweats"]})

    def kept_fingerprint(reference_texts: list[str]) -> str:
        refs = text_digests([datasets.Dataset.from_dict({"text": reference_texts})], ["text"])
        return drop_leaked_rows(transfer, refs)[0]._fingerprint

    # Nothing dropped: the dataset itself, fingerprint included (caches built before the guard stay valid).
    assert kept_fingerprint(["unrelated"]) == kept_fingerprint(["other", "rows"]) == transfer._fingerprint
    # The same row dropped by other references: the same fingerprint.
    assert kept_fingerprint(["The fever."]) == kept_fingerprint(["the FEVER", "unrelated"])
    # Another kept set: another fingerprint.
    assert kept_fingerprint(["the fever"]) != transfer._fingerprint
    assert kept_fingerprint(["the fever"]) != kept_fingerprint(["chest pain"])
    assert kept_fingerprint(["the fever"]) != kept_fingerprint(["the fever", "chest pain"])


def test_transfer_rows_equal_to_validation_or_test_rows_are_dropped_before_the_teacher(
    recipe, tmp_path, capsys, monkeypatch
):
    data = Path(recipe["data"]["path"])
    recipe["data"]["max_unknown_rate"] = 1.0  # the canary is a word the tiny vocabulary cannot spell
    test = _rows(data / "test.jsonl")
    test[0]["text"] = f"{CANARY} {test[0]['text']}"
    _write(data / "test.jsonl", test)
    validation = _rows(data / "validation.jsonl")
    train = _rows(data / "train.jsonl")
    train[3]["text"] = validation[2]["text"]  # a training row equal to a validation row: counted, kept
    _write(data / "train.jsonl", train)
    own = [{"text": f"tumor growth signal {w}"} for w in ("acute", "chronic", "cell")]
    leaked = [{"text": _disguise(test[0]["text"])}, {"text": _disguise(validation[5]["text"])}]
    leaked.append({"text": test[4]["text"].upper()})
    notes = _write(tmp_path / "notes.jsonl", [own[0], leaked[0], own[1], leaked[1], leaked[2], own[2]])
    recipe["data"]["unlabeled_files"] = [str(notes)]

    from hf_kd.training import teacher_cache

    seen: list[list[list[int]]] = []
    original = teacher_cache.cache_teacher_logits

    def recording(teacher, dataset, *args, **kwargs):
        seen.append([list(ids) for ids in dataset["input_ids"]])
        return original(teacher, dataset, *args, **kwargs)

    monkeypatch.setattr(teacher_cache, "cache_teacher_logits", recording)
    result = run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    err = capsys.readouterr().err

    # The teacher's logits are computed for the 24 training rows and the 3 transfer rows of its own, no more.
    assert [len(rows) for rows in seen] == [24 + 3]
    report = json.loads((Path(recipe["output_dir"]) / "evaluation" / "report.json").read_text())
    counts = {"transfer_rows_dropped": 3, "train_rows_in_evaluation": 1}
    assert report["extra"]["leakage"] == counts
    lines = [line for line in err.splitlines() if "leakage guard" in line]
    assert len(lines) == 1 and "3 transfer-set row(s)" in lines[0] and "1 training row(s)" in lines[0]
    assert "warning" in lines[0]
    report_md = (Path(recipe["output_dir"]) / "evaluation" / "report.md").read_text()
    assert "Leakage guard: 3 transfer-set row(s)" in report_md
    # The canary (a test row, and a transfer row once folded) is in no log line and no file the run keeps outside
    # the datasets cache of the data itself.
    assert CANARY not in err and CANARY.upper() not in err
    for file in Path(recipe["output_dir"]).rglob("*"):
        if file.is_file() and "cache" not in file.relative_to(recipe["output_dir"]).parts[:1]:
            assert CANARY.encode() not in file.read_bytes() and CANARY.upper().encode() not in file.read_bytes()
    cached = datasets.load_from_disk(str(Path(recipe["output_dir"]) / "teacher_logits" / "dataset"))
    assert len(cached) == 27
    assert set(result["student"]) == {"validation", "test"}


def test_init_prints_both_counts(tmp_path, capsys):
    data = write_label_files(tmp_path / "data")
    test = _rows(data / "test.jsonl")
    train = _rows(data / "train.jsonl")
    train[0]["text"] = test[1]["text"].upper()
    train[1]["text"] = test[2]["text"] + "!"
    _write(data / "train.jsonl", train)
    notes = _write(tmp_path / "notes.jsonl", [{"text": _disguise(test[3]["text"])}, {"text": "tumor growth"}])
    code = main(
        ["init", "--train", str(data / "train.jsonl"), "--test", str(data / "test.jsonl")]
        + ["--unlabeled", str(notes), "--model", str(MINILM), "--output", str(tmp_path / "r.yaml")]
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["leakage"]["transfer_rows_dropped"] == 1
    assert summary["leakage"]["train_rows_in_evaluation"] == 2
    assert "kept" in summary["leakage"]["warning"]


def test_init_counts_nothing_without_overlap(tmp_path, capsys):
    data = write_label_files(tmp_path / "data", sizes=(("train", 24), ("validation", 12)), seed=3)
    train, validation = _rows(data / "train.jsonl"), _rows(data / "validation.jsonl")
    keys = {normalize_text(r["text"]) for r in validation}
    _write(data / "train.jsonl", [r for r in train if normalize_text(r["text"]) not in keys])
    notes = _write(tmp_path / "notes.jsonl", [{"text": f"tumor growth {i}"} for i in range(2)])
    code = main(
        ["init", "--train", str(data / "train.jsonl"), "--validation", str(data / "validation.jsonl")]
        + ["--unlabeled", str(notes), "--model", str(MINILM), "--output", str(tmp_path / "r.yaml")]
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["leakage"] == {"transfer_rows_dropped": 0, "train_rows_in_evaluation": 0}
