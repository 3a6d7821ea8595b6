"""A student built from the teacher's layers."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_bert

from hf_kd.training.student import student_from_teacher, uniform_layers


def test_uniform_layers_distilbert_choice():
    assert uniform_layers(6, 3) == [0, 2, 4]
    assert uniform_layers(12, 6) == [0, 2, 4, 6, 8, 10]
    assert uniform_layers(4, 4) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="between 1 and the teacher's 4 layers, got 5"):
        uniform_layers(4, 5)


def test_student_copies_the_chosen_layers_embeddings_and_head():
    teacher = tiny_bert(layers=4)
    student = student_from_teacher(teacher, layers=[1, 3])
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    assert len(student.bert.encoder.layer) == 2 and len(teacher.bert.encoder.layer) == 4
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for name, value in s_state.items():
        source = name
        if ".encoder.layer." in name:
            prefix, rest = name.split(".encoder.layer.")
            index, tail = rest.split(".", 1)
            source = f"{prefix}.encoder.layer.{[1, 3][int(index)]}.{tail}"
        torch.testing.assert_close(value, t_state[source], msg=name)
    # The copy is independent of the teacher.
    with torch.no_grad():
        student.classifier.weight.add_(1.0)
    assert not torch.equal(student.classifier.weight, teacher.classifier.weight)


def test_student_with_all_layers_computes_what_the_teacher_computes():
    teacher = tiny_bert(layers=3).eval()
    student = student_from_teacher(teacher, layers=[0, 1, 2]).eval()
    ids = torch.randint(5, 64, (2, 7))
    torch.testing.assert_close(student(input_ids=ids).logits, teacher(input_ids=ids).logits)


def test_fresh_head_and_bad_layers():
    teacher = tiny_bert(layers=4)
    student = student_from_teacher(teacher, num_layers=2, keep_head=False)
    assert student.config.num_hidden_layers == 2
    assert not torch.equal(student.classifier.weight, teacher.classifier.weight)
    with pytest.raises(ValueError, match=r"below 4, got \[0, 4\]"):
        student_from_teacher(teacher, layers=[0, 4])


def test_student_of_a_frozen_teacher_is_trainable():
    teacher = tiny_bert(layers=2).eval().requires_grad_(False)
    student = student_from_teacher(teacher, num_layers=1)
    assert student.training and all(p.requires_grad for p in student.parameters())
    assert not any(p.requires_grad for p in teacher.parameters())


def test_load_encoder_takes_every_encoder_weight_and_keeps_the_head(tmp_path):
    from hf_kd.training.student import load_encoder

    general, task = tiny_bert(layers=1, seed=1), tiny_bert(layers=1, seed=2)
    general.save_pretrained(tmp_path / "general")
    head = {k: v.clone() for k, v in task.state_dict().items() if k.startswith("classifier") or ".pooler." in k}
    load_encoder(task, str(tmp_path / "general"))
    for name, value in general.state_dict().items():
        if name in head:
            torch.testing.assert_close(task.state_dict()[name], head[name], msg=name)  # the task's own head
        else:
            torch.testing.assert_close(task.state_dict()[name], value, msg=name)
    assert not torch.equal(head["classifier.weight"], general.state_dict()["classifier.weight"])


def test_load_encoder_refuses_another_architecture_naming_what_differs(tmp_path):
    from hf_kd.training.student import load_encoder

    tiny_bert(layers=1, hidden_size=16).save_pretrained(tmp_path / "narrow")
    with pytest.raises(
        ValueError, match=r"does not fit this student: 0 encoder parameter\(s\) missing .* of another shape"
    ):
        load_encoder(tiny_bert(layers=1, hidden_size=32), str(tmp_path / "narrow"))
    tiny_bert(layers=1).save_pretrained(tmp_path / "shallow")
    with pytest.raises(ValueError, match=r"[1-9]\d* encoder parameter\(s\) missing"):
        load_encoder(tiny_bert(layers=2), str(tmp_path / "shallow"))
