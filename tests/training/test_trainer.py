"""DistillationTrainer against plain Trainer and the loss formulas, with tiny random models."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import WORDS, CountingTeacher, StepLog, args_for, make_tokenizer, random_dataset, tiny_bert
from safetensors.torch import load_file
from transformers import Trainer, TrainerCallback, TrainingArguments

from hf_kd import DistillationTrainer, DistillationTrainingArguments
from hf_kd.training.losses import bernoulli_kd_loss, softmax_kd_loss
from hf_kd.training.teacher import reorder_logits, run_teacher


def batch_of(dataset, n=4):
    rows = dataset[:n]
    batch = {k: torch.tensor(v) for k, v in rows.items()}
    return batch


# ----------------------------------------------------------------------------- arguments


def test_trainer_positional_signature_is_accepted_and_trains_like_trainer(tmp_path):
    """Every parameter of `Trainer.__init__` in Trainer's positional order; alpha=1 then gives Trainer's own run."""
    import inspect

    from transformers import default_data_collator

    trainer_params = [p for p in inspect.signature(Trainer.__init__).parameters if p != "self"]
    ours = [p for p in inspect.signature(DistillationTrainer.__init__).parameters if p != "self"]
    assert ours[: len(trainer_params)] == trainer_params
    kinds = inspect.signature(DistillationTrainer.__init__).parameters
    assert kinds["teacher_model"].kind is inspect.Parameter.KEYWORD_ONLY

    train = random_dataset(n=16)
    dev = random_dataset(n=8, seed=1)
    metrics = lambda p: {"n": float(len(p.label_ids))}  # noqa: E731
    positional = (default_data_collator, train, dev, None, None, None, metrics, None, (None, None), None, None)
    ours_run = DistillationTrainer(tiny_bert(), args_for(tmp_path, "a", alpha=1.0), *positional)
    plain_run = Trainer(tiny_bert(), args_for(tmp_path, "b"), *positional)
    assert ours_run.train_dataset is train and ours_run.eval_dataset is dev and ours_run.compute_metrics is metrics
    ours_run.train()
    plain_run.train()
    for (name, a), b in zip(ours_run.model.state_dict().items(), plain_run.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert ours_run.evaluate()["eval_n"] == 8.0


def test_model_args_positional_pair_and_teacher_keyword(tmp_path):
    trainer = DistillationTrainer(tiny_bert(), args_for(tmp_path), teacher_model=tiny_bert(seed=1))
    assert trainer.teacher_model is not None and isinstance(trainer.args, DistillationTrainingArguments)


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda m, a: DistillationTrainer(m, m, a), r"`args` must be a TrainingArguments.*got a BertForSequence"),
        (lambda m, a: DistillationTrainer(a, m), r"`model` got a TrainingArguments"),
        (lambda m, a: DistillationTrainer(m, teacher_model=a), r"`teacher_model` got a TrainingArguments"),
    ],
)
def test_a_model_or_arguments_in_the_wrong_place_names_the_parameter(tmp_path, call, pattern):
    with pytest.raises(TypeError, match=pattern):
        call(tiny_bert(), args_for(tmp_path))


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("temperature", 0.0, "temperature.*0.0"),
        ("temperature", -1, "temperature.*-1"),
        ("alpha", 1.5, "alpha.*1.5"),
        ("single_label_distillation_loss", "softmax", "single_label_distillation_loss.*'softmax'"),
        ("multi_label_distillation_loss", "softmax_kl", "multi_label_distillation_loss.*'softmax_kl'"),
        ("teacher_dtype", "int8", "teacher_dtype.*'int8'"),
        ("head_learning_rate", 0.0, "head_learning_rate.*0.0"),
        ("hidden_loss_weight", -0.1, "hidden_loss_weight.*-0.1"),
        ("layer_mapping", [1, -2], r"layer_mapping.*\[1, -2\]"),
    ],
)
def test_arguments_validation_names_field_and_value(tmp_path, field, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        args_for(tmp_path, **{field: value})


def test_every_field_has_help():
    from dataclasses import fields

    own = {f.name for f in fields(DistillationTrainingArguments)} - {f.name for f in fields(TrainingArguments)}
    assert {"temperature", "alpha", "teacher_dtype", "head_learning_rate"} <= own
    for f in fields(DistillationTrainingArguments):
        if f.name in own:
            assert f.metadata.get("help"), f.name


def test_plain_training_arguments_are_accepted(tmp_path):
    plain = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, learning_rate=3e-3)
    trainer = DistillationTrainer(model=tiny_bert(), teacher_model=tiny_bert(seed=1), args=plain)
    assert isinstance(trainer.args, DistillationTrainingArguments)
    assert trainer.args.learning_rate == 3e-3 and trainer.args.alpha == 0.5


# ----------------------------------------------------------------------------- loss


@pytest.mark.parametrize("kind", ["single", "multi"])
def test_alpha_one_is_exactly_the_plain_trainer_loss(tmp_path, kind):
    problem = "single_label_classification" if kind == "single" else "multi_label_classification"
    student = tiny_bert(problem_type=problem)
    ds = random_dataset(kind=kind)
    plain = Trainer(model=copy.deepcopy(student), args=TrainingArguments(str(tmp_path / "p"), report_to="none"))
    ours = DistillationTrainer(model=student, teacher_model=tiny_bert(seed=1), args=args_for(tmp_path, alpha=1.0))
    batch = batch_of(ds)
    plain.model.train()
    ours.model.train()
    expected = plain.compute_loss(plain.model, dict(batch))
    got = ours.compute_loss(ours.model, dict(batch))
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(
    ("kind", "problem", "reference"),
    [
        ("single", "single_label_classification", softmax_kd_loss),
        ("multi", "multi_label_classification", bernoulli_kd_loss),
    ],
)
def test_alpha_zero_is_pure_distillation(tmp_path, kind, problem, reference):
    student, teacher = tiny_bert(problem_type=problem), tiny_bert(problem_type=problem, seed=1)
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=args_for(tmp_path, alpha=0.0, temperature=3.0)
    )
    batch = batch_of(random_dataset(kind=kind))
    student.train()
    loss = trainer.compute_loss(student, dict(batch))
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        expected = reference(student(**inputs).logits, teacher(**inputs).logits, 3.0)
    torch.testing.assert_close(loss, expected)


def test_mixed_loss_and_unlabeled_rows(tmp_path):
    student = tiny_bert(problem_type="multi_label_classification")
    teacher = tiny_bert(problem_type="multi_label_classification", seed=1)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args_for(tmp_path, alpha=0.3))
    batch = batch_of(random_dataset(kind="multi"))
    batch["labels"][1] = -100
    student.train()
    loss = trainer.compute_loss(student, dict(batch))
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        s, t = student(**inputs).logits, teacher(**inputs).logits
    keep = [0, 2, 3]
    hard = torch.nn.functional.binary_cross_entropy_with_logits(s[keep], batch["labels"][keep])
    expected = 0.3 * hard + 0.7 * bernoulli_kd_loss(s, t, 2.0)
    torch.testing.assert_close(loss, expected)


def test_regression_distills_with_mse(tmp_path):
    student, teacher = tiny_bert(num_labels=1), tiny_bert(num_labels=1, seed=1)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args_for(tmp_path, alpha=0.0))
    batch = batch_of(random_dataset(kind="regression"))
    student.train()
    loss = trainer.compute_loss(student, dict(batch))
    assert student.config.problem_type == "regression"
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        expected = ((student(**inputs).logits - teacher(**inputs).logits) ** 2).mean()
    torch.testing.assert_close(loss, expected)


def test_problem_type_is_inferred_like_transformers(tmp_path):
    student = tiny_bert()
    trainer = DistillationTrainer(model=student, teacher_model=tiny_bert(seed=1), args=args_for(tmp_path))
    student.train()
    trainer.compute_loss(student, dict(batch_of(random_dataset(kind="multi"))))
    assert student.config.problem_type == "multi_label_classification"


def test_single_label_float_labels_error_and_integral_floats_cast(tmp_path):
    student = tiny_bert(problem_type="single_label_classification")
    trainer = DistillationTrainer(model=student, teacher_model=tiny_bert(seed=1), args=args_for(tmp_path))
    batch = batch_of(random_dataset(kind="single"))
    student.train()
    as_float = dict(batch, labels=batch["labels"].float())
    torch.testing.assert_close(trainer.compute_loss(student, as_float), trainer.compute_loss(student, dict(batch)))
    with pytest.raises(ValueError, match="integer class ids"):
        trainer.compute_loss(student, dict(batch, labels=batch["labels"].float() + 0.5))


# ----------------------------------------------------------------------------- gradient accumulation


def _train_weights(tmp_path, name, batch, accum, n_unlabeled=3):
    ds = random_dataset(n=16, kind="multi", seed=3)
    labels = list(ds["labels"])
    for i in range(n_unlabeled):
        labels[i * 5] = [-100.0] * 3
    ds = ds.remove_columns("labels").add_column("labels", labels)
    student = tiny_bert(problem_type="multi_label_classification")
    teacher = tiny_bert(problem_type="multi_label_classification", seed=1)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        train_dataset=ds,
        args=args_for(
            tmp_path / name,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accum,
            optim="sgd",
            learning_rate=0.5,
            lr_scheduler_type="constant",
            alpha=0.5,
            dataloader_drop_last=False,
        ),
    )
    trainer.train()
    return {k: v.detach().clone() for k, v in student.state_dict().items()}


def test_gradient_accumulation_equals_one_large_batch(tmp_path):
    big = _train_weights(tmp_path, "big", batch=8, accum=1)
    small = _train_weights(tmp_path, "small", batch=4, accum=2)
    for name in big:
        torch.testing.assert_close(small[name], big[name], rtol=1e-4, atol=1e-5, msg=name)


# ----------------------------------------------------------------------------- teacher handling


def test_teacher_frozen_eval_not_in_optimizer_and_not_saved(tmp_path):
    student = tiny_bert(dropout=0.1)
    teacher = tiny_bert(seed=1, dropout=0.5)
    before = copy.deepcopy(teacher.state_dict())
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, train_dataset=random_dataset(), args=args_for(tmp_path)
    )
    trainer.train()
    assert not trainer.teacher_model.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert trainer.teacher_model.device == trainer.model.device
    teacher_ids = {id(p) for p in teacher.parameters()}
    assert not any(id(p) in teacher_ids for g in trainer.optimizer.param_groups for p in g["params"])
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(v, before[k])
    trainer.save_model(str(tmp_path / "saved"))
    saved = load_file(str(tmp_path / "saved" / "model.safetensors"))
    assert set(saved) == set(student.state_dict())
    assert not (tmp_path / "saved" / "pytorch_model.bin").exists()


def test_teacher_runs_without_dropout_so_its_logits_are_deterministic(tmp_path):
    teacher = tiny_bert(seed=1, dropout=0.5)
    teacher.train()  # even if handed over in train mode
    trainer = DistillationTrainer(model=tiny_bert(), teacher_model=teacher, args=args_for(tmp_path))
    batch = batch_of(random_dataset())
    a = reorder_logits(run_teacher(trainer.teacher_model, batch, False, False).logits, None)
    b = reorder_logits(run_teacher(trainer.teacher_model, batch, False, False).logits, None)
    torch.testing.assert_close(a, b)
    assert not a.requires_grad


def test_teacher_in_bfloat16(tmp_path):
    teacher = tiny_bert(seed=1)
    trainer = DistillationTrainer(
        model=tiny_bert(), teacher_model=teacher, args=args_for(tmp_path, teacher_dtype="bfloat16")
    )
    assert next(trainer.teacher_model.parameters()).dtype == torch.bfloat16
    out = reorder_logits(run_teacher(trainer.teacher_model, batch_of(random_dataset()), False, False).logits, None)
    assert out.dtype == torch.float32


def test_teacher_loaded_from_a_local_path(tmp_path):
    teacher = tiny_bert(seed=1)
    teacher.save_pretrained(tmp_path / "teacher")
    trainer = DistillationTrainer(model=tiny_bert(), teacher_model=str(tmp_path / "teacher"), args=args_for(tmp_path))
    for (name, p), q in zip(teacher.named_parameters(), trainer.teacher_model.parameters()):
        torch.testing.assert_close(p, q, msg=name)


def test_label_count_mismatch_names_both_counts(tmp_path):
    with pytest.raises(ValueError, match="3 labels.*5"):
        DistillationTrainer(
            model=tiny_bert(num_labels=3), teacher_model=tiny_bert(num_labels=5), args=args_for(tmp_path)
        )


def test_label_set_difference_is_listed(tmp_path):
    student = tiny_bert(id2label={0: "fever", 1: "cough", 2: "pain"})
    teacher = tiny_bert(id2label={0: "fever", 1: "cough", 2: "rash"}, seed=1)
    with pytest.raises(ValueError, match=r"\['pain'\].*\['rash'\]"):
        DistillationTrainer(model=student, teacher_model=teacher, args=args_for(tmp_path))


def test_teacher_logits_are_reordered_to_the_student_label_order(tmp_path):
    names = {0: "fever", 1: "cough", 2: "pain"}
    student = tiny_bert(id2label=names, problem_type="single_label_classification")
    teacher = tiny_bert(id2label=names, seed=1)
    # The same teacher with its label order permuted: classifier rows move with the names.
    perm = [2, 0, 1]
    permuted = copy.deepcopy(teacher)
    permuted.config.id2label = {i: names[p] for i, p in enumerate(perm)}
    permuted.config.label2id = {v: k for k, v in permuted.config.id2label.items()}
    with torch.no_grad():
        permuted.classifier.weight.copy_(teacher.classifier.weight[perm])
        permuted.classifier.bias.copy_(teacher.classifier.bias[perm])
    batch = batch_of(random_dataset())
    a = DistillationTrainer(model=student, teacher_model=teacher, args=args_for(tmp_path, alpha=0.0))
    b = DistillationTrainer(model=student, teacher_model=permuted, args=args_for(tmp_path, alpha=0.0))
    student.train()
    torch.testing.assert_close(a.compute_loss(student, dict(batch)), b.compute_loss(student, dict(batch)))


def test_different_vocabulary_without_teacher_inputs_is_refused(tmp_path):
    trainer = DistillationTrainer(
        model=tiny_bert(vocab_size=64), teacher_model=tiny_bert(vocab_size=80, seed=1), args=args_for(tmp_path)
    )
    trainer.model.train()
    with pytest.raises(ValueError, match="teacher.*(tokenizer|vocabulary)"):
        trainer.compute_loss(trainer.model, dict(batch_of(random_dataset())))


def test_label_order_cannot_go_unchecked_when_one_side_names_its_labels(tmp_path):
    names = {0: "fever", 1: "cough", 2: "pain"}
    with pytest.raises(ValueError, match="student's labels are unnamed .*\\['fever', 'cough', 'pain'\\]"):
        DistillationTrainer(
            model=tiny_bert(), teacher_model=tiny_bert(id2label=names, seed=1), args=args_for(tmp_path)
        )
    with pytest.raises(ValueError, match="teacher's labels are unnamed"):
        DistillationTrainer(model=tiny_bert(id2label=names), teacher_model=tiny_bert(seed=1), args=args_for(tmp_path))
    DistillationTrainer(model=tiny_bert(), teacher_model=tiny_bert(seed=1), args=args_for(tmp_path))  # both unnamed


def test_same_sized_vocabularies_are_compared_through_the_saved_tokenizers(tmp_path):
    from transformers import AutoModelForSequenceClassification

    def saved(name: str, words: list[str], seed: int):
        folder = tmp_path / name
        tiny_bert(vocab_size=64, seed=seed).save_pretrained(folder)
        make_tokenizer(tmp_path / f"{name}_tok", words).save_pretrained(folder)
        return AutoModelForSequenceClassification.from_pretrained(folder)

    student = saved("student", WORDS, 0)
    teacher = saved("teacher", list(reversed(WORDS)), 1)  # same size, other ids
    assert student.config.vocab_size == teacher.config.vocab_size
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args_for(tmp_path))
    trainer.model.train()
    with pytest.raises(ValueError, match="teacher.*(tokenizer|vocabulary)"):
        trainer.compute_loss(trainer.model, dict(batch_of(random_dataset())))


def test_compute_loss_func_is_refused(tmp_path):
    with pytest.raises(ValueError, match="compute_loss_func"):
        DistillationTrainer(
            model=tiny_bert(), teacher_model=tiny_bert(), args=args_for(tmp_path), compute_loss_func=lambda *a, **k: 0
        )


# ----------------------------------------------------------------------------- evaluation


def test_evaluate_and_predict_never_run_the_teacher_and_match_plain_trainer(tmp_path):
    student = tiny_bert(problem_type="single_label_classification")
    ds = random_dataset(n=12)
    teacher = CountingTeacher(tiny_bert(seed=1))
    ours = DistillationTrainer(model=student, teacher_model=teacher, args=args_for(tmp_path), eval_dataset=ds)
    plain = Trainer(
        model=copy.deepcopy(student),
        args=TrainingArguments(str(tmp_path / "p"), report_to="none", per_device_eval_batch_size=4, use_cpu=True),
        eval_dataset=ds,
    )
    ours_metrics, plain_metrics = ours.evaluate(), plain.evaluate()
    assert ours_metrics["eval_loss"] == pytest.approx(plain_metrics["eval_loss"], rel=1e-6)
    pred_ours, pred_plain = ours.predict(ds), plain.predict(ds)
    torch.testing.assert_close(torch.tensor(pred_ours.predictions), torch.tensor(pred_plain.predictions))
    assert teacher.calls == 0


def test_teacher_eval_metrics_report_agreement_and_distill_loss(tmp_path):
    student = tiny_bert(problem_type="single_label_classification")
    teacher = copy.deepcopy(student)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args_for(tmp_path, teacher_eval_metrics=True),
        eval_dataset=random_dataset(n=12),
    )
    metrics = trainer.evaluate()
    assert metrics["eval_teacher_agreement"] == 1.0
    assert metrics["eval_distill_loss"] == pytest.approx(0.0, abs=1e-6)


def test_agreement_counts_compare_predictions_not_models():
    from hf_kd.training.teacher import agreement_counts

    student = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0]])
    teacher = torch.tensor([[5.0, 0.0, 0.0], [4.0, 1.0, 0.0], [0.0, 0.0, 9.0]])
    agree, total = agreement_counts(student, teacher, "single_label_classification")
    assert agree.tolist() == [1.0, 0.0, 1.0] and total.tolist() == [1.0, 1.0, 1.0]
    signs_s = torch.tensor([[1.0, -1.0, 2.0], [-1.0, -2.0, -3.0]])
    signs_t = torch.tensor([[3.0, 1.0, 1.0], [1.0, 2.0, 3.0]])
    agree, total = agreement_counts(signs_s, signs_t, "multi_label_classification")
    assert agree.tolist() == [2.0, 0.0] and total.tolist() == [3.0, 3.0]


def test_teacher_eval_agreement_of_a_different_teacher_is_the_share_of_equal_predictions(tmp_path):
    student, teacher = tiny_bert(problem_type="single_label_classification"), tiny_bert(seed=5)
    data = random_dataset(n=12)
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=args_for(tmp_path, teacher_eval_metrics=True), eval_dataset=data
    )
    metrics = trainer.evaluate()
    batch = batch_of(data, n=len(data))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        expected = (student.eval()(**inputs).logits.argmax(-1) == teacher.eval()(**inputs).logits.argmax(-1)).float()
    assert 0 < expected.mean() < 1  # a teacher that disagrees on some examples
    assert metrics["eval_teacher_agreement"] == pytest.approx(float(expected.mean()))


# ----------------------------------------------------------------------------- training


def test_logs_show_hard_and_distillation_parts(tmp_path):
    trainer = DistillationTrainer(
        model=tiny_bert(), teacher_model=tiny_bert(seed=1), train_dataset=random_dataset(), args=args_for(tmp_path)
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all("hard_loss" in e and "distill_loss" in e for e in logged)
    first = logged[0]
    assert first["loss"] == pytest.approx(0.5 * first["hard_loss"] + 0.5 * first["distill_loss"], rel=1e-3)


def test_distillation_moves_the_student_towards_the_teacher(tmp_path):
    student, teacher = tiny_bert(problem_type="single_label_classification"), tiny_bert(seed=1)
    ds = random_dataset(n=32)
    batch = batch_of(ds, 32)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}

    def gap():
        with torch.no_grad():
            return float(softmax_kd_loss(student(**inputs).logits, teacher(**inputs).logits, 1.0))

    before = gap()
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        train_dataset=ds,
        args=args_for(tmp_path, alpha=0.0, num_train_epochs=5, learning_rate=5e-3),
    )
    trainer.train()
    student.eval()
    assert gap() < 0.5 * before


def test_head_learning_rate_puts_classifier_and_pooler_in_their_own_groups(tmp_path):
    student = tiny_bert()
    trainer = DistillationTrainer(
        model=student,
        teacher_model=tiny_bert(seed=1),
        args=args_for(tmp_path, learning_rate=1e-4, head_learning_rate=1e-2),
    )
    optimizer = trainer.create_optimizer()
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    for name, p in student.named_parameters():
        head = name.startswith("classifier.") or ".pooler." in name
        assert lr_of[id(p)] == (1e-2 if head else 1e-4), name
    assert len(lr_of) == len(list(student.parameters()))


class StopAt(TrainerCallback):
    """Stops training after a given step, as a crash after a checkpoint would."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def test_resume_from_checkpoint_ends_with_the_same_weights(tmp_path):
    def run(out, stop=None, resume=None):
        log = StepLog()
        trainer = DistillationTrainer(
            model=tiny_bert(dropout=0.1),
            teacher_model=tiny_bert(seed=1),
            train_dataset=random_dataset(n=24),
            args=args_for(out, save_strategy="steps", save_steps=3, num_train_epochs=2),
            callbacks=[log, *([StopAt(stop)] if stop else [])],
        )
        trainer.train(resume_from_checkpoint=resume)
        return trainer.model.state_dict(), log.steps

    full, full_steps = run(tmp_path / "full")
    run(tmp_path / "part", stop=4)
    resumed, steps = run(tmp_path / "part", resume=str(tmp_path / "part" / "out" / "checkpoint-3"))
    # The resumed run starts after step 3 and runs only the steps left (a restart from 0 would run them all).
    assert steps == full_steps[3:] and steps[0] == 4
    for name in full:
        torch.testing.assert_close(resumed[name], full[name], msg=name)


def test_model_init_students_are_checked_against_the_teacher(tmp_path):
    with pytest.raises(ValueError, match="2 labels.*3"):
        DistillationTrainer(
            model_init=lambda: tiny_bert(num_labels=2), teacher_model=tiny_bert(num_labels=3), args=args_for(tmp_path)
        ).train()


def test_with_teacher_logits_runs_the_teacher_once_per_dataset_and_keeps_an_existing_column(tmp_path):
    from hf_kd import DistillationTrainer

    teacher = tiny_bert(seed=3)
    data = random_dataset(n=6, kind="single")
    trainer = DistillationTrainer(model=tiny_bert(seed=4), teacher_model=teacher, args=args_for(tmp_path))
    both = trainer.with_teacher_logits({"train": data, "validation": data.select(range(2))})
    with torch.no_grad():
        expected = teacher(
            input_ids=torch.tensor(data["input_ids"]), attention_mask=torch.tensor(data["attention_mask"])
        )
    torch.testing.assert_close(torch.tensor(both["train"]["teacher_logits"]), expected.logits, rtol=1e-5, atol=1e-5)
    assert len(both["validation"]) == 2
    assert trainer.with_teacher_logits(both["train"]) is both["train"]  # already cached: returned as it is
    no_teacher = DistillationTrainer(model=tiny_bert(seed=4), args=args_for(tmp_path / "none"))
    with pytest.raises(ValueError, match="needs a `teacher_model`"):
        no_teacher.with_teacher_logits(data)
