"""Issue 15: vocabulary pruning, narrow students, ONNX export (and its pipeline stage), on tiny models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import WORDS, make_tokenizer, save_model_dir, tiny_bert

from hf_kd.training.vocabulary import prune_embeddings, prune_tokenizer, prune_vocabulary, pruned_token_ids

CORPUS = ["the patient had fever", "chest pain", "the cancer cell growth"]
CHARS = ["b", "c", "d", "e", "o", "r", "##b", "##c", "##d", "##e", "##o", "##r"]


# ---------------------------------------------------------------------------------------------- vocabulary pruning


def test_pruned_tokenizer_tokenizes_the_corpus_into_the_same_tokens_renumbered(tmp_path):
    tokenizer = make_tokenizer(tmp_path / "tok")
    kept = pruned_token_ids(tokenizer, CORPUS, extra_texts=["cough"], keep_characters=False)
    pruned = prune_tokenizer(tokenizer, kept)

    assert len(pruned) == len(kept) < len(tokenizer)
    for text in [*CORPUS, "cough"]:
        before, after = tokenizer(text)["input_ids"], pruned(text)["input_ids"]
        assert after == [kept.index(i) for i in before]  # new id i is old id kept[i]
        assert pruned.convert_ids_to_tokens(after) == tokenizer.convert_ids_to_tokens(before)
    # Special tokens are kept and renumbered; the label name's token is kept.
    assert pruned.cls_token == "[CLS]" and pruned.cls_token_id == kept.index(tokenizer.cls_token_id)
    assert pruned.pad_token_id == kept.index(tokenizer.pad_token_id)
    assert "cough" in pruned.get_vocab() and "tumor" not in pruned.get_vocab()
    # A word of the original vocabulary that the corpus never used becomes [UNK] (without character pieces).
    assert pruned.convert_ids_to_tokens(pruned("tumor", add_special_tokens=False)["input_ids"]) == ["[UNK]"]
    # The pruned tokenizer saves and reloads as itself.
    pruned.save_pretrained(tmp_path / "pruned")
    from transformers import AutoTokenizer

    assert (
        AutoTokenizer.from_pretrained(tmp_path / "pruned")("chest pain")["input_ids"]
        == pruned("chest pain")["input_ids"]
    )


def test_unseen_words_are_spelled_from_the_kept_character_pieces(tmp_path):
    tokenizer = make_tokenizer(tmp_path / "tok", [*WORDS, *CHARS])
    with_chars = prune_tokenizer(tokenizer, pruned_token_ids(tokenizer, CORPUS))
    without = prune_tokenizer(tokenizer, pruned_token_ids(tokenizer, CORPUS, keep_characters=False))
    # "bored" is not in the corpus: the original spells it b ##o ##r ##ed; "##ed" was never used, so the pruned
    # tokenizer spells it from the kept pieces (never [UNK]), and without character pieces it is [UNK].
    assert tokenizer.tokenize("bored") == ["b", "##o", "##r", "##ed"]
    assert with_chars.tokenize("bored") == ["b", "##o", "##r", "##e", "##d"]
    assert without.tokenize("bored") == ["[UNK]"]
    assert with_chars.tokenize("the patient") == tokenizer.tokenize("the patient")


def test_pruned_embeddings_give_the_same_outputs(tmp_path):
    tokenizer = make_tokenizer(tmp_path / "tok")
    model = tiny_bert(num_labels=3, vocab_size=len(tokenizer)).eval()
    original = model.get_input_embeddings().weight.detach().clone()
    batch = tokenizer(CORPUS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits

    pruned_model, pruned, kept = prune_vocabulary(model, tokenizer, CORPUS, keep_characters=False)
    assert pruned_model.config.vocab_size == len(kept) == len(pruned)
    assert pruned_model.config.hf_kd_pruned_vocabulary == {"original_vocab_size": len(tokenizer)}
    assert pruned_model.config.pad_token_id == kept.index(0)
    assert torch.equal(pruned_model.get_input_embeddings().weight, original[kept])
    with torch.no_grad():
        actual = pruned_model(**pruned(CORPUS, padding=True, return_tensors="pt")).logits
    assert torch.allclose(actual, expected, atol=1e-6)


def test_pruning_refuses_what_it_cannot_do(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tokenizer = make_tokenizer(tmp_path / "tok")
    kept = pruned_token_ids(tokenizer, CORPUS)
    without_sep = [i for i in kept if i != tokenizer.sep_token_id]
    with pytest.raises(ValueError, match=r"special token.*\[SEP\]"):
        prune_tokenizer(tokenizer, without_sep)
    with pytest.raises(ValueError, match="increasing"):
        prune_tokenizer(tokenizer, list(reversed(kept)))
    with pytest.raises(ValueError, match="text 1 is a float"):
        pruned_token_ids(tokenizer, ["chest pain", float("nan")])
    bpe = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE(vocab={"a": 0, "b": 1}, merges=[])))
    with pytest.raises(ValueError, match="'BPE'"):
        pruned_token_ids(bpe, CORPUS)
    model = tiny_bert(vocab_size=len(tokenizer))
    with pytest.raises(ValueError, match="padding token id 0"):
        prune_embeddings(model, [i for i in kept if i != 0])


# ---------------------------------------------------------------------------------------------- narrow students


def _teacher(heads: int = 4, hidden: int = 32, layers: int = 3, seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=40,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=32,
        num_labels=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertForSequenceClassification(config).eval()


def test_slice_init_keeps_the_largest_heads_and_the_first_coordinates():
    from hf_kd.training.narrow import narrow_student_from_teacher

    teacher = _teacher()  # 4 heads of 8
    layer = teacher.bert.encoder.layer[2].attention
    with torch.no_grad():  # make heads 1 and 3 the largest by their output projection's norm
        layer.output.dense.weight[:, 8:16] *= 10
        layer.output.dense.weight[:, 24:32] *= 5
    student = narrow_student_from_teacher(teacher, hidden_size=16, layers=[0, 2], init="slice")
    config = student.config
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (16, 2, 2)
    assert config.intermediate_size == 64 and config.hf_kd_teacher_layers == [0, 2]

    source, target = teacher.bert, student.bert
    assert torch.equal(target.embeddings.word_embeddings.weight, source.embeddings.word_embeddings.weight[:, :16])
    assert torch.equal(target.embeddings.LayerNorm.weight, source.embeddings.LayerNorm.weight[:16])
    rows = torch.cat([torch.arange(8, 16), torch.arange(24, 32)])
    query = target.encoder.layer[1].attention.self.query
    assert torch.equal(query.weight, layer.self.query.weight[rows][:, :16])
    assert torch.equal(query.bias, layer.self.query.bias[rows])
    output = target.encoder.layer[1].attention.output.dense
    assert torch.equal(output.weight, layer.output.dense.weight[:16][:, rows])
    assert torch.equal(student.classifier.weight, teacher.classifier.weight[:, :16])
    # Feed-forward neurons are kept by the product of their input and output norms.
    inner, outer = teacher.bert.encoder.layer[0].intermediate.dense, teacher.bert.encoder.layer[0].output.dense
    scores = inner.weight.norm(dim=1) * outer.weight.norm(dim=0)
    neurons = torch.sort(torch.topk(scores, 64).indices).values
    assert torch.equal(target.encoder.layer[0].intermediate.dense.weight, inner.weight[neurons][:, :16])


def test_pca_basis_is_orthonormal_and_keeps_more_of_the_teacher_states_than_a_slice():
    from hf_kd.training.narrow import narrow_student_from_teacher, residual_basis

    teacher = _teacher()
    generator = torch.Generator().manual_seed(0)
    calibration = {"input_ids": torch.randint(5, 40, (16, 12), generator=generator)}
    calibration["attention_mask"] = torch.ones_like(calibration["input_ids"])
    basis = residual_basis(teacher, calibration, 16, [0, 2])
    assert basis.shape == (16, 32)
    assert torch.allclose(basis @ basis.T, torch.eye(16), atol=1e-5)
    with torch.no_grad():
        states = teacher(**calibration, output_hidden_states=True).hidden_states
    pooled = torch.cat([states[0], states[1], states[3]]).reshape(-1, 32)
    assert (pooled @ basis.T).norm() > pooled[:, :16].norm()  # PCA keeps at least a slice's energy

    student = narrow_student_from_teacher(teacher, 16, layers=[0, 2], init="pca", calibration=calibration)
    assert student.config.hf_kd_narrow_init == "pca"
    expected = teacher.bert.embeddings.word_embeddings.weight @ basis.T
    assert torch.allclose(student.bert.embeddings.word_embeddings.weight, expected, atol=1e-6)
    with torch.no_grad():
        assert student(**calibration).logits.shape == (16, 3)


def test_random_init_takes_no_teacher_weight_and_follows_the_seed():
    from hf_kd.training.narrow import narrow_student_from_teacher

    teacher = _teacher()
    a = narrow_student_from_teacher(teacher, 16, init="random", seed=1)
    b = narrow_student_from_teacher(teacher, 16, init="random", seed=1)
    c = narrow_student_from_teacher(teacher, 16, init="random", seed=2)
    weight = lambda m: m.bert.embeddings.word_embeddings.weight  # noqa: E731
    assert torch.equal(weight(a), weight(b)) and not torch.equal(weight(a), weight(c))
    assert not torch.equal(weight(a), weight(teacher)[:, :16])
    assert a.config.num_hidden_layers == 2  # half the teacher's 3 layers, rounded up


def test_narrow_students_refuse_bad_settings():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    from hf_kd.training.narrow import narrow_student_from_teacher

    teacher = _teacher()
    with pytest.raises(ValueError, match="below the teacher's 32, got 32"):
        narrow_student_from_teacher(teacher, 32, init="slice")
    with pytest.raises(ValueError, match="multiple of 8"):
        narrow_student_from_teacher(teacher, 12, num_attention_heads=2, init="slice")
    with pytest.raises(ValueError, match="calibration"):
        narrow_student_from_teacher(teacher, 16, init="pca")
    with pytest.raises(ValueError, match="'svd'"):
        narrow_student_from_teacher(teacher, 16, init="svd")
    with pytest.raises(ValueError, match=r"layers.*\[5\]"):
        narrow_student_from_teacher(teacher, 16, layers=[5], init="slice")
    distil = DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=40, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=32)
    )
    with pytest.raises(ValueError, match="'distilbert'"):
        narrow_student_from_teacher(distil, 16, init="slice")


# ---------------------------------------------------------------------------------------------- ONNX export


def _saved(tmp_path: Path, **config) -> tuple[str, object]:
    threshold = config.pop("threshold", None)
    model = tiny_bert(**config).eval()
    if threshold is not None:
        model.config.hf_kd_threshold = threshold
    return save_model_dir(model, tmp_path / "model", tmp_path), model


TEXTS = ["the patient fever", "cough pain chest acute chronic the a with signal", "tumor"]


def test_onnx_export_matches_pytorch_at_any_batch_and_length(tmp_path):
    from hf_kd.export.onnx import export_onnx
    from hf_kd.export.onnx_classifier import EXPORT_FILE, OnnxClassifier

    model_dir, model = _saved(tmp_path, num_labels=3, id2label={0: "low", 1: "mid", 2: "high"})
    info = export_onnx(model_dir, tmp_path / "onnx")
    assert info["task"] == "single_label_classification" and info["label_names"] == ["low", "mid", "high"]
    written = json.loads((tmp_path / "onnx" / EXPORT_FILE).read_text())
    assert written["quantize"] is None
    from hf_kd.evaluation.model_stats import cpu_description

    assert written["built_on_cpu"] == cpu_description()  # int8 speed depends on it: the export says where it was made
    classifier = OnnxClassifier.from_pretrained(tmp_path / "onnx", num_threads=1)
    for texts in (TEXTS, TEXTS[:1], TEXTS * 4):  # batch sizes 3, 1, 12 and other lengths than the traced ones
        encoded = classifier.tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            expected = model(**encoded).logits.numpy()
        np.testing.assert_allclose(classifier.logits(texts), expected, atol=1e-5)
        assert classifier.predict(texts) == [["low", "mid", "high"][i] for i in expected.argmax(1)]


def test_int8_export_is_smaller_and_close(tmp_path):
    from hf_kd.export.onnx import export_onnx
    from hf_kd.export.onnx_classifier import OnnxClassifier

    model_dir, model = _saved(tmp_path, num_labels=3, hidden_size=64)
    fp32 = export_onnx(model_dir, tmp_path / "fp32")
    int8 = export_onnx(model_dir, tmp_path / "int8", quantize="int8")
    assert int8["quantize"] == "int8" and int8["size_mb"] < 0.6 * fp32["size_mb"]
    encoded = make_tokenizer(tmp_path / "tok")(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**encoded).logits.numpy()
    logits = OnnxClassifier.from_pretrained(tmp_path / "int8").logits(TEXTS)
    assert not np.allclose(logits, expected, atol=1e-7)  # the weights really are quantized
    np.testing.assert_allclose(logits, expected, atol=0.05)


TASKS = {
    "single_label": ({"num_labels": 3, "id2label": {0: "low", 1: "mid", 2: "high"}}, None),
    "multi_label": (
        {"num_labels": 3, "problem_type": "multi_label_classification", "id2label": {0: "a", 1: "b", 2: "c"}},
        0.47,
    ),
    "binary": ({"num_labels": 2, "id2label": {0: "routine", 1: "urgent"}, "seed": 3}, 0.2),
    "regression": ({"num_labels": 1, "problem_type": "regression"}, None),
}


def _pytorch_predictions(logits: np.ndarray, task: str, names: list[str], threshold: float | None) -> list:
    """The predictions the PyTorch model's logits give, written out per task (not through hf_kd)."""
    if task == "multi_label_classification":
        return [[names[j] for j in range(len(names)) if 1 / (1 + np.exp(-row[j])) >= threshold] for row in logits]
    if task == "binary":
        positive = np.exp(logits[:, 1]) / np.exp(logits).sum(1)
        return [names[1] if p >= threshold else names[0] for p in positive]
    if task == "regression":
        return [float(v) for v in logits[:, 0]]
    return [names[i] for i in logits.argmax(1)]


@pytest.mark.parametrize("task", list(TASKS))
def test_fused_export_holds_fused_operators_and_matches_pytorch_for_every_task(tmp_path, task):
    from hf_kd.export.onnx import export_onnx, fused_operator_counts
    from hf_kd.export.onnx_classifier import EXPORT_FILE, OnnxClassifier

    config, threshold = TASKS[task]
    model_dir, model = _saved(tmp_path, **config, threshold=threshold)
    info = export_onnx(model_dir, tmp_path / "onnx")
    # Counted in the saved graph: one fused attention, two residual LayerNorms and one bias-GELU per layer.
    counts = fused_operator_counts(tmp_path / "onnx" / "model.onnx")
    assert counts == {"Attention": 2, "BiasGelu": 2, "EmbedLayerNormalization": 1, "SkipLayerNormalization": 4}
    assert info["fused_operators"] == counts
    assert json.loads((tmp_path / "onnx" / EXPORT_FILE).read_text())["fused_operators"] == counts
    classifier = OnnxClassifier.from_pretrained(tmp_path / "onnx")
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    assert classifier.label_names == names and classifier.info["threshold"] == threshold
    for texts in (TEXTS, TEXTS * 4):
        encoded = classifier.tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            expected = model(**encoded).logits.numpy()
        np.testing.assert_allclose(classifier.logits(texts), expected, atol=1e-5)
        predictions = classifier.predict(texts)
        if task == "regression":
            np.testing.assert_allclose(predictions, expected[:, 0], atol=1e-5)
        else:
            assert predictions == _pytorch_predictions(expected, info["task"], names, threshold)


def test_static_int8_is_calibrated_on_texts_and_close_to_pytorch(tmp_path):
    from hf_kd.export.onnx import export_onnx, fused_operator_counts
    from hf_kd.export.onnx_classifier import OnnxClassifier

    model_dir, model = _saved(tmp_path, num_labels=3, hidden_size=64)
    with pytest.raises(ValueError, match="calibration_texts"):
        export_onnx(model_dir, tmp_path / "static", quantize="int8-static")
    static = export_onnx(model_dir, tmp_path / "static", quantize="int8-static", calibration_texts=TEXTS * 10)
    dynamic = export_onnx(model_dir, tmp_path / "dynamic", quantize="int8")
    import onnx

    ops = {node.op_type for node in onnx.load(static["path"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # activations quantized at calibrated ranges
    assert "DynamicQuantizeLinear" not in ops and static["quantize"] == "int8-static"
    # Dynamic int8 quantizes the fused attention itself.
    assert fused_operator_counts(dynamic["path"]).get("QAttention") == 2
    encoded = make_tokenizer(tmp_path / "tok")(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**encoded).logits.numpy()
    for folder in ("static", "dynamic"):
        logits = OnnxClassifier.from_pretrained(tmp_path / folder).logits(TEXTS)
        assert not np.allclose(logits, expected, atol=1e-7)
        np.testing.assert_allclose(logits, expected, atol=0.05)


def test_export_errors_name_the_bad_value(tmp_path):
    from hf_kd.export.onnx import export_onnx
    from hf_kd.export.onnx_classifier import OnnxClassifier

    model_dir, _ = _saved(tmp_path)
    with pytest.raises(ValueError, match="'int4'"):
        export_onnx(model_dir, tmp_path / "x", quantize="int4")
    with pytest.raises(ValueError, match="no 'model.onnx'"):
        OnnxClassifier.from_pretrained(tmp_path)


def test_cli_export_writes_a_runnable_int8_folder(tmp_path):
    from hf_kd.export.onnx_classifier import OnnxClassifier

    model_dir, _ = _saved(tmp_path, num_labels=3)
    out = tmp_path / "deploy"
    result = subprocess.run(
        [sys.executable, "-m", "hf_kd.cli", "export", model_dir, "--output", str(out), "--quantize", "int8"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    printed = json.loads(result.stdout)
    assert printed["quantize"] == "int8" and Path(printed["path"]) == out / "model.onnx"
    assert len(OnnxClassifier.from_pretrained(out).predict(TEXTS)) == 3
    bad = subprocess.run(
        [sys.executable, "-m", "hf_kd.cli", "export", str(tmp_path / "missing"), "--output", str(out)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("hf-kd: error:") and "missing" in bad.stderr


# ---------------------------------------------------------------------------------------------- in the pipeline


def test_pipeline_prunes_narrows_and_exports_the_student(recipe, tmp_path):
    from hf_kd.export.onnx_classifier import OnnxClassifier
    from hf_kd.pipeline.run import run_pipeline
    from hf_kd.recipe.config import DistillationPipelineConfig

    recipe["student"].update(
        {"prune_vocabulary": True, "hidden_size": 16, "narrow_init": "pca", "hidden_loss_weight": 1.0}
    )
    recipe["evaluation"]["export"] = "fp32"
    result = run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    root = Path(recipe["output_dir"])
    student_dir = Path(result["student_model"])
    student = json.loads((student_dir / "config.json").read_text())
    teacher = json.loads((Path(result["teacher_model"]) / "config.json").read_text())
    assert student["hidden_size"] == 16 and student["hf_kd_narrow_init"] == "pca"
    assert student["vocab_size"] < teacher["vocab_size"]
    assert student["hf_kd_pruned_vocabulary"] == {"original_vocab_size": teacher["vocab_size"]}

    # The student's saved tokenizer is the pruned one. The teacher shares its tokenization, so it reads the pruned
    # ids too (no teacher_* columns), through its embedding rows of the kept tokens: the same logits as the full
    # teacher on the same text.
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(student_dir)) == student["vocab_size"]
    import datasets

    cached = datasets.load_from_disk(str(root / "teacher_logits" / "dataset"))
    assert max(max(ids) for ids in cached["input_ids"]) < student["vocab_size"]
    assert not any(c.startswith("teacher_") and c != "teacher_logits" for c in cached.column_names)
    texts = [
        json.loads(line)["text"] for line in (Path(recipe["data"]["path"]) / "train.jsonl").read_text().splitlines()
    ]
    full = AutoModelForSequenceClassification.from_pretrained(result["teacher_model"]).eval()
    encoded = AutoTokenizer.from_pretrained(result["teacher_model"])(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = full(**encoded).logits.numpy()
    assert np.allclose(np.asarray(cached["teacher_logits"]), expected, atol=1e-5)

    # The export is evaluated at the student's threshold and matches the student (fp32).
    report = json.loads((root / "report.json").read_text())
    exported, torch_student = report["exported"]["metrics"], report["student"]["metrics"]
    for key in ("validation_micro_f1", "test_micro_f1"):
        assert exported[key] == pytest.approx(torch_student[key], abs=1e-9)
    assert report["exported"]["format"] == "ONNX fp32"
    assert report["exported_ratios"]["size"] == pytest.approx(
        report["exported"]["size_mb"] / report["teacher"]["size_mb"]
    )
    table = (root / "report.md").read_text()
    assert "Student, ONNX fp32" in table and "Exported / teacher" in table
    classifier = OnnxClassifier.from_pretrained(root / "evaluation" / "export")
    assert classifier.label_names == list(student["id2label"].values())
    assert classifier.threshold == pytest.approx(student["hf_kd_threshold"])


def test_recipe_refuses_bad_deploy_fields(recipe):
    from hf_kd.recipe.config import DistillationPipelineConfig

    for section, values, message in (
        ("student", {"narrow_init": "svd"}, "narrow_init.*'svd'"),
        ("evaluation", {"export": "int4"}, "evaluation.export.*'int4'"),
        ("student", {"intermediate_size": 64}, "without `student.hidden_size`"),
        ("student", {"hidden_size": 0}, "hidden_size.*0"),
    ):
        bad = json.loads(json.dumps(recipe))
        bad[section].update(values)
        with pytest.raises(ValueError, match=message):
            DistillationPipelineConfig.from_dict(bad)
