"""PEFT (LoRA) students in `DistillationTrainer`, and LoRA teachers and students in the recipe pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import CLINICAL_LABELS, StepLog, args_for, make_tokenizer, random_dataset, tiny_bert, write_label_files
from peft import LoraConfig, PeftModel, TaskType, get_peft_model

from hf_kd import DistillationTrainer
from hf_kd.pipeline.run import run_pipeline
from hf_kd.recipe.config import DistillationPipelineConfig

LABELS = list(CLINICAL_LABELS)
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


def _lora_student(seed: int = 1, r: int = 4):
    torch.manual_seed(123)  # the adapter's initialisation
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=r, lora_alpha=8, target_modules=["query", "value"])
    return get_peft_model(tiny_bert(seed=seed), config)


def _params(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _is_trained_by_lora(name: str) -> bool:
    return ".lora_" in name or ".modules_to_save." in name


def _train_lora_student(tmp_path, alpha: float, teacher_seed: int = 2, **kwargs):
    student = _lora_student()
    trainer = DistillationTrainer(
        model=student,
        teacher_model=tiny_bert(seed=teacher_seed),
        args=args_for(tmp_path, output_subdir=f"a{alpha}_t{teacher_seed}", alpha=alpha, max_steps=4, **kwargs),
        train_dataset=random_dataset(16),
    )
    before = _params(student)
    trainer.train()
    return trainer, before, _params(trainer.model)


# ---------------------------------------------------------------------------------------------------------------------
# DistillationTrainer with a PeftModel student
# ---------------------------------------------------------------------------------------------------------------------


def test_lora_student_trains_only_adapter_and_head_weights(tmp_path):
    trainer, before, after = _train_lora_student(tmp_path, alpha=0.5)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    trained = {n for n in before if _is_trained_by_lora(n)}
    # Every LoRA matrix and the head's trained copy moved; no frozen base weight did (the classifier's original
    # copy included).
    assert changed == trained
    assert any("lora_A" in n for n in trained) and any("modules_to_save" in n for n in trained)
    assert all(torch.equal(before[n], after[n]) for n in before if "original_module" in n)
    # The loss was the distillation loss: both parts were logged.
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all("distill_loss" in entry and "hard_loss" in entry for entry in logged)
    # The problem type was looked up (and inferred) through the PeftModel.
    assert trainer.model.get_base_model().config.problem_type == "single_label_classification"


def test_lora_student_distillation_term_reaches_the_adapter(tmp_path):
    _, _, kd_a = _train_lora_student(tmp_path, alpha=0.0, teacher_seed=2)
    _, _, kd_b = _train_lora_student(tmp_path, alpha=0.0, teacher_seed=3)
    _, _, hard = _train_lora_student(tmp_path, alpha=1.0, teacher_seed=2)
    lora = [n for n in kd_a if ".lora_B." in n]
    # Pure distillation from another teacher, or the hard labels alone, give other adapter updates.
    assert any(not torch.allclose(kd_a[n], kd_b[n]) for n in lora)
    assert any(not torch.allclose(kd_a[n], hard[n]) for n in lora)


def test_lora_student_pure_distillation_moves_towards_the_teacher(tmp_path):
    from hf_kd.training.losses import softmax_kd_loss

    teacher = tiny_bert(seed=2).eval()
    with torch.no_grad():
        teacher.classifier.weight.mul_(30.0)  # a confident teacher, far from the student
    data = random_dataset(16)
    inputs = {"input_ids": torch.tensor(data["input_ids"]), "attention_mask": torch.tensor(data["attention_mask"])}
    student = _lora_student()
    with torch.no_grad():
        target = teacher(**inputs).logits

    def kd() -> float:
        student.eval()
        with torch.no_grad():
            return float(softmax_kd_loss(student(**inputs).logits, target, 2.0))

    start = kd()
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args_for(tmp_path, alpha=0.0, num_train_epochs=5, learning_rate=5e-2),
        train_dataset=data,
    )
    trainer.train()
    assert kd() < 0.5 * start


def test_head_learning_rate_applies_to_the_peft_head_only(tmp_path):
    student = _lora_student()
    trainer = DistillationTrainer(
        model=student,
        args=args_for(tmp_path, learning_rate=1e-4, head_learning_rate=1e-2),
        train_dataset=random_dataset(8),
    )
    optimizer = trainer.create_optimizer()
    names = {id(p): n for n, p in student.named_parameters()}
    by_lr: dict[float, set[str]] = {}
    for group in optimizer.param_groups:
        by_lr.setdefault(group["lr"], set()).update(names[id(p)] for p in group["params"])
    assert by_lr[1e-2] == {
        "base_model.model.classifier.modules_to_save.default.weight",
        "base_model.model.classifier.modules_to_save.default.bias",
    }
    assert by_lr[1e-4] and all(".lora_" in n for n in by_lr[1e-4])
    assert set(by_lr) == {1e-2, 1e-4}  # frozen parameters (e.g. the pooler) are in no group


def test_head_learning_rate_without_trainable_head_is_an_error(tmp_path):
    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["query", "value"])  # no task type: the head stays frozen
    student = get_peft_model(tiny_bert(), config)
    trainer = DistillationTrainer(
        model=student, args=args_for(tmp_path, head_learning_rate=1e-2), train_dataset=random_dataset(8)
    )
    with pytest.raises(ValueError, match="no trainable head parameters"):
        trainer.create_optimizer()


def test_lora_student_checkpoint_resume_restores_the_adapter(tmp_path):
    def trainer_for(subdir: str) -> DistillationTrainer:
        return DistillationTrainer(
            model=_lora_student(),
            teacher_model=tiny_bert(seed=2),
            args=args_for(tmp_path, output_subdir=subdir, max_steps=4, save_strategy="steps", save_steps=2),
            train_dataset=random_dataset(16),
        )

    full = trainer_for("full")
    full.train()
    checkpoint = tmp_path / "full" / "checkpoint-2"
    assert all((checkpoint / name).is_file() for name in ADAPTER_FILES)
    assert not (checkpoint / "model.safetensors").exists()  # the checkpoint holds the adapter, not the base model

    resumed, log = trainer_for("resumed"), StepLog()
    resumed.add_callback(log)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert log.steps == [3, 4]  # resumed after step 2, not restarted from 0
    a, b = _params(full.model), _params(resumed.model)
    assert all(torch.allclose(a[n], b[n], atol=1e-6) for n in a)


# ---------------------------------------------------------------------------------------------------------------------
# Pipeline
# ---------------------------------------------------------------------------------------------------------------------


def _plain(folder: Path):
    from transformers import AutoModelForSequenceClassification

    assert (folder / "model.safetensors").is_file()
    assert not any((folder / name).exists() for name in ADAPTER_FILES)
    return AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True).eval()


def _logits(model, input_ids: list[list[int]]) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(input_ids=torch.tensor([ids])).logits for ids in input_ids])


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("lora_pipeline")
    teacher = tmp / "teacher_base"
    tiny_bert(num_labels=3, layers=2).save_pretrained(teacher)
    make_tokenizer(tmp / "tok").save_pretrained(teacher)
    common = {"per_device_train_batch_size": 8, "logging_steps": 1, "use_cpu": True}
    recipe = {
        "data": {
            "dataset": "files",
            "path": str(write_label_files(tmp / "data", (("train", 16), ("validation", 8), ("test", 8)))),
            "max_length": 16,
        },
        "teacher": {
            "model": str(teacher),
            "learning_rate": 5e-2,
            "num_train_epochs": 2,
            "lora": {"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]},
            **common,
        },
        "student": {
            "from_teacher_layers": [0],
            "warmup_epochs": 1,
            "alpha": 0.3,
            "learning_rate": 5e-2,
            "num_train_epochs": 2,
            "lora": {"r": 2, "lora_alpha": 4, "target_modules": ["query", "value"]},
            **common,
        },
        "evaluation": {"latency_batch_sizes": [2], "plots": False, "batch_size": 8},
        "output_dir": str(tmp / "run"),
        "seed": 0,
    }
    config = DistillationPipelineConfig.from_dict(recipe)
    return {"config": config, "result": run_pipeline(config), "root": tmp / "run", "teacher_base": teacher}


def test_pipeline_lora_teacher_is_saved_merged_and_caches_its_logits(lora_run):
    import datasets

    root, base_dir = lora_run["root"], lora_run["teacher_base"]
    assert lora_run["result"]["teacher_model"] == str(root / "teacher" / "model")
    merged = _plain(root / "teacher" / "model")
    adapter = root / "teacher" / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 4
    done = json.loads((root / "teacher" / "DONE.json").read_text())
    assert done["adapter"] == str(adapter) and done["lora"]["r"] == 4

    base = _plain(base_dir)
    merged_sd, base_sd = merged.state_dict(), base.state_dict()
    # LoRA fine-tuning: the targeted projections and the head changed, the other weights did not.
    assert not torch.equal(
        merged_sd["bert.encoder.layer.0.attention.self.query.weight"],
        base_sd["bert.encoder.layer.0.attention.self.query.weight"],
    )
    assert not torch.equal(merged_sd["classifier.weight"], base_sd["classifier.weight"])
    for name in ("bert.encoder.layer.0.attention.self.key.weight", "bert.embeddings.word_embeddings.weight"):
        assert torch.equal(merged_sd[name], base_sd[name]), name

    cached = datasets.load_from_disk(str(root / "teacher_logits" / "dataset"))
    ids = cached["input_ids"]
    # The saved teacher computes what the base model plus the saved adapter computes.
    peft_teacher = PeftModel.from_pretrained(_plain(base_dir), str(adapter))
    assert torch.allclose(_logits(merged, ids), _logits(peft_teacher, ids), atol=1e-5)
    # The cached logits are the merged teacher's, not the base model's.
    cached_logits = torch.tensor(cached["teacher_logits"])
    assert torch.allclose(cached_logits, _logits(merged, ids), atol=1e-4)
    assert not torch.allclose(cached_logits, _logits(base, ids), atol=1e-3)


def test_pipeline_lora_student_is_saved_merged_and_evaluated(lora_run):
    import datasets

    root, result = lora_run["root"], lora_run["result"]
    assert result["stages"]["student_warmup"] == "ran" and result["stages"]["student"] == "ran"
    student_dir = Path(result["student_model"])
    assert student_dir == root / "student" / "model"
    student = _plain(student_dir)
    warm = _plain(root / "student_warmup" / "model")
    assert (root / "student_warmup" / "adapter" / "adapter_config.json").is_file()
    adapter = root / "student" / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 2
    done = json.loads((root / "student" / "DONE.json").read_text())
    assert done["adapter"] == str(adapter) and done["lora"]["r"] == 2

    ids = datasets.load_from_disk(str(root / "teacher_logits" / "dataset"))["input_ids"]
    # The saved student is the warm-up model with the student stage's adapter merged in.
    peft_student = PeftModel.from_pretrained(_plain(root / "student_warmup" / "model"), str(adapter))
    assert torch.allclose(_logits(student, ids), _logits(peft_student, ids), atol=1e-5)
    student_sd, warm_sd = student.state_dict(), warm.state_dict()
    assert not torch.equal(
        student_sd["bert.encoder.layer.0.attention.self.value.weight"],
        warm_sd["bert.encoder.layer.0.attention.self.value.weight"],
    )
    assert torch.equal(
        student_sd["bert.encoder.layer.0.output.dense.weight"], warm_sd["bert.encoder.layer.0.output.dense.weight"]
    )
    assert student.config.num_hidden_layers == 1 and list(student.config.id2label.values()) == LABELS

    # The evaluation stage scored the saved (merged) student.
    from hf_kd.pipeline.scoring import evaluate_model

    metrics = evaluate_model(lora_run["config"], str(student_dir), split="validation")
    assert metrics["micro_f1"] == pytest.approx(result["student"]["validation"]["micro_f1"])


@pytest.mark.parametrize(
    ("lora", "match"),
    [
        ({"rank": 4}, r"student\.lora.*'rank'"),
        ({"r": 4, "target_module": ["query"]}, r"'target_module'"),
        ({"peft_type": "LORA"}, r"'peft_type'"),
        ({"task_type": "CAUSAL_LM"}, r"task_type.*SEQ_CLS.*CAUSAL_LM"),
        ([4], r"student\.lora.*mapping"),
    ],
)
def test_bad_lora_section_is_a_value_error_naming_it(lora, match):
    with pytest.raises(ValueError, match=match):
        DistillationPipelineConfig.from_dict({"teacher": {"model": "t"}, "student": {"lora": lora}})


def test_lora_sections_roundtrip_through_yaml(tmp_path):
    config = DistillationPipelineConfig.from_dict(
        {"teacher": {"model": "t", "lora": {"r": 8}}, "student": {"lora": {"r": 2, "lora_dropout": 0.1}}}
    )
    assert config.teacher.lora == {"r": 8} and config.student.lora == {"r": 2, "lora_dropout": 0.1}
    assert config.teacher.training == {} and config.student.training == {}
    config.to_yaml(tmp_path / "recipe.yaml")
    assert DistillationPipelineConfig.from_yaml(tmp_path / "recipe.yaml") == config
    with pytest.raises(ValueError, match=r"teacher\.lora.*'alpha'"):
        DistillationPipelineConfig.from_dict({"teacher": {"model": "t", "lora": {"alpha": 8}}})
