"""The distillation model card: Hub metadata checked offline with huggingface_hub, body, trainer settings, privacy."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import args_for, random_dataset, tiny_bert
from huggingface_hub import metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results
from transformers import AutoModelForSequenceClassification, Trainer

from hf_kd import DistillationTrainer
from hf_kd.evaluation.metrics import make_compute_metrics
from hf_kd.evaluation.model_stats import measure_latency, model_size
from hf_kd.reporting.card_data import DistillationCardData, card_data_from_trainer
from hf_kd.reporting.model_card import REQUIRED_TAGS, build_model_card, validate_model_card, write_model_card
from hf_kd.reporting.plots import plot_per_label_f1, plot_training_curves
from hf_kd.reporting.report import build_report
from hf_kd.reporting.report import write_report as write_report_files

STUDENT_METRICS = {
    "eval_micro_f1": 0.71234567,
    "eval_macro_f1": 0.6,
    "eval_auroc": float("nan"),
    "eval_runtime": 1.25,
    "eval_model_preparation_time": 0.01,
    "epoch": 3.0,
}
TEACHER_METRICS = {"eval_micro_f1": 0.8, "eval_macro_f1": 0.7}


@pytest.fixture(autouse=True)
def no_hub(monkeypatch):
    """Any download attempt fails the test: the card must be checked offline."""
    import huggingface_hub.repocard

    def refuse(*args, **kwargs):
        raise AssertionError("the Hub was called")

    monkeypatch.setattr(huggingface_hub.repocard, "hf_hub_download", refuse)


def card_data(**kwargs) -> DistillationCardData:
    defaults = dict(
        model_name="hoc-student",
        base_model="prajjwal1/bert-tiny",
        teacher_id="org/pubmedbert-hoc",
        teacher_revision="0123abcd",
        problem_type="multi_label_classification",
        temperature=2.0,
        alpha=0.5,
        losses={"hard": "binary cross-entropy", "distill": "bernoulli_kl"},
        cached_teacher_logits=True,
        datasets=["bigbio/hoc"],
        eval_split="test",
        student_metrics=dict(STUDENT_METRICS),
        teacher_metrics=dict(TEACHER_METRICS),
        language=["en"],
        license="apache-2.0",
        tags=["medical"],
    )
    defaults.update(kwargs)
    return DistillationCardData(**defaults)


# ----------------------------------------------------------------------------- metadata


def test_pushed_folder_card_validates_offline(tmp_path):
    folder = tmp_path / "student"
    tiny_bert().save_pretrained(folder)
    path = write_model_card(folder, card_data())
    assert path == folder / "README.md"

    card = validate_model_card(folder)
    metadata = card.data.to_dict()
    assert metadata_load(path) == metadata
    assert metadata["library_name"] == "transformers"
    assert set(REQUIRED_TAGS) <= set(metadata["tags"]) and "medical" in metadata["tags"]
    assert {"text-classification", "knowledge-distillation", "hf-kd"} <= set(metadata["tags"])
    assert metadata["base_model"] == "prajjwal1/bert-tiny"
    assert metadata["datasets"] == ["bigbio/hoc"]
    assert metadata["language"] == ["en"] and metadata["license"] == "apache-2.0"

    name, results = model_index_to_eval_results(metadata["model-index"])
    assert name == "hoc-student"
    values = {r.metric_name: r.metric_value for r in results}
    # exactly the input values; no NaN, runtime, preparation time or epoch
    assert values == {"eval_micro_f1": STUDENT_METRICS["eval_micro_f1"], "eval_macro_f1": 0.6}
    assert {r.metric_type for r in results} == {"micro_f1", "macro_f1"}
    assert {(r.task_type, r.dataset_type, r.dataset_split) for r in results} == {
        ("text-classification", "bigbio/hoc", "test")
    }
    # The folder still loads as a model.
    assert AutoModelForSequenceClassification.from_pretrained(folder).config.num_labels == 3


def test_card_body(tmp_path):
    report = build_report(
        {"metrics": TEACHER_METRICS, "parameters": 1000, "size_mb": 4.0},
        {"metrics": STUDENT_METRICS, "parameters": 250, "size_mb": 1.0},
    )
    text = build_model_card(card_data(layer_mapping=[2, 4], loss_weights={"hidden states": 1.0}), report).content
    body = text.split("---", 2)[2]
    assert "[org/pubmedbert-hoc](https://huggingface.co/org/pubmedbert-hoc)" in body and "`0123abcd`" in body
    assert "[prajjwal1/bert-tiny](https://huggingface.co/prajjwal1/bert-tiny)" in body
    for section in ("## Distillation settings", "## Teacher vs student", "## Intended use", "## Limitations"):
        assert section in body
    assert "## Privacy" in body and "no training, evaluation or example text" in body
    assert "| Temperature | 2 |" in body and "| Alpha (weight of the hard-label loss) | 0.5 |" in body
    assert "| Loss: distill | per-label sigmoid (Bernoulli) KL |" in body
    assert "| Layer mapping (teacher layer per student layer) | 2, 4 |" in body
    assert "| Weight: hidden states | 1 |" in body and "| Cached teacher logits | yes |" in body
    assert "| eval_micro_f1 | 0.8000 | 0.7123 | 0.890 |" in body
    assert "| Parameters | 1,000 | 250 | 0.250 |" in body


def test_report_fills_metrics_and_ratios():
    report = build_report(
        {"metrics": {"micro_f1": 0.8}, "size_mb": 4.0, "latency": {"per_batch_size": {"1": {"ms_per_example": 6}}}},
        {"metrics": {"micro_f1": 0.6}, "size_mb": 1.0, "latency": {"per_batch_size": {"1": {"ms_per_example": 2}}}},
    )
    data = card_data(student_metrics={}, teacher_metrics={}).with_report(report)
    assert data.student_metrics == {"micro_f1": 0.6} and data.teacher_metrics == {"micro_f1": 0.8}
    assert data.size_ratio == pytest.approx(0.25) and data.speedup == pytest.approx({"1": 3.0})
    # Without the report, the body still shows the recorded ratios.
    body = build_model_card(data).content
    assert "| Speed-up, batch 1 (teacher / student latency) | – | – | 3.00× |" in body
    assert "| Size on disk (MB) | – | – | 0.250 |" in body


def test_local_base_model_stays_out_of_metadata(tmp_path):
    card = build_model_card(card_data(base_model=str(tmp_path / "init")))
    assert "base_model" not in card.data.to_dict()


def test_no_dataset_means_no_model_index(tmp_path):
    path = write_model_card(tmp_path, card_data(datasets=[]))
    assert "model-index" not in metadata_load(path)
    with pytest.raises(ValueError, match="no model-index"):
        validate_model_card(path)


@pytest.mark.parametrize(
    ("metadata", "pattern"),
    [
        (dict(library_name="transformers", tags=["hf-kd"]), "tags lack"),
        (dict(library_name="timm", tags=list(REQUIRED_TAGS)), "library_name"),
        (dict(library_name="transformers", tags=list(REQUIRED_TAGS), base_model=[1]), "base_model"),
        (dict(library_name="transformers", tags=list(REQUIRED_TAGS), **{"model-index": [{"name": "x"}]}), "parse"),
        (
            dict(
                library_name="transformers",
                tags=list(REQUIRED_TAGS),
                **{"model-index": [{"name": "x", "results": []}]},
            ),
            "no result",
        ),
    ],
)
def test_validation_rejects_bad_metadata(tmp_path, metadata, pattern):
    path = tmp_path / "README.md"
    # Hand-written YAML on purpose: huggingface_hub refuses to build some of these broken headers.
    path.write_text(f"---\n{yaml.safe_dump(metadata)}---\n# x\n")
    with pytest.raises(ValueError, match=pattern):
        validate_model_card(path)


def test_validation_rejects_forbidden_strings_and_missing_card(tmp_path):
    path = write_model_card(tmp_path, card_data())
    validate_model_card(path, forbidden=["fiebre y tos"])
    with pytest.raises(ValueError, match="forbidden"):
        validate_model_card(path, forbidden=["pubmedbert"])
    with pytest.raises(ValueError, match="No model card"):
        validate_model_card(tmp_path / "elsewhere")


# ----------------------------------------------------------------------------- trainer


def test_card_data_from_trainer_reads_settings(tmp_path):
    labels = {0: "Tumor growth", 1: "Immune evasion", 2: "Cell death"}
    student = tiny_bert(problem_type="multi_label_classification", id2label=labels)
    teacher = tiny_bert(problem_type="multi_label_classification", id2label=labels, layers=4, seed=1)
    teacher.config._name_or_path = "org/teacher-from-config"
    args = args_for(
        tmp_path,
        temperature=3.0,
        alpha=0.3,
        head_learning_rate=1e-3,
        hidden_loss_weight=0.5,
        hidden_loss="cosine",
        layer_mapping=[2, 4],
        precompute_teacher_logits=True,
        multi_label_distillation_loss="mse",
        teacher_model_init_kwargs={"revision": "v1.2"},
        hub_model_id="me/hoc-tiny",
    )
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args)
    data = card_data_from_trainer(
        trainer, dataset_names=["bigbio/hoc"], metrics=STUDENT_METRICS, license="apache-2.0", eval_split="test"
    )
    assert data.teacher_id == "org/teacher-from-config" and data.teacher_revision == "v1.2"
    assert data.model_name == "hoc-tiny"
    assert (data.temperature, data.alpha, data.head_learning_rate) == (3.0, 0.3, 1e-3)
    assert data.losses == {"hard": "binary cross-entropy", "distill": "mse", "hidden": "cosine"}
    assert data.loss_weights == {"hidden states": 0.5, "attention maps": 0.0}
    assert data.layer_mapping == [2, 4]
    assert data.cached_teacher_logits is True
    assert data.problem_type == "multi_label_classification"
    assert data.label_names == ["Tumor growth", "Immune evasion", "Cell death"]
    assert data.datasets == ["bigbio/hoc"] and data.license == "apache-2.0" and data.eval_split == "test"
    assert data.student_metrics == {"eval_micro_f1": STUDENT_METRICS["eval_micro_f1"], "eval_macro_f1": 0.6}
    assert data.training["Learning rate"] == 1e-2 and data.training["Seed"] == 0

    explicit = card_data_from_trainer(trainer, teacher_id="org/explicit", teacher_revision="abc")
    assert (explicit.teacher_id, explicit.teacher_revision) == ("org/explicit", "abc")


def test_create_model_card_arguments_map_to_card_fields_and_the_old_name_warns(tmp_path):
    from hf_kd.reporting.card_data import card_data_from_model_card_args, trainer_card_data

    trainer = DistillationTrainer(
        model=tiny_bert(problem_type="single_label_classification"),
        teacher_model=tiny_bert(seed=1),
        args=args_for(tmp_path, "run"),
    )
    given = {"language": "es", "tags": "triage", "finetuned_from": "org/base", "dataset": "x"}
    data = card_data_from_model_card_args(trainer, **given)
    assert (data.language, data.base_model, data.datasets) == (["es"], "org/base", ["x"])
    assert "triage" in data.tags and data.model_name == "run"
    with pytest.warns(FutureWarning, match="card_data_from_model_card_args"):
        old = trainer_card_data(trainer, **given)
    assert old == data


def test_card_data_from_trainer_defaults(tmp_path):
    trainer = DistillationTrainer(
        model=tiny_bert(problem_type="single_label_classification"),
        teacher_model=tiny_bert(seed=1),
        args=args_for(tmp_path, "run"),
    )
    data = card_data_from_trainer(trainer)
    assert data.losses == {"hard": "cross-entropy", "distill": "kl"}
    assert data.loss_weights == {} and data.layer_mapping is None and data.head_learning_rate is None
    assert data.cached_teacher_logits is False and data.teacher_revision is None
    assert data.base_model is None and data.label_names == []  # random init, default LABEL_i names
    assert data.model_name == "run"


# ----------------------------------------------------------------------------- privacy

SENTINEL = "ZQXSENTINEL-Patient-Doe-4711"


def _files_containing(root: Path, needle: str) -> list[Path]:
    needles = {needle.encode(), needle.lower().encode(), needle.upper().encode()}
    return [p for p in root.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]


def test_no_example_text_in_any_written_file(tmp_path, tokenizer):
    """A full run on a dataset holding a sentinel string writes no file containing it."""
    labels = {0: "fever", 1: "cough", 2: "pain"}
    texts = [f"the patient {SENTINEL} presento fiebre y tos number {i}" for i in range(12)]
    dataset = random_dataset(n=12, seq=8, kind="multi").add_column("text", texts)
    assert SENTINEL in dataset["text"][0]
    compute_metrics = make_compute_metrics("multi_label_classification", label_names=list(labels.values()))
    student = tiny_bert(problem_type="multi_label_classification", id2label=labels, layers=1)
    teacher = tiny_bert(problem_type="multi_label_classification", id2label=labels, seed=1)

    out = tmp_path / "out"
    args = args_for(tmp_path, "run", output_dir=str(out / "run"), eval_strategy="epoch", max_steps=3)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
    )
    trainer.train()
    student_metrics = trainer.evaluate()
    teacher_metrics = Trainer(
        model=teacher, args=args, eval_dataset=dataset, processing_class=tokenizer, compute_metrics=compute_metrics
    ).evaluate()
    assert "eval_f1_fever" in student_metrics

    student_dir = out / "student"
    trainer.save_model(str(student_dir))
    latency = {"batch_sizes": (1, 2), "seq_len": 16, "n_warmup": 0, "n_runs": 1}
    report = build_report(
        {"metrics": teacher_metrics, **model_size(teacher), "latency": measure_latency(teacher, tokenizer, **latency)},
        {
            "metrics": student_metrics,
            **model_size(student_dir),
            "latency": measure_latency(student, tokenizer, **latency),
        },
        extra={"dataset": "local/notes"},
    )
    write_report_files(report, out / "report")
    plot_training_curves(trainer.state.log_history, out / "report" / "curves.png")
    plot_per_label_f1(teacher_metrics, student_metrics, list(labels.values()), out / "report" / "per_label_f1.png")
    data = card_data_from_trainer(
        trainer, teacher_id="org/teacher", dataset_names=["local/notes"], metrics=student_metrics
    )
    card_path = write_model_card(student_dir, data, report)
    validate_model_card(card_path, forbidden=[SENTINEL, *texts])

    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert {"student/README.md", "student/model.safetensors", "report/report.json", "report/report.md"} <= set(written)
    assert _files_containing(out, SENTINEL) == []

    # The scan does find the sentinel where it is.
    control = tmp_path / "control"
    control.mkdir()
    (control / "notes.json").write_text(f'{{"text": "{SENTINEL.lower()}"}}')
    assert _files_containing(control, SENTINEL) == [control / "notes.json"]
