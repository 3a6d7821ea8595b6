"""The paths reached at scale, in one process: projections as part of the student, accumulation without counts,
a stale teacher-logit column, labels checked before the loss, the search's students and the Hub card."""

from __future__ import annotations

from types import SimpleNamespace

import datasets
import pytest
import torch
from conftest import StepLog, args_for, random_dataset, tiny_bert
from transformers import TrainerCallback

from hf_kd import DistillationTrainer, DistillationTrainingArguments, cache_teacher_logits
from hf_kd.training.intermediate import PROJECTIONS_MODULE
from hf_kd.training.losses import validate_labels


def _hidden_trainer(out, **kwargs):
    """A 32-wide student distilled from a 48-wide teacher's hidden states: the projections are 32 -> 48."""
    defaults = dict(hidden_loss_weight=1.0, alpha=0.5, num_train_epochs=2, max_grad_norm=1.0)
    defaults.update(kwargs)
    return DistillationTrainer(
        model=tiny_bert(dropout=0.1),
        teacher_model=tiny_bert(hidden_size=48, layers=4, seed=1),
        train_dataset=random_dataset(n=24),
        args=args_for(out, **defaults),
    )


class _GradientsAfterStep(TrainerCallback):
    """The projections' gradients at the end of each step (after Trainer's `zero_grad`) and before the update."""

    def __init__(self):
        self.after, self.before = [], []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        grad = getattr(model, PROJECTIONS_MODULE).projections[0].weight.grad
        self.before.append(float(grad.norm()))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        grad = getattr(model, PROJECTIONS_MODULE).projections[0].weight.grad
        self.after.append(0.0 if grad is None else float(grad.abs().max()))


def test_projections_are_trained_as_part_of_the_student(tmp_path):
    trainer = _hidden_trainer(tmp_path)
    probe = _GradientsAfterStep()
    trainer.add_callback(probe)
    trainer.train()
    projections = trainer.intermediate.projections
    assert projections[0].weight.shape == (48, 32)
    # In the optimizer through the student, and zeroed with it after every step: no gradient carried over.
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in in_optimizer for p in projections.parameters())
    assert probe.after == [0.0] * len(probe.after) and all(norm > 0 for norm in probe.before)
    # The saved student is a plain model of its architecture.
    trainer.save_model(str(tmp_path / "saved"))
    from safetensors.torch import load_file

    assert not any(k.startswith(PROJECTIONS_MODULE) for k in load_file(str(tmp_path / "saved" / "model.safetensors")))


def test_resume_with_a_width_projection_ends_with_the_uninterrupted_weights(tmp_path):
    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 4:
                control.should_training_stop = True

    def run(out, stop=False, resume=None):
        trainer, log = _hidden_trainer(out, save_strategy="steps", save_steps=3), StepLog()
        trainer.add_callback(log)
        if stop:
            trainer.add_callback(StopAt())
        trainer.train(resume_from_checkpoint=resume)
        return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}, log.steps

    full, full_steps = run(tmp_path / "full")
    run(tmp_path / "part", stop=True)
    checkpoint = tmp_path / "part" / "out" / "checkpoint-3"
    resumed, steps = run(tmp_path / "part", resume=str(checkpoint))
    assert steps == full_steps[3:] and steps[0] == 4  # resumed after step 3, not restarted
    assert any(k.startswith(PROJECTIONS_MODULE) for k in full)
    for name in full:
        torch.testing.assert_close(resumed[name], full[name], rtol=0, atol=1e-5, msg=name)


def test_resume_without_the_projections_file_is_refused(tmp_path):
    from hf_kd.training.intermediate import PROJECTIONS_FILE

    trainer = _hidden_trainer(tmp_path, save_strategy="steps", save_steps=3)
    trainer.train()
    checkpoint = tmp_path / "out" / "checkpoint-3"
    (checkpoint / PROJECTIONS_FILE).unlink()
    with pytest.raises(ValueError, match=f"checkpoint-3.*has no {PROJECTIONS_FILE}"):
        _hidden_trainer(tmp_path / "again").train(resume_from_checkpoint=str(checkpoint))


def test_training_twice_keeps_training_the_same_projections(tmp_path):
    trainer = _hidden_trainer(tmp_path, num_train_epochs=1)
    trainer.train()
    first = trainer.intermediate
    after_first = first.projections[0].weight.detach().clone()
    trainer.train()
    assert trainer.intermediate is first
    assert not torch.equal(first.projections[0].weight, after_first)  # trained further, not re-initialised
    fresh = _hidden_trainer(tmp_path / "fresh").intermediate.projections[0].weight
    assert not torch.equal(after_first, fresh)


def test_find_unused_parameters_is_off_with_projections_and_refused_on():
    args = DistillationTrainingArguments(output_dir="x", hidden_loss_weight=1.0, use_cpu=True, report_to="none")
    assert args.ddp_find_unused_parameters is False
    with pytest.raises(ValueError, match="ddp_find_unused_parameters=True"):
        DistillationTrainingArguments(output_dir="x", hidden_loss_weight=1.0, ddp_find_unused_parameters=True)
    assert DistillationTrainingArguments(output_dir="x", use_cpu=True).ddp_find_unused_parameters is None


def test_loss_without_item_counts_is_divided_by_the_accumulation_steps(tmp_path):
    trainer = DistillationTrainer(
        model=tiny_bert(), teacher_model=tiny_bert(seed=1), args=args_for(tmp_path, gradient_accumulation_steps=4)
    )
    data = random_dataset(n=4)
    batch = trainer.data_collator([data[i] for i in range(4)])
    trainer.model.train()
    trainer._num_examples_in_batch = None
    trainer.current_gradient_accumulation_steps = 4
    scaled = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=None)
    trainer.current_gradient_accumulation_steps = 1
    plain = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=None)
    torch.testing.assert_close(scaled, plain / 4)


def test_a_teacher_logits_column_beside_a_teacher_is_refused_unless_kept(tmp_path):
    other_teacher = tiny_bert(seed=5)
    stale = cache_teacher_logits(other_teacher, random_dataset(n=8), batch_size=8)
    with pytest.raises(ValueError, match="`teacher_logits` column.*keep_teacher_logits"):
        DistillationTrainer(
            model=tiny_bert(), teacher_model=tiny_bert(seed=1), args=args_for(tmp_path), train_dataset=stale
        )
    kept = DistillationTrainer(
        model=tiny_bert(),
        teacher_model=tiny_bert(seed=1),
        args=args_for(tmp_path, keep_teacher_logits=True),
        train_dataset=stale,
    )
    kept.train()  # trains from the column as asked


def test_precomputed_logits_come_from_the_trainers_own_teacher(tmp_path):
    # A cache of another teacher's logits in the output folder is not reused for this teacher (weights differ).
    data = random_dataset(n=8)
    first = cache_teacher_logits(tiny_bert(seed=5), data, batch_size=8, cache_dir=tmp_path / "cache")
    second = cache_teacher_logits(tiny_bert(seed=6), data, batch_size=8, cache_dir=tmp_path / "cache")
    assert first["teacher_logits"][:] != second["teacher_logits"][:]
    # Same weights, another config (activation): another fingerprint, so the logits are recomputed.
    changed = tiny_bert(seed=5)
    changed.config.hidden_act = "relu"
    changed.bert.encoder.layer[0].intermediate.intermediate_act_fn = torch.nn.ReLU()
    third = cache_teacher_logits(changed, data, batch_size=8, cache_dir=tmp_path / "cache")
    assert third["teacher_logits"][:] != first["teacher_logits"][:]


@pytest.mark.parametrize(
    ("labels", "problem_type", "pattern"),
    [
        (torch.tensor([0, 7]), "single_label_classification", "Label 7 is out of range: the student has 5 classes"),
        (torch.tensor([0, -3]), "single_label_classification", "Label -3 is negative"),
        (torch.tensor([[0.0, 1.0, 0.0, 0.0, 1.0]]), "single_label_classification", "multi-hot.*single-label"),
        (torch.tensor([1, 3]), "multi_label_classification", "row of 5 values.*class ids"),
        (torch.tensor([[0.0, 2.0, 0.0, 0.0, 1.0]]), "multi_label_classification", "value 2.0 is outside"),
    ],
)
def test_labels_are_checked_before_the_loss(labels, problem_type, pattern):
    with pytest.raises(ValueError, match=pattern):
        validate_labels(labels, problem_type, num_labels=5)


def test_out_of_range_label_fails_before_any_step(tmp_path):
    data = random_dataset(n=8, num_labels=3)
    labels = list(data["labels"])
    labels[5] = 7
    data = data.remove_columns("labels").add_column("labels", labels)
    trainer = DistillationTrainer(model=tiny_bert(), teacher_model=tiny_bert(seed=1), args=args_for(tmp_path))
    trainer.train_dataset = data
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(ValueError, match="Label 7 at row 5 of the training set is not a class id"):
        trainer.train()
    assert trainer.state.global_step == 0
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_pso_builds_one_student_per_trial(tmp_path):
    calls = []

    def model_init():
        calls.append(1)
        return tiny_bert()

    trainer = DistillationTrainer(
        model_init=model_init,
        teacher_model=tiny_bert(seed=1),
        args=args_for(tmp_path, max_steps=1),
        train_dataset=random_dataset(n=8),
        eval_dataset=random_dataset(n=4),
    )
    calls.clear()  # Trainer.__init__ builds one
    trainer.hyperparameter_search(backend="pso", hp_space={"alpha": (0.1, 0.9)}, n_trials=4, n_particles=2)
    assert len(calls) == 4


def test_push_to_hub_uploads_the_distillation_card(tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    uploads = []

    def create_repo(self, repo_id, **kwargs):
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, repo_id, folder_path, **kwargs):
        from pathlib import Path

        folder = Path(folder_path)
        uploads.append((repo_id, (folder / "README.md").read_text(), sorted(p.name for p in folder.iterdir())))
        return "https://huggingface.co/" + repo_id

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    trainer = DistillationTrainer(
        model=tiny_bert(id2label={0: "a", 1: "b", 2: "c"}),
        teacher_model=tiny_bert(seed=1, id2label={0: "a", 1: "b", 2: "c"}),
        train_dataset=random_dataset(n=8),
        eval_dataset=random_dataset(n=4),
        args=args_for(tmp_path, temperature=3.0, alpha=0.25, hub_model_id="org/student", max_steps=2),
    )
    trainer.train()
    trainer.evaluate()
    trainer.push_to_hub(dataset_tags="org/notes")
    ((repo, readme, files),) = uploads
    assert repo == "org/student" and "model.safetensors" in files
    assert "knowledge-distillation" in readme and "hf-kd" in readme
    assert "| Temperature | 3 |" in readme and "| Alpha (weight of the hard-label loss) | 0.25 |" in readme
    assert "model-index" in readme and "org/notes" in readme

    # Without dataset ids, an in-memory evaluation set still gives the Hub its results.
    uploads.clear()
    trainer.push_to_hub()
    ((_, readme, _),) = uploads
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    _, results = model_index_to_eval_results(ModelCard(readme).data.to_dict()["model-index"])
    assert results and {r.dataset_name for r in results} == {"evaluation set"}
    assert {r.metric_name for r in results} >= {"eval_loss"}


@pytest.mark.parametrize(
    ("labels", "problem_type", "pattern"),
    [
        ([0] * 23 + [7] + [1] * 6, "single_label_classification", "Label 7 at row 23 of the training set"),
        ([0] * 23 + [None] + [1] * 6, "single_label_classification", "Missing label at row 23 of the training set"),
        (
            [[0.0, 1.0, 0.0]] * 16 + [[0.0, 1.0]] + [[1.0, 0.0, 0.0]] * 3,
            "multi_label_classification",
            "label row at row 16 of the training set has 2 values",
        ),
        (
            [[0.0, 1.0, 0.0]] * 16 + [[0.0, 1.0, 2.0]] + [[1.0, 0.0, 0.0]] * 3,
            "multi_label_classification",
            "value 2.0 at row 16 of the training set",
        ),
    ],
)
def test_a_label_column_checked_a_chunk_at_a_time_names_the_row_in_the_whole_set(labels, problem_type, pattern):
    from transformers import BertConfig

    from hf_kd.data.label_checks import check_label_column

    config = BertConfig(num_labels=3, problem_type=problem_type)
    data = datasets.Dataset.from_dict({"labels": labels})
    with pytest.raises(ValueError, match=pattern):
        check_label_column(data, config, chunk_rows=7)  # the bad row sits in the third chunk, not at its start
    fixed = [row for i, row in enumerate(labels) if i not in (16, 23)]
    check_label_column(datasets.Dataset.from_dict({"labels": fixed}), config, chunk_rows=7)  # the rest passes


def test_length_grouped_batches_read_the_lengths_from_arrow_and_keep_transformers_order(tmp_path, monkeypatch):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    g = torch.Generator().manual_seed(3)
    lengths = torch.randint(2, 12, (40,), generator=g).tolist()
    rows = [torch.randint(5, 60, (n,), generator=g).tolist() for n in lengths]
    data = datasets.Dataset.from_dict({"input_ids": rows, "labels": [i % 3 for i in range(40)]})
    data = data.select(range(39, -1, -1))  # an indices mapping: the order is the dataset's, not the file's
    trainer = DistillationTrainer(
        model=tiny_bert(),
        teacher_model=tiny_bert(seed=1),
        args=args_for(tmp_path, train_sampling_strategy="group_by_length", per_device_train_batch_size=2),
        train_dataset=data,
    )
    reads = []
    original = datasets.Dataset.__getitem__
    monkeypatch.setattr(datasets.Dataset, "__getitem__", lambda self, key: reads.append(key) or original(self, key))
    sampler = trainer._get_train_sampler(data)
    assert reads == []  # no row read through Python to learn the lengths
    assert sampler.lengths == lengths[::-1]
    monkeypatch.setattr(datasets.Dataset, "__getitem__", original)
    reference = LengthGroupedSampler(2, dataset=data, model_input_name="input_ids")  # transformers' own, row by row
    torch.manual_seed(11)
    ours = list(sampler)
    torch.manual_seed(11)
    assert ours == list(reference)


def _iteration_peak_bytes(sampler) -> int:
    """The most Python memory held at once while `sampler` yields a whole epoch."""
    import tracemalloc

    tracemalloc.start()
    try:
        for _ in sampler:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_shuffled_epoch_keeps_accelerates_order_without_a_list_of_every_row():
    from accelerate.data_loader import SeedableRandomSampler

    from hf_kd.data.mapped import ShuffledIndexSampler

    rows = 1_000_000
    ours = ShuffledIndexSampler(rows, seed=5)
    theirs = SeedableRandomSampler(range(rows), data_seed=5)
    for epoch in (0, 1, 3):
        ours.set_epoch(epoch)
        theirs.set_epoch(epoch)
        assert list(ours) == list(theirs)  # the same permutation, epoch by epoch
    # accelerate's sampler holds the epoch as a list of Python ints (about 36 MB here); ours a chunk of them at a time.
    assert _iteration_peak_bytes(ours) < 8e6 < 30e6 < _iteration_peak_bytes(theirs)


@pytest.mark.parametrize("data_seed", [None, 7])
def test_the_trainers_shuffled_batches_are_transformers_own(tmp_path, data_seed):
    from transformers import Trainer

    from hf_kd.data.mapped import ShuffledIndexSampler

    rows = range(40)
    data = datasets.Dataset.from_dict({"input_ids": [[i + 5] for i in rows], "labels": [i % 3 for i in rows]})

    def epochs(trainer):
        loader = trainer.get_train_dataloader()
        out = []
        for epoch in range(2):
            loader.set_epoch(epoch)
            out.append([int(row) for batch in loader for row in batch["input_ids"][:, 0]])
        return out, loader

    teacher = tiny_bert(seed=1)
    args = args_for(tmp_path, per_device_train_batch_size=5, data_seed=data_seed)
    ours, loader = epochs(DistillationTrainer(model=tiny_bert(), teacher_model=teacher, args=args, train_dataset=data))
    reference, _ = epochs(Trainer(model=tiny_bert(), args=args, train_dataset=data))
    assert isinstance(loader.batch_sampler.sampler, ShuffledIndexSampler)
    assert ours == reference and ours[0] != ours[1] and sorted(ours[0]) == list(range(5, 45))
