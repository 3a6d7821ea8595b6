"""Teacher inputs: cached logits, different tokenizers, intermediate layers and unlabeled data."""

from __future__ import annotations

import copy

import datasets
import pytest
import torch
from conftest import MINILM, WORDS, CountingTeacher, make_tokenizer, tiny_bert
from conftest import args_for as _args_for
from transformers import BertConfig, BertForSequenceClassification

from hf_kd import (
    DistillationDataCollator,
    DistillationTrainer,
    cache_teacher_logits,
    tokenize_for_distillation,
)
from hf_kd.training.teacher_cache import teacher_fingerprint

TEXTS = [
    "the patient fever cough",
    "acute chest pain",
    "tumor cell growth signal immune death",
    "chronic cough",
    "el paciente con fiebre y tos",
    "dolor de la tumor",
    "a cancer cell",
    "fever",
] * 2


def args_for(path, **kwargs):
    return _args_for(path, output_subdir="", **{"num_train_epochs": 2, "learning_rate": 5e-3, **kwargs})


def text_dataset(kind="multi", n_labels=3, unlabeled=()):
    g = torch.Generator().manual_seed(0)
    if kind == "multi":
        labels = torch.randint(0, 2, (len(TEXTS), n_labels), generator=g).float().tolist()
        for i in unlabeled:
            labels[i] = [-100.0] * n_labels
    else:
        labels = torch.randint(0, n_labels, (len(TEXTS),), generator=g).tolist()
        for i in unlabeled:
            labels[i] = -100
    return datasets.Dataset.from_dict({"text": TEXTS, "labels": labels})


@pytest.fixture
def tok(tmp_path):
    return make_tokenizer(tmp_path / "tok")


@pytest.fixture
def other_tok(tmp_path):
    # Another vocabulary: fewer whole words, so words split differently.
    words = [w for w in WORDS if w not in ("patient", "fever", "paciente")] + [
        "pat",
        "##ient",
        "fe",
        "##ver",
        "##ente",
    ]
    return make_tokenizer(tmp_path / "other", words)


def vocab_size(tokenizer):
    return len(tokenizer.get_vocab())


# ----------------------------------------------------------------------------- cache


def test_cached_logits_equal_the_teacher_outputs_whatever_the_padding(tmp_path, tok):
    teacher = tiny_bert(problem_type="multi_label_classification", vocab_size=vocab_size(tok), seed=1).eval()
    ds = tokenize_for_distillation(text_dataset(), tok, remove_text=True)
    cached = cache_teacher_logits(teacher, ds, batch_size=3)
    for i in range(len(ds)):
        ids = torch.tensor([ds[i]["input_ids"]])
        with torch.no_grad():
            expected = teacher(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]
        torch.testing.assert_close(torch.tensor(cached[i]["teacher_logits"]), expected, rtol=1e-4, atol=1e-5)


def test_cache_is_reused_for_the_same_teacher_and_recomputed_for_a_changed_one(tmp_path, tok):
    base = tiny_bert(vocab_size=vocab_size(tok), seed=1)
    teacher = CountingTeacher(base)
    ds = tokenize_for_distillation(text_dataset(), tok, remove_text=True)
    first = cache_teacher_logits(teacher, ds, batch_size=4, cache_dir=tmp_path / "cache")
    calls = teacher.model_calls = teacher.calls
    assert calls > 0
    again = cache_teacher_logits(teacher, ds, batch_size=4, cache_dir=tmp_path / "cache")
    assert teacher.calls == calls  # read back from the datasets cache
    assert again["teacher_logits"] == first["teacher_logits"]

    changed = copy.deepcopy(base)
    with torch.no_grad():
        changed.classifier.bias.add_(1.0)
    assert teacher_fingerprint(changed) != teacher_fingerprint(base)
    counting_changed = CountingTeacher(changed)
    recomputed = cache_teacher_logits(counting_changed, ds, batch_size=4, cache_dir=tmp_path / "cache")
    assert counting_changed.calls > 0
    diff = torch.tensor(recomputed["teacher_logits"]) - torch.tensor(first["teacher_logits"])
    torch.testing.assert_close(diff, torch.ones_like(diff), rtol=1e-4, atol=1e-4)


def test_cache_sorts_by_length_so_batches_are_not_padded_to_the_longest(tok):
    teacher = CountingTeacher(tiny_bert(vocab_size=vocab_size(tok), seed=1))
    widths = []
    original = teacher.forward

    def spy(**kwargs):
        widths.append(kwargs["input_ids"].shape[1])
        return original(**kwargs)

    teacher.forward = spy
    ds = tokenize_for_distillation(text_dataset(), tok, remove_text=True)
    cache_teacher_logits(teacher, ds, batch_size=4)
    lengths = sorted(len(x) for x in ds["input_ids"])
    assert widths == [max(lengths[i : i + 4]) for i in range(0, len(lengths), 4)]


def _train(tmp_path, name, ds, teacher, **kwargs):
    student = tiny_bert(problem_type="multi_label_classification", vocab_size=len(WORDS) + 5, seed=0)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        train_dataset=ds,
        args=args_for(tmp_path / name, **kwargs),
        data_collator=DistillationDataCollator(make_tokenizer(tmp_path / "c")),
    )
    trainer.train()
    return student.state_dict(), trainer


def test_training_from_cached_logits_gives_the_same_student_as_the_online_teacher(tmp_path, tok):
    teacher = tiny_bert(problem_type="multi_label_classification", vocab_size=vocab_size(tok), seed=1)
    ds = tokenize_for_distillation(text_dataset(), tok, remove_text=True)
    online, _ = _train(tmp_path, "online", ds, teacher)
    cached_ds = cache_teacher_logits(teacher, ds, batch_size=8)
    cached, _ = _train(tmp_path, "cached", cached_ds, None)
    for name in online:
        torch.testing.assert_close(cached[name], online[name], rtol=1e-4, atol=1e-5, msg=name)


def test_precompute_option_runs_the_teacher_once_not_every_step(tmp_path, tok):
    teacher = CountingTeacher(tiny_bert(problem_type="multi_label_classification", vocab_size=vocab_size(tok)))
    ds = tokenize_for_distillation(text_dataset(), tok, remove_text=True)
    _, trainer = _train(tmp_path, "pre", ds, teacher, precompute_teacher_logits=True, num_train_epochs=3)
    assert teacher.examples == len(ds)
    assert "teacher_logits" in trainer.train_dataset.column_names


def test_no_teacher_and_no_cached_column_is_a_clear_error(tmp_path, tok):
    ds = tokenize_for_distillation(text_dataset(), tok, remove_text=True)
    with pytest.raises(ValueError, match="teacher_logits.*teacher_model|teacher_model.*teacher_logits"):
        _train(tmp_path, "none", ds, None)


# ----------------------------------------------------------------------------- unlabeled data


def test_dataset_without_labels_is_pure_distillation(tmp_path, tok):
    teacher = tiny_bert(problem_type="multi_label_classification", vocab_size=vocab_size(tok), seed=1)
    with torch.no_grad():
        teacher.classifier.weight.mul_(50.0)  # confident teacher, so there is something to learn
    ds = tokenize_for_distillation(text_dataset().remove_columns("labels"), tok, remove_text=True)
    student = tiny_bert(problem_type="multi_label_classification", vocab_size=vocab_size(tok))
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        train_dataset=ds,
        args=args_for(tmp_path, alpha=0.5),
        processing_class=tok,
    )
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert all(e["hard_loss"] == 0.0 and e["distill_loss"] > 0 for e in logged)
    assert logged[-1]["distill_loss"] < logged[0]["distill_loss"]


def test_unlabeled_single_label_rows_get_only_the_distillation_term(tmp_path, tok):
    teacher = tiny_bert(problem_type="single_label_classification", vocab_size=vocab_size(tok), seed=1)
    student = tiny_bert(problem_type="single_label_classification", vocab_size=vocab_size(tok))
    ds = tokenize_for_distillation(text_dataset("single", unlabeled=(0, 1, 2, 3)), tok, remove_text=True)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args_for(tmp_path, alpha=0.5))
    batch = DistillationDataCollator(tok)([ds[i] for i in range(8)])
    student.train()
    loss = trainer.compute_loss(student, dict(batch))
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    with torch.no_grad():
        s, t = student(**inputs).logits, teacher(**inputs).logits
    from hf_kd.training.losses import softmax_kd_loss

    hard = torch.nn.functional.cross_entropy(s[4:], batch["labels"][4:])
    torch.testing.assert_close(loss, 0.5 * hard + 0.5 * softmax_kd_loss(s, t, 2.0))


# ----------------------------------------------------------------------------- different tokenizers


def test_teacher_reads_its_own_tokenization(tmp_path, tok, other_tok):
    teacher = CountingTeacher(tiny_bert(vocab_size=vocab_size(other_tok), hidden_size=48, seed=1))
    ds = tokenize_for_distillation(text_dataset(), tok, teacher_tokenizer=other_tok, remove_text=True)
    assert {"teacher_input_ids", "word_ids", "teacher_word_ids"} <= set(ds.column_names)
    seen = []
    original = teacher.forward

    def spy(**kwargs):
        seen.append(kwargs["input_ids"].clone())
        return original(**kwargs)

    teacher.forward = spy
    student = tiny_bert(vocab_size=vocab_size(tok))
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        train_dataset=ds,
        args=args_for(tmp_path, num_train_epochs=1),
        processing_class=tok,
        teacher_processing_class=other_tok,
    )
    trainer.train()
    teacher_rows = {tuple(r) for r in ds["teacher_input_ids"]}
    for batch in seen:
        for row in batch.tolist():
            assert tuple(x for x in row if x != other_tok.pad_token_id) in teacher_rows


def test_student_ids_are_never_fed_to_a_teacher_with_another_tokenizer(tmp_path, tok, other_tok):
    ds = tokenize_for_distillation(text_dataset(), tok, remove_text=True)  # no teacher columns
    trainer = DistillationTrainer(
        model=tiny_bert(vocab_size=vocab_size(tok)),
        teacher_model=tiny_bert(vocab_size=vocab_size(tok), seed=1),  # same size, different vocabulary
        train_dataset=ds,
        args=args_for(tmp_path),
        processing_class=tok,
        teacher_processing_class=other_tok,
    )
    with pytest.raises(ValueError, match="teacher's tokenizer/vocabulary differs"):
        trainer.train()


def test_cross_lingual_teacher_reads_another_column(tmp_path, tok):
    ds = datasets.Dataset.from_dict(
        {"text_es": ["el paciente con fiebre", "dolor"], "text_en": ["the patient fever", "pain"], "labels": [0, 1]}
    )
    out = tokenize_for_distillation(
        ds, tok, teacher_tokenizer=tok, text_column="text_es", teacher_text_column="text_en"
    )
    assert out[0]["teacher_input_ids"] == tok("the patient fever")["input_ids"]
    assert out[0]["input_ids"] == tok("el paciente con fiebre")["input_ids"]
    assert "word_ids" not in out.column_names  # different texts: no word alignment


# ----------------------------------------------------------------------------- intermediate layers


def test_hidden_loss_across_tokenizers_and_widths_trains_projection_not_saved(tmp_path, tok, other_tok):
    teacher = tiny_bert(vocab_size=vocab_size(other_tok), hidden_size=48, layers=4, seed=1)
    student = tiny_bert(vocab_size=vocab_size(tok), hidden_size=32, layers=2)
    ds = tokenize_for_distillation(text_dataset(), tok, teacher_tokenizer=other_tok, remove_text=True)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        train_dataset=ds,
        args=args_for(tmp_path, hidden_loss_weight=1.0, alpha=0.5, num_train_epochs=3),
        processing_class=tok,
        teacher_processing_class=other_tok,
    )
    trainer.train()
    assert trainer.intermediate.layer_mapping == [2, 4]
    proj = trainer.intermediate.projections[0]
    assert proj.weight.shape == (48, 32)
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert all("hidden_loss" in e for e in logged)
    assert logged[-1]["hidden_loss"] < logged[0]["hidden_loss"]
    trainer.save_model(str(tmp_path / "saved"))
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "saved" / "model.safetensors"))
    own = {k for k in student.state_dict() if not k.startswith("hf_kd_projections.")}
    assert set(saved) == own and len(own) < len(student.state_dict())  # the projections are not saved


def test_mean_pool_is_the_masked_mean():
    from hf_kd.data.alignment import mean_pool

    hidden = torch.randn(3, 4, 5)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    out = mean_pool(hidden, mask)
    assert torch.allclose(out[0], hidden[0, :3].mean(0))
    assert torch.allclose(out[1], hidden[1, 0])
    assert torch.equal(out[2], torch.zeros(5))  # nothing to average: zero, not NaN


def test_mean_alignment_compares_per_example_mean_states_of_each_side():
    from hf_kd.training.intermediate import IntermediateDistiller

    cfg = BertConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16)
    t_cfg = BertConfig(hidden_size=8, num_hidden_layers=4, num_attention_heads=2, intermediate_size=16)
    distiller = IntermediateDistiller(cfg, t_cfg, layer_mapping=[2, 4], hidden_alignment="mean")

    class Out:
        def __init__(self, states):
            self.hidden_states = states

    s = Out(tuple(torch.randn(2, 4, 8) for _ in range(3)))
    t = Out(tuple(torch.randn(2, 6, 8) for _ in range(5)))
    s_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    t_mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]])
    # Different texts (a translation): no word ids, only each side's own mask.
    inputs = {"attention_mask": s_mask, "teacher_input_ids": torch.zeros(2, 6), "teacher_attention_mask": t_mask}
    loss = distiller(s, t, inputs)["hidden_loss"]

    def pooled(h, m):
        return torch.stack([h[b, : int(m[b].sum())].mean(0) for b in range(h.shape[0])])

    expected = torch.stack(
        [
            ((pooled(s.hidden_states[k], s_mask) - pooled(t.hidden_states[j], t_mask)) ** 2).mean()
            for k, j in ((1, 2), (2, 4))
        ]
    ).mean()
    assert torch.allclose(loss, expected)
    with pytest.raises(ValueError, match="hidden_alignment='mean'"):
        IntermediateDistiller(cfg, t_cfg, layer_mapping=[2, 4])(s, t, inputs)


def test_cross_lingual_hidden_loss_with_mean_alignment_trains(tmp_path, tok):
    texts_es = ["el paciente con fiebre alta", "dolor de pecho", "tos seca", "fiebre y dolor"] * 4
    texts_en = ["the patient with high fever", "chest pain", "dry cough", "fever and pain"] * 4
    ds = datasets.Dataset.from_dict({"text_es": texts_es, "text_en": texts_en, "labels": [0, 1, 2, 0] * 4})
    ds = tokenize_for_distillation(
        ds, tok, teacher_tokenizer=tok, text_column="text_es", teacher_text_column="text_en", remove_text=True
    )
    teacher = tiny_bert(vocab_size=vocab_size(tok), num_labels=3, hidden_size=48, layers=4, seed=1)
    student = tiny_bert(vocab_size=vocab_size(tok), num_labels=3, hidden_size=32, layers=2)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        train_dataset=ds,
        args=args_for(tmp_path, hidden_loss_weight=1.0, hidden_alignment="mean", num_train_epochs=4),
        processing_class=tok,
    )
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert all("hidden_loss" in e for e in logged)
    assert logged[-1]["hidden_loss"] < logged[0]["hidden_loss"]


def test_bad_hidden_alignment_is_refused(tmp_path):
    with pytest.raises(ValueError, match="hidden_alignment.*'tokens'"):
        args_for(tmp_path, hidden_alignment="tokens")


def test_hidden_loss_with_no_shared_words_is_zero_not_a_crash(tmp_path):
    from hf_kd.training.intermediate import IntermediateDistiller

    s_cfg = BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    t_cfg = BertConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16)
    distiller = IntermediateDistiller(s_cfg, t_cfg)

    class Out:
        def __init__(self, states):
            self.hidden_states = states

    s = Out(tuple(torch.randn(2, 4, 8, requires_grad=True) for _ in range(2)))
    t = Out(tuple(torch.randn(2, 5, 8) for _ in range(3)))
    inputs = {
        "teacher_input_ids": torch.zeros(2, 5),
        "word_ids": torch.tensor([[-1, 0, 1, -1]] * 2),
        "teacher_word_ids": torch.tensor([[-1, 2, 3, 4, -1]] * 2),
    }
    loss = distiller(s, t, inputs)["hidden_loss"]
    assert float(loss) == 0.0 and loss.requires_grad


def test_attention_loss_with_shared_tokenizer(tmp_path, tok):
    def eager(seed, layers):
        model = tiny_bert(vocab_size=vocab_size(tok), layers=layers, seed=seed)
        model.config._attn_implementation = "eager"
        return model

    teacher, student = eager(1, 4), eager(0, 2)
    ds = tokenize_for_distillation(text_dataset(), tok, remove_text=True)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        train_dataset=ds,
        args=args_for(tmp_path, attention_loss_weight=1.0, num_train_epochs=3),
        processing_class=tok,
    )
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert all(e["attention_loss"] > 0 for e in logged)
    assert logged[-1]["attention_loss"] < logged[0]["attention_loss"]


def test_attention_loss_without_attention_probabilities_says_eager(tmp_path, tok):
    # SDPA attention returns no probabilities; the error must say which model and how to fix it.
    teacher = tiny_bert(vocab_size=vocab_size(tok), layers=4, seed=1)
    teacher.config._attn_implementation = "eager"
    student = tiny_bert(vocab_size=vocab_size(tok), layers=2, seed=0)
    student.config._attn_implementation = "sdpa"
    ds = tokenize_for_distillation(text_dataset(), tok, remove_text=True)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        train_dataset=ds,
        args=args_for(tmp_path, attention_loss_weight=1.0, max_steps=1),
        processing_class=tok,
    )
    with pytest.raises(ValueError, match="student returned none.*eager"):
        trainer.train()


def test_intermediate_losses_need_the_online_teacher(tmp_path):
    with pytest.raises(ValueError, match="need.*teacher_model"):
        DistillationTrainer(model=tiny_bert(), teacher_model=None, args=args_for(tmp_path, hidden_loss_weight=1.0))


def test_layer_mapping_errors_name_the_layers(tmp_path):
    from hf_kd.training.intermediate import IntermediateDistiller

    cfg = BertConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16)
    with pytest.raises(ValueError, match=r"teacher layers \[7\]"):
        IntermediateDistiller(cfg, cfg, layer_mapping=[1, 7])
    with pytest.raises(ValueError, match="2 layers, the mapping has 1"):
        IntermediateDistiller(cfg, cfg, layer_mapping=[1])


@pytest.mark.slow
def test_real_minilm_teacher_with_a_small_local_student_tokenizer(tmp_path, tok):
    from transformers import AutoTokenizer

    teacher_tok = AutoTokenizer.from_pretrained(MINILM)
    teacher = BertForSequenceClassification.from_pretrained(MINILM, num_labels=3)
    student = tiny_bert(vocab_size=vocab_size(tok), hidden_size=32, layers=2)
    texts = datasets.Dataset.from_dict(
        {"text": ["El niño presentó fiebre, disnea y cefalea.", "the patient had acute chest-pain"], "labels": [0, 1]}
    )
    ds = tokenize_for_distillation(texts, tok, teacher_tokenizer=teacher_tok, remove_text=True)
    # Every word both tokenizations cover is the same character span: the first sentence has 7 words.
    assert max(ds[0]["word_ids"]) == max(ds[0]["teacher_word_ids"]) == 6
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        train_dataset=ds,
        args=args_for(tmp_path, hidden_loss_weight=1.0, num_train_epochs=1, per_device_train_batch_size=2),
        processing_class=tok,
        teacher_processing_class=teacher_tok,
    )
    trainer.train()
    assert trainer.intermediate.projections[0].weight.shape == (384, 32)
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in trainer.state.log_history if "loss" in e)


def test_a_second_attach_takes_the_new_loss_settings_and_a_new_mapping_gets_new_projections(caplog):
    from hf_kd.training.intermediate import PROJECTIONS_MODULE, attach_intermediate

    student, teacher = tiny_bert(hidden_size=16, layers=2), tiny_bert(hidden_size=32, layers=4)
    first = attach_intermediate(student, teacher.config, seed=0, layer_mapping=[2, 4], hidden_loss_weight=1.0)
    with torch.no_grad():
        first.projections[0].weight.fill_(0.25)  # "trained" projections
    again = attach_intermediate(
        student, teacher.config, seed=0, layer_mapping=[2, 4], hidden_loss="cosine", hidden_loss_weight=3.0
    )
    assert again is first and getattr(student, PROJECTIONS_MODULE) is first
    assert (again.hidden_loss, again.hidden_loss_weight) == ("cosine", 3.0)  # the new settings, not the old ones
    assert torch.all(again.projections[0].weight == 0.25)  # the trained projections are kept
    other = attach_intermediate(student, teacher.config, seed=0, layer_mapping=[1, 3])
    assert other is not first and getattr(student, PROJECTIONS_MODULE) is other and other.layer_mapping == [1, 3]
    assert "layer_mapping [2, 4]" in caplog.text
    saved_keys = [k for k in student._keys_to_ignore_on_save if k.startswith(PROJECTIONS_MODULE)]
    assert len(saved_keys) == len(set(saved_keys)) == len(other.state_dict())
