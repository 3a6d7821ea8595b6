"""`hf-kd predict`: the same labels as the PyTorch model and `OnnxClassifier`, every input and output format, ids kept,
no text written, streamed a chunk at a time, resumed without duplicates, sharded under `accelerate launch`; and the
export folder's serving contract and Triton repository."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import save_model_dir, tiny_bert

from hf_kd.cli import main
from hf_kd.export import predict as predict_module
from hf_kd.export.onnx import export_onnx
from hf_kd.export.onnx_classifier import OnnxClassifier
from hf_kd.export.predict import Predictor, predict_files, probabilities
from hf_kd.export.serving import serving_contract_problems

CANARY = "CANARY-7Q3X"
WORDS = "the patient fever cough pain chest acute chronic tumor cell signal".split()
MULTI_PROCESS_CONFIG = Path(__file__).resolve().parents[2] / "recipes" / "accelerate" / "multi_cpu.yaml"

TASKS = {
    "single_label_classification": ({"num_labels": 3, "id2label": {0: "low", 1: "mid", 2: "high"}}, None),
    "multi_label_classification": (
        {"num_labels": 3, "problem_type": "multi_label_classification", "id2label": {0: "胸痛", 1: "发热", 2: "c"}},
        0.5,
    ),
    "binary": ({"num_labels": 2, "id2label": {0: "routine", 1: "urgent"}, "seed": 3}, 0.45),
    "regression": ({"num_labels": 1, "problem_type": "regression"}, None),
}


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        words = [WORDS[j] for j in rng.integers(0, len(WORDS), size=int(rng.integers(1, 30)))]
        rows.append({"id": f"note-{i:04d}", "text": " ".join(words) + f" {CANARY}", "other": "x"})
    return rows


def _write(path: Path, rows: list[dict]) -> Path:
    suffix = path.suffix
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".json":
        path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    elif suffix in (".csv", ".tsv"):
        import csv

        with open(path, "w", newline="", encoding="utf-8") as handle:
            quoting = csv.QUOTE_NONE if suffix == ".tsv" else csv.QUOTE_MINIMAL
            writer = csv.DictWriter(
                handle, list(rows[0]), delimiter="\t" if suffix == ".tsv" else ",", quoting=quoting
            )
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=16)
    return path


def _read(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".csv":
        import csv

        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _model(tmp_path: Path, task: str) -> tuple[Path, torch.nn.Module]:
    config, threshold = TASKS[task]
    model = tiny_bert(**config).eval()
    if threshold is not None:
        model.config.hf_kd_threshold = threshold
    return Path(save_model_dir(model, tmp_path / "model", tmp_path)), model


def _expected(model, tokenizer, texts, task, names, threshold):
    """The PyTorch model's predictions, written out per task (not through hf_kd), text by text."""
    out = []
    for text in texts:
        encoded = tokenizer([text], truncation=True, max_length=64, return_tensors="pt")
        with torch.no_grad():
            logits = model(**encoded).logits.numpy()[0]
        if task == "multi_label_classification":
            out.append([names[j] for j in range(len(names)) if 1 / (1 + np.exp(-logits[j])) >= threshold])
        elif task == "binary":
            p = np.exp(logits[1]) / np.exp(logits).sum()
            out.append(names[1] if p >= threshold else names[0])
        elif task == "regression":
            out.append(float(logits[0]))
        else:
            out.append(names[int(logits.argmax())])
    return out


@pytest.mark.parametrize("task", list(TASKS))
def test_predict_gives_the_pytorch_and_onnx_labels_for_every_task_and_writes_no_text(tmp_path, task):
    model_dir, model = _model(tmp_path, task)
    export_onnx(model_dir, tmp_path / "onnx")
    rows = _rows(37)
    source = _write(tmp_path / "notes.jsonl", rows)
    onnx = OnnxClassifier.from_pretrained(tmp_path / "onnx")
    names = onnx.label_names
    texts = [r["text"] for r in rows]
    expected = _expected(model, onnx.tokenizer, texts, task, names, TASKS[task][1])
    for folder, name in ((model_dir, "torch.jsonl"), (tmp_path / "onnx", "onnx.jsonl")):
        result = predict_files(folder, [source], tmp_path / name, chunk_rows=8, batch_size=5, progress=False)
        assert result["rows"] == 37 and result["chunks"] == 5 and result["id"] == "id"
        out = _read(tmp_path / name)
        assert [r["id"] for r in out] == [r["id"] for r in rows]
        predicted = [r["prediction"] for r in out]
        if task == "regression":
            np.testing.assert_allclose(predicted, expected, atol=1e-4)
            assert "probabilities" not in out[0]
        else:
            assert predicted == expected
            assert list(out[0]["probabilities"]) == names
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert CANARY not in text and "patient" not in text
    if task != "regression":
        assert [r["prediction"] for r in _read(tmp_path / "onnx.jsonl")] == onnx.predict(texts)


def test_probabilities_are_softmax_sigmoid_and_logits_on_request(tmp_path):
    model_dir, model = _model(tmp_path, "multi_label_classification")
    rows = _rows(6)
    source = _write(tmp_path / "notes.jsonl", rows)
    predict_files(model_dir, [source], tmp_path / "out.jsonl", with_logits=True, progress=False)
    out = _read(tmp_path / "out.jsonl")
    logits = np.array([r["logits"] for r in out])
    np.testing.assert_allclose([list(r["probabilities"].values()) for r in out], 1 / (1 + np.exp(-logits)), atol=1e-5)
    single = np.array([[2.0, 0.0, -1.0]])
    np.testing.assert_allclose(
        probabilities(single, "single_label_classification"), [np.exp(single[0]) / np.exp(single[0]).sum()]
    )


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".parquet"])
def test_every_input_format_gives_the_jsonl_inputs_predictions(tmp_path, suffix):
    model_dir, _ = _model(tmp_path, "single_label_classification")
    rows = _rows(21)
    predict_files(
        model_dir, [_write(tmp_path / "a.jsonl", rows)], tmp_path / "ref.jsonl", chunk_rows=4, progress=False
    )
    predict_files(
        model_dir, [_write(tmp_path / f"a{suffix}", rows)], tmp_path / "x.jsonl", chunk_rows=4, progress=False
    )
    assert _read(tmp_path / "x.jsonl") == _read(tmp_path / "ref.jsonl")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_every_output_format_holds_the_same_records(tmp_path, suffix):
    model_dir, _ = _model(tmp_path, "multi_label_classification")
    source = _write(tmp_path / "a.jsonl", _rows(13))
    predict_files(model_dir, [source], tmp_path / "ref.jsonl", chunk_rows=4, progress=False)
    predict_files(model_dir, [source], tmp_path / f"out{suffix}", chunk_rows=4, progress=False)
    reference, out = _read(tmp_path / "ref.jsonl"), _read(tmp_path / f"out{suffix}")
    assert [r["id"] for r in out] == [r["id"] for r in reference]
    for got, want in zip(out, reference):
        labels = got["prediction"].split("|") if suffix == ".csv" and got["prediction"] else got["prediction"]
        assert (labels or []) == want["prediction"]
        for name, p in want["probabilities"].items():
            assert abs(float(got[f"p_{name}"]) - p) < 1e-6
    text = (tmp_path / f"out{suffix}").read_bytes()
    assert "胸痛".encode() in text  # label names as UTF-8, not \\u escapes


def test_row_numbers_without_an_id_column_and_a_named_id_column(tmp_path):
    model_dir, _ = _model(tmp_path, "binary")
    rows = [{"note_no": 100 + i, "text": r["text"]} for i, r in enumerate(_rows(9))]
    source = _write(tmp_path / "a.csv", rows)
    predict_files(model_dir, [source], tmp_path / "rows.jsonl", chunk_rows=4, progress=False)
    assert [r["row"] for r in _read(tmp_path / "rows.jsonl")] == list(range(9))
    predict_files(model_dir, [source], tmp_path / "ids.jsonl", id_column="note_no", progress=False)
    assert [r["note_no"] for r in _read(tmp_path / "ids.jsonl")] == [str(100 + i) for i in range(9)]


def test_streaming_holds_one_chunk_at_a_time(tmp_path, monkeypatch):
    """Fails if the file is read ahead of the predictions: rows read never exceed rows predicted plus a chunk."""
    from hf_kd.data import streaming

    model_dir, _ = _model(tmp_path, "single_label_classification")
    source = _write(tmp_path / "a.jsonl", _rows(200))
    read = {"rows": 0}
    original_open = streaming._open

    def counting_open(path, wanted):
        header, rows = original_open(path, wanted)

        def counted():
            for row in rows:
                read["rows"] += 1
                yield row

        return header, counted()

    predicted = {"rows": 0, "ahead": []}
    original_logits = Predictor.logits

    def logits(self, texts, batch_size=64):
        predicted["ahead"].append(read["rows"] - predicted["rows"])
        predicted["rows"] += len(texts)
        return original_logits(self, texts, batch_size)

    monkeypatch.setattr(streaming, "_open", counting_open)
    monkeypatch.setattr(Predictor, "logits", logits)
    predict_files(model_dir, [source], tmp_path / "out.jsonl", chunk_rows=16, progress=False)
    assert predicted["rows"] == 200 and len(predicted["ahead"]) == 13
    assert max(predicted["ahead"]) <= 16


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json"])
def test_readers_are_lazy(tmp_path, suffix):
    """The first row comes before the file is read through (the handle's position is far from the end)."""
    from hf_kd.data import streaming

    path = _write(tmp_path / f"big{suffix}", _rows(20000))
    opened = []
    original = open

    def spying_open(*args, **kwargs):
        handle = original(*args, **kwargs)
        opened.append(handle)
        return handle

    import builtins

    _, rows = streaming._open(path, ["text"])
    builtins.open, saved = spying_open, builtins.open
    try:
        first = next(rows)
    finally:
        builtins.open = saved
    assert first["id"] == "note-0000"
    size = path.stat().st_size
    positions = [h.buffer.tell() if hasattr(h, "buffer") else h.tell() for h in opened if not h.closed]
    assert all(p < size / 4 for p in positions)


def test_a_crash_midway_resumes_without_duplicates_or_gaps(tmp_path, monkeypatch):
    model_dir, _ = _model(tmp_path, "multi_label_classification")
    source = _write(tmp_path / "a.jsonl", _rows(50))
    predict_files(model_dir, [source], tmp_path / "full.jsonl", chunk_rows=8, progress=False)
    original = predict_module.write_records
    written = []

    def crashing(path, records, task, names):
        if len(written) == 3:
            raise KeyboardInterrupt("killed")
        original(path, records, task, names)
        written.append(path)

    monkeypatch.setattr(predict_module, "write_records", crashing)
    with pytest.raises(KeyboardInterrupt):
        predict_files(model_dir, [source], tmp_path / "out.jsonl", chunk_rows=8, progress=False)
    assert not (tmp_path / "out.jsonl").exists() and (tmp_path / "out.jsonl.parts").is_dir()
    monkeypatch.setattr(predict_module, "write_records", original)
    result = predict_files(model_dir, [source], tmp_path / "out.jsonl", chunk_rows=8, progress=False)
    assert result["resumed_chunks"] == 3
    assert _read(tmp_path / "out.jsonl") == _read(tmp_path / "full.jsonl")
    assert not (tmp_path / "out.jsonl.parts").exists()


def test_parts_of_another_run_are_refused(tmp_path, monkeypatch):
    model_dir, _ = _model(tmp_path, "single_label_classification")
    source = _write(tmp_path / "a.jsonl", _rows(20))
    monkeypatch.setattr(predict_module, "_join_parts", lambda parts, out: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        predict_files(model_dir, [source], tmp_path / "out.jsonl", chunk_rows=8, progress=False)
    with pytest.raises(ValueError, match=r"out.jsonl.parts' holds the parts of a run with other inputs"):
        predict_files(model_dir, [source], tmp_path / "out.jsonl", chunk_rows=4, progress=False)


@pytest.mark.parametrize(
    ("setup", "pattern"),
    [
        (
            lambda t: _write(t / "a.jsonl", [{"id": 1, "body": "x"}]),
            r"has no column 'text'; its columns are \['id', 'body'\]",
        ),
        (lambda t: (t / "a.jsonl").write_text("") and None or (t / "a.jsonl"), "has no rows to predict"),
        (lambda t: _write(t / "a.csv", [{"text": "a"}]).with_suffix(".xml"), r"reads .csv, .tsv"),
        (lambda t: _write(t / "a.jsonl", [{"text": None}]), r"the 'text' value of row 0 is empty"),
    ],
)
def test_bad_files_get_one_clear_line(tmp_path, setup, pattern, capsys):
    model_dir, _ = _model(tmp_path, "single_label_classification")
    path = setup(tmp_path)
    if path.suffix == ".xml":
        path.write_text("<a/>")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["predict", str(model_dir), str(path), "--output", str(tmp_path / "out.jsonl")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("hf-kd: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    import re

    assert re.search(pattern, lines[0]), lines[0]


def test_a_model_without_label_names_is_refused(tmp_path, capsys):
    model = tiny_bert(num_labels=3)
    folder = save_model_dir(model, tmp_path / "nolabels", tmp_path)
    source = _write(tmp_path / "a.jsonl", _rows(3))
    with pytest.raises(SystemExit):
        main(["predict", folder, str(source), "--output", str(tmp_path / "o.jsonl")])
    assert "has no label names" in capsys.readouterr().err


def test_existing_output_needs_overwrite(tmp_path):
    model_dir, _ = _model(tmp_path, "single_label_classification")
    source = _write(tmp_path / "a.jsonl", _rows(3))
    (tmp_path / "o.jsonl").write_text("keep")
    with pytest.raises(ValueError, match="exists; pass --overwrite"):
        predict_files(model_dir, [source], tmp_path / "o.jsonl", progress=False)
    predict_files(model_dir, [source], tmp_path / "o.jsonl", overwrite=True, progress=False)
    assert len(_read(tmp_path / "o.jsonl")) == 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_under_accelerate_launch_give_the_one_process_output_in_input_order(tmp_path):
    model_dir, _ = _model(tmp_path, "multi_label_classification")
    source = _write(tmp_path / "a.jsonl", _rows(70))
    predict_files(model_dir, [source], tmp_path / "one.jsonl", chunk_rows=8, progress=False)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(MULTI_PROCESS_CONFIG)]
    launch += ["--main_process_port", str(_free_port()), "-m", "hf_kd.cli", "predict", str(model_dir), str(source)]
    launch += ["--output", str(tmp_path / "two.jsonl"), "--chunk_rows", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(launch, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = _read(tmp_path / "one.jsonl"), _read(tmp_path / "two.jsonl")
    assert [r["id"] for r in two] == [r["id"] for r in one]
    for a, b in zip(one, two):
        assert a["prediction"] == b["prediction"]
        for name in a["probabilities"]:
            assert abs(a["probabilities"][name] - b["probabilities"][name]) < 1e-5


# ---------------------------------------------------------------------------------------------- serving


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_export_folder_meets_the_serving_contract(tmp_path, quantize):
    import onnx
    import onnxruntime

    model_dir, _ = _model(tmp_path, "multi_label_classification")
    export_onnx(model_dir, tmp_path / "onnx", quantize=quantize)
    assert serving_contract_problems(tmp_path / "onnx") == []
    config = json.loads((tmp_path / "onnx" / "config.json").read_text(encoding="utf-8"))
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["problem_type"] == "multi_label_classification" and config["id2label"]["0"] == "胸痛"
    graph = onnx.load(str(tmp_path / "onnx" / "model.onnx")).graph
    assert {i.name for i in graph.input} >= {"input_ids", "attention_mask"} and graph.output[0].name == "logits"
    # What an engine does: feed only input_ids and attention_mask (and token_type_ids) at new batch and length.
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = {i.name: np.ones((5, 11), dtype=np.int64) for i in session.get_inputs()}
    assert session.run(["logits"], feed)[0].shape == (5, 3)


def test_serving_contract_names_what_is_broken(tmp_path):
    model_dir, _ = _model(tmp_path, "single_label_classification")
    export_onnx(model_dir, tmp_path / "onnx")
    (tmp_path / "onnx" / "tokenizer.json").unlink()
    assert serving_contract_problems(tmp_path / "onnx") == ["no tokenizer.json"]
    export_onnx(model_dir, tmp_path / "onnx2")
    config = json.loads((tmp_path / "onnx2" / "config.json").read_text())
    del config["architectures"]
    (tmp_path / "onnx2" / "config.json").write_text(json.dumps(config))
    assert serving_contract_problems(tmp_path / "onnx2") == ["config.json has no architectures"]


def test_triton_repository_holds_the_model_labels_and_a_config_of_its_inputs(tmp_path, capsys):
    model_dir, _ = _model(tmp_path, "binary")
    assert (
        main(["export", str(model_dir), "--output", str(tmp_path / "onnx"), "--triton", str(tmp_path / "repo")]) == 0
    )
    printed = json.loads(capsys.readouterr().out)
    folder = Path(printed["triton"])
    assert (folder / "1" / "model.onnx").read_bytes() == (tmp_path / "onnx" / "model.onnx").read_bytes()
    assert (folder / "labels.txt").read_text().splitlines() == ["routine", "urgent"]
    text = (folder / "config.pbtxt").read_text()
    info = json.loads((tmp_path / "onnx" / "hf_kd_export.json").read_text())
    for name in info["inputs"]:
        assert f'name: "{name}" data_type: TYPE_INT64 dims: [ -1 ]' in text
    assert 'backend: "onnxruntime"' in text and "dynamic_batching" in text and "dims: [ 2 ]" in text
    assert 'key: "intra_op_thread_count"' in text
    assert (folder / "client" / "tokenizer.json").is_file()
