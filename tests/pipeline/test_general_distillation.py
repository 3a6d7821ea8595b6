"""The general-distillation stage (`student.general_distillation`) and MiniLMv2's relation term it trains with."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import WORDS, StepLog, args_for, random_dataset, tiny_bert
from safetensors.torch import load_file
from transformers import Trainer, TrainerCallback

from hf_kd.pipeline.run import DONE_FILE, PipelineRun, run_pipeline
from hf_kd.pipeline.stage_models import build_student
from hf_kd.pipeline.stages import PIPELINE
from hf_kd.recipe.config import DistillationPipelineConfig
from hf_kd.training.losses import attention_relation_loss

STAGE = "general_distillation"


def _relation_by_hand(student, teacher, heads, mask):
    """KL(teacher ‖ student) of each relation row, written out with loops over examples, heads and rows."""
    total, count = 0.0, 0
    for b in range(student.shape[0]):
        valid = [i for i in range(student.shape[1]) if mask[b, i]]
        for r in range(heads):
            rel = {}
            for name, x in (("s", student[b]), ("t", teacher[b])):
                d = x.shape[-1] // heads
                part = x[valid][:, r * d : (r + 1) * d].double()
                rel[name] = torch.softmax(part @ part.T / math.sqrt(d), dim=-1)
            for i in range(len(valid)):
                p, q = rel["t"][i], rel["s"][i]
                total += float((p * (p.log() - q.log())).sum())
                count += 1
    return total / count


def test_relation_loss_is_the_kl_of_scaled_dot_product_relations_per_head():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 12, generator=g)  # widths differ
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    got = attention_relation_loss(student, teacher, 4, mask)
    assert float(got) == pytest.approx(_relation_by_hand(student, teacher, 4, mask), rel=1e-5)
    # Without a mask every position counts; the same vectors give zero.
    full = torch.ones(2, 5, dtype=torch.long)
    assert float(attention_relation_loss(student, teacher, 2)) == pytest.approx(
        _relation_by_hand(student, teacher, 2, full), rel=1e-5
    )
    assert float(attention_relation_loss(teacher, teacher, 3, mask)) == pytest.approx(0.0, abs=1e-6)
    # The teacher gets no gradient; the student does.
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    attention_relation_loss(student, teacher, 4, mask).backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0


def test_relation_heads_that_do_not_divide_a_width_are_named():
    with pytest.raises(ValueError, match=r"num_relation_heads.*\(8, 12\), got 5"):
        attention_relation_loss(torch.randn(1, 3, 8), torch.randn(1, 3, 12), 5)
    with pytest.raises(ValueError, match="same batch and positions"):
        attention_relation_loss(torch.randn(1, 3, 8), torch.randn(1, 4, 8), 2)


def test_the_trainer_relation_term_uses_the_last_layer_query_key_value_vectors(tmp_path):
    from hf_kd import DistillationTrainer

    kind = "single_label_classification"
    student = tiny_bert(hidden_size=16, layers=1, seed=1, problem_type=kind)
    teacher = tiny_bert(hidden_size=32, layers=2, seed=2, problem_type=kind)
    args = args_for(tmp_path, alpha=1.0, relation_loss_weight=1.0, num_relation_heads=2)
    data = random_dataset(n=4, kind="single").remove_columns("labels")
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data)
    batch = {k: torch.tensor(data[k]) for k in ("input_ids", "attention_mask")}
    student.train()
    loss = trainer.compute_loss(student, dict(batch))
    with torch.no_grad():
        s_states = student(**batch, output_hidden_states=True).hidden_states
        t_states = teacher(**batch, output_hidden_states=True).hidden_states
    # The student's only layer against the teacher's last (the uniform mapping), through each layer's own Q/K/V.
    s_att, t_att = student.bert.encoder.layer[0].attention.self, teacher.bert.encoder.layer[1].attention.self
    expected = [
        attention_relation_loss(s_proj(s_states[0]), t_proj(t_states[1]), 2, batch["attention_mask"])
        for s_proj, t_proj in ((s_att.query, t_att.query), (s_att.key, t_att.key), (s_att.value, t_att.value))
    ]
    assert float(loss.detach()) == pytest.approx(float(torch.stack(expected).mean()), rel=1e-5)


@pytest.fixture
def general_recipe(recipe) -> dict:
    """The tiny recipe with a narrow, pruned student and a general-distillation stage saving every 3 steps."""
    recipe = copy.deepcopy(recipe)
    recipe["student"].update(hidden_size=16, prune_vocabulary=True)
    recipe["student"]["general_distillation"] = {
        "per_device_train_batch_size": 4,
        "num_train_epochs": 1,
        "learning_rate": 1e-2,
        "num_relation_heads": 2,
        "save_steps": 3,
    }
    return recipe


@pytest.fixture
def trainings(monkeypatch) -> list[tuple[str, StepLog]]:
    """Each `Trainer.train` call: the stage folder it trains in and the steps it ran."""
    calls: list[tuple[str, StepLog]] = []
    original = Trainer.train

    def recording(self, *args, **kwargs):
        log = StepLog()
        self.add_callback(log)
        calls.append((Path(self.args.output_dir).parent.name, log))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", recording)
    return calls


def _encoder(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in weights.items() if k.startswith("bert.") and ".pooler." not in k}


def test_the_stage_trains_on_all_the_text_and_the_student_starts_from_its_encoder(general_recipe, trainings, tmp_path):
    unlabeled = tmp_path / "unlabeled.jsonl"
    unlabeled.write_text("".join(json.dumps({"text": f"fever cough {WORDS[i]}"}) + "\n" for i in range(8)))
    general_recipe["data"]["unlabeled_files"] = [str(unlabeled)]
    config = DistillationPipelineConfig.from_dict(general_recipe)
    result = run_pipeline(config)
    root = Path(general_recipe["output_dir"])
    assert [stage for stage, _ in trainings] == [STAGE, "teacher", "student"]
    marker = json.loads((root / STAGE / DONE_FILE).read_text())
    assert marker["num_rows"] == 24 + 8  # the labelled training text and the transfer set, labels unused
    assert DistillationPipelineConfig.from_yaml(root / "recipe.yaml") == config  # the section round-trips
    general = load_file(str(root / STAGE / "model" / "model.safetensors"))
    assert general["bert.embeddings.word_embeddings.weight"].shape[1] == 16  # the narrow, pruned student

    # A student of this run starts from the general distillation's encoder and the fine-tuned teacher's head.
    run = PipelineRun(config, PIPELINE)
    run.teacher_path = result["teacher_model"]
    without = {k: v.clone() for k, v in build_student(run).state_dict().items()}
    run.general_model = marker["model"]
    student = build_student(run).state_dict()
    for name, value in _encoder(general).items():
        torch.testing.assert_close(student[name], value, msg=name)
    assert not torch.equal(
        without["bert.encoder.layer.0.attention.self.query.weight"],
        general["bert.encoder.layer.0.attention.self.query.weight"],
    )
    torch.testing.assert_close(student["classifier.weight"], without["classifier.weight"])


def test_the_stage_resumes_exactly_and_is_skipped_while_its_inputs_stay(general_recipe, trainings, tmp_path):
    full = copy.deepcopy(general_recipe)
    full["output_dir"] = str(tmp_path / "full")
    run_pipeline(DistillationPipelineConfig.from_dict(full))
    full_steps = trainings[0][1].steps
    assert len(full_steps) > 4

    class CrashAt4(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 4 and STAGE in args.output_dir:
                raise KeyboardInterrupt("killed")

    original = Trainer.__init__

    def with_crash(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.add_callback(CrashAt4())

    config = DistillationPipelineConfig.from_dict(general_recipe)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "__init__", with_crash)
        with pytest.raises(KeyboardInterrupt):
            run_pipeline(config)
    trainings.clear()
    result = run_pipeline(config)
    assert trainings[0][0] == STAGE and trainings[0][1].steps == full_steps[3:]  # from checkpoint-3, not restarted
    root = Path(general_recipe["output_dir"])
    resumed = load_file(str(root / STAGE / "model" / "model.safetensors"))
    expected = load_file(str(tmp_path / "full" / STAGE / "model" / "model.safetensors"))
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=0, atol=1e-5, msg=name)

    # Unchanged inputs: skipped. The teacher's settings are not among them; its own settings are.
    trainings.clear()
    general_recipe["teacher"]["learning_rate"] = 2e-3
    again = run_pipeline(DistillationPipelineConfig.from_dict(general_recipe))
    assert again["stages"][STAGE] == "skipped (done)" and [s for s, _ in trainings] == ["teacher", "student"]
    assert result["stages"][STAGE] == "ran"
    trainings.clear()
    general_recipe["student"]["general_distillation"]["learning_rate"] = 5e-3
    again = run_pipeline(DistillationPipelineConfig.from_dict(general_recipe))
    assert again["stages"]["teacher"] == "skipped (done)" and [s for s, _ in trainings] == [STAGE, "student"]


def test_another_run_reuses_a_finished_general_distillation(general_recipe, trainings, tmp_path):
    first = run_pipeline(DistillationPipelineConfig.from_dict(general_recipe))
    assert first["stages"][STAGE] == "ran"
    made = str(Path(general_recipe["output_dir"]) / STAGE / "model")
    other = copy.deepcopy(general_recipe)
    other["output_dir"] = str(tmp_path / "other")
    other["student"]["general_distillation"] = {"model": made}
    trainings.clear()
    result = run_pipeline(DistillationPipelineConfig.from_dict(other))
    assert result["stages"][STAGE] == f"skipped (reusing {made})"
    assert [s for s, _ in trainings] == ["teacher", "student"]
    # The same general distillation and the same seed: the same student as the first run's.
    a = load_file(str(Path(first["student_model"]) / "model.safetensors"))
    b = load_file(str(Path(result["student_model"]) / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"learning_rat": 1e-3}, "general_distillation.*learning_rat"),
        ({"hidden_loss_weight": 0, "relation_loss_weight": 0}, "would learn nothing"),
        ({"relation_loss_weight": -1.0}, r"relation_loss_weight.*-1\.0"),
        ({"model": "/nowhere/general"}, "no model.safetensors in '/nowhere/general'"),
        ({"model": "/nowhere/general", "learning_rate": 1e-3}, r"takes no other field.*learning_rate"),
    ],
)
def test_bad_general_distillation_settings_are_refused_before_any_stage(general_recipe, settings, message):
    general_recipe["student"]["general_distillation"] = settings
    with pytest.raises(ValueError, match=message):
        run_pipeline(DistillationPipelineConfig.from_dict(general_recipe))
    assert not (Path(general_recipe["output_dir"]) / STAGE).exists()


def test_a_general_teacher_of_another_architecture_is_named(general_recipe, tmp_path):
    from conftest import save_model_dir

    other = save_model_dir(tiny_bert(num_labels=3, layers=2, hidden_size=16), tmp_path / "other", tmp_path)
    general_recipe["student"]["general_distillation"]["teacher"] = other
    with pytest.raises(ValueError, match="general_distillation.teacher.*hidden_size is 16 there and 32"):
        run_pipeline(DistillationPipelineConfig.from_dict(general_recipe))


def test_the_relation_term_is_refused_when_the_student_reads_other_tokens(general_recipe, tmp_path):
    from conftest import WORDS, make_tokenizer

    student_dir = tmp_path / "own_student"
    tiny_bert(num_labels=3, layers=1).save_pretrained(student_dir)
    make_tokenizer(student_dir, list(reversed(WORDS))).save_pretrained(student_dir)  # other ids for the same words
    general_recipe["student"] = {
        "model": str(student_dir),
        "general_distillation": {"num_relation_heads": 2},
        **{k: v for k, v in general_recipe["student"].items() if k in ("per_device_train_batch_size", "use_cpu")},
    }
    with pytest.raises(ValueError, match="relation term compares token positions.*relation_loss_weight: 0"):
        run_pipeline(DistillationPipelineConfig.from_dict(general_recipe))


def test_the_stage_takes_the_measured_defaults_under_the_recipe_s_own_fields(general_recipe):
    from hf_kd.pipeline.stage_models import GENERAL_DEFAULTS, general_arguments

    general_recipe["student"]["general_distillation"] = {"learning_rate": 2e-4, "teacher": "/somewhere/pretrained"}
    config = DistillationPipelineConfig.from_dict(general_recipe)
    args = general_arguments(config, Path(general_recipe["output_dir"]))
    assert args.learning_rate == 2e-4  # the recipe's field wins
    assert args.num_train_epochs == GENERAL_DEFAULTS["num_train_epochs"] != 1  # not the task stage's epochs
    assert args.per_device_train_batch_size == GENERAL_DEFAULTS["per_device_train_batch_size"]
    assert args.relation_loss_weight == args.hidden_loss_weight == 1.0 and args.alpha == 1.0
