"""Two CPU processes under DDP (gloo) give the student one process gives; the teacher is never DDP-wrapped.

The trainer is checked under `torchrun`, the `hf-kd distill` pipeline under `accelerate launch` with
`recipes/accelerate/multi_cpu.yaml`.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import make_tokenizer, tiny_bert
from safetensors.torch import load_file

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ddp_train.py"
TEACHER_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "distributed_teacher.py"
PIPELINE_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ddp_pipeline.py"
MULTI_CPU_CONFIG = Path(__file__).resolve().parents[2] / "recipes" / "accelerate" / "multi_cpu.yaml"


def run(cmd, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.mark.slow
def test_two_processes_match_one_process_and_teacher_is_not_wrapped(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run([sys.executable, str(SCRIPT), str(one), "8"], tmp_path)
    run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(SCRIPT),
            str(two),
            "4",
        ],
        tmp_path,
    )
    infos = [json.loads((two / f"info-{r}.json").read_text()) for r in (0, 1)]
    assert all(i["world_size"] == 2 for i in infos)
    assert all(i["student_wrapped"] == "DistributedDataParallel" for i in infos)
    assert all(i["teacher_type"] != "DistributedDataParallel" and not i["teacher_training"] for i in infos)
    a, b = load_file(str(one / "weights.safetensors")), load_file(str(two / "weights.safetensors"))
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)


LABELS = ("cough", "fever", "pain")
FILLER = ("patient", "the", "a", "tumor", "chest", "acute", "chronic")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_files(folder: Path) -> Path:
    """Multi-label jsonl splits whose texts all have 6 words, each one token of the test vocabulary.

    With equal lengths a batch of 8 and two batches of 4 hold the same padding-free rows, so one and two processes
    compute the same sums; with padding they agree to float rounding only, which 60 Adam steps grow to about 1e-3.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for split, n in (("train", 32), ("validation", 16), ("test", 16)):
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for _ in range(n):
                labels = [label for label in LABELS if rng.random() < 0.4]
                words = [rng.choice(FILLER) for _ in range(6 - len(labels))] + labels
                rng.shuffle(words)
                handle.write(json.dumps({"text": " ".join(words), "labels": labels}) + "\n")
    # A transfer set of 8 unlabeled rows (its own folder: not a split of the data).
    (folder.parent / "unlabeled").mkdir(exist_ok=True)
    rows = [{"text": " ".join(rng.choice(FILLER) for _ in range(6))} for _ in range(8)]
    (folder.parent / "unlabeled" / "notes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _pipeline_recipe(folder: Path, data: Path, teacher: Path, per_device: int) -> Path:
    common = {
        "per_device_train_batch_size": per_device,
        "num_train_epochs": 15,
        "learning_rate": 5e-3,
        "logging_steps": 1,
        "use_cpu": True,
    }
    recipe = {
        "data": {
            "dataset": "files",
            "path": str(data),
            "max_length": 16,
            "unlabeled_files": [str(data.parent / "unlabeled" / "notes.jsonl")],
        },
        "teacher": {"model": str(teacher), **common},
        # The teacher runs online in the student stage too, so that its placement there is checked.
        "student": {"from_teacher_layers": [0], "alpha": 0.5, "temperature": 2.0, "online_teacher": True, **common},
        "evaluation": {"batch_size": 4, "latency": False, "plots": False},
        "output_dir": str(folder / "run"),
        "seed": 0,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def _infos(folder: Path, processes: int) -> list[dict]:
    return [json.loads((folder / "info" / f"info-{rank}.json").read_text()) for rank in range(processes)]


def _losses(run: Path, stage: str) -> list[float]:
    return [entry["loss"] for entry in json.loads((run / stage / "log_history.json").read_text()) if "loss" in entry]


@pytest.mark.slow
def test_pipeline_two_processes_match_one_process(tmp_path):
    data = _write_files(tmp_path / "data")
    teacher = tmp_path / "teacher_base"
    tiny_bert(num_labels=len(LABELS), layers=2).save_pretrained(teacher)
    make_tokenizer(tmp_path / "tok").save_pretrained(teacher)
    one, two = tmp_path / "one", tmp_path / "two"
    # The same global batch of 8: one process of 8, two of 4.
    recipe_one, recipe_two = _pipeline_recipe(one, data, teacher, 8), _pipeline_recipe(two, data, teacher, 4)
    run([sys.executable, str(PIPELINE_SCRIPT), str(recipe_one), str(one / "info")], tmp_path)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(MULTI_CPU_CONFIG)]
    launch += ["--main_process_port", str(_free_port()), str(PIPELINE_SCRIPT)]
    printed = run([*launch, str(recipe_two), str(two / "info")], tmp_path).stdout

    (single,) = _infos(one, 1)
    pair = _infos(two, 2)
    assert single["num_processes"] == 1 and [i["num_processes"] for i in pair] == [2, 2]
    assert [i["process_index"] for i in pair] == [0, 1]
    # `hf-kd` closes the process group when it is done (an open gloo group can abort the process at exit).
    assert [i["process_group_open_after_cli"] for i in pair] == [False, False]

    # The teacher's pass is shared: each process runs it over its half of the training set and the transfer set.
    assert single["teacher_logits_examples"] == 32 + 8
    assert [i["teacher_logits_state"] for i in pair] == [[2, True], [2, False]]
    assert [i["teacher_logits_examples"] for i in pair] == [20, 20]
    # Only the main process prints the report and the summary.
    assert printed.count("| validation_micro_f1 |") == 1 and printed.count('"stages":') == 1
    assert json.loads((two / "run" / "teacher_logits" / "DONE.json").read_text())["num_rows"] == 32 + 8

    # Both stages train under DDP; the student stage's online teacher is frozen, in eval mode and not wrapped.
    for info in pair:
        assert [t["stage"] for t in info["trainers"]] == ["teacher", "student"]
        for trained in info["trainers"]:
            assert trained["world_size"] == 2 and trained["model_wrapped"] == "DistributedDataParallel"
        student_stage = info["trainers"][1]
        assert student_stage["teacher"] == "BertForSequenceClassification"
        assert student_stage["teacher_training"] is False and student_stage["teacher_requires_grad"] is False

    # Same training (loss at every step) and the same metrics of both models on both splits. The teacher trains on
    # the 32 labelled rows (4 steps an epoch), the student on them and the 8 unlabeled ones (5 steps).
    for stage, steps in (("teacher", 4), ("student", 5)):
        expected = _losses(one / "run", stage)
        assert len(expected) == 15 * steps
        assert _losses(two / "run", stage) == pytest.approx(expected, rel=1e-4)
    expected = json.loads((one / "run" / "evaluation" / "DONE.json").read_text())
    got = json.loads((two / "run" / "evaluation" / "DONE.json").read_text())
    for side in ("teacher", "student"):
        assert set(got[side]) == {"validation", "test"}
        for split, metrics in expected[side].items():
            assert got[side][split] == pytest.approx(metrics, abs=1e-6), (side, split)
    expected_report = json.loads((one / "run" / "report.json").read_text())
    got_report = json.loads((two / "run" / "report.json").read_text())
    for side in ("teacher", "student"):
        assert got_report[side]["metrics"] == pytest.approx(expected_report[side]["metrics"], abs=1e-6)
    # Both models learnt something: they do not predict every label for every example.
    assert all(expected[side]["validation"]["micro_recall"] < 1.0 for side in ("teacher", "student"))


def _torchrun(script: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), *args]


@pytest.mark.slow
def test_teacher_pass_is_shared_and_fsdp_shards_the_teacher(tmp_path):
    run([sys.executable, str(TEACHER_SCRIPT), str(tmp_path / "one")], tmp_path)
    run(_torchrun(TEACHER_SCRIPT, str(tmp_path / "two")), tmp_path)
    single = json.loads((tmp_path / "one" / "info-0.json").read_text())
    pair = [json.loads((tmp_path / "two" / f"info-{r}.json").read_text()) for r in (0, 1)]
    # One process runs the teacher over all 41 examples; two run it over 21 each (20 + 1 padding row for one).
    assert single["memory_examples"] == single["disk_examples"] == 41
    assert [i["memory_examples"] for i in pair] == [21, 21] and [i["disk_examples"] for i in pair] == [21, 21]
    assert [i["cached_examples"] for i in pair] == [0, 0]  # the store written once is read by both
    # Each process wrote its own shard file; they are joined on disk, not gathered through the process group.
    assert single["store_files"] == ["data-00000-of-00001.arrow", "dataset_info.json", "state.json"]
    assert (
        pair[0]["store_files"]
        == ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow"] + single["store_files"][1:]
    )
    assert [i["object_gathers"] for i in pair] == [0, 0]
    for info in pair:
        for key in ("memory_logits", "disk_logits", "again_logits"):  # gathered in order: the 1-process cache
            torch.testing.assert_close(torch.tensor(info[key]), torch.tensor(single[key]), rtol=0, atol=1e-6)
    # FSDP2: each process holds about half of the teacher, and the logits are the unsharded teacher's.
    assert sum(i["local_parameters"] for i in pair) == pair[0]["full_parameters"]
    assert all(0.45 < i["local_parameters"] / i["full_parameters"] < 0.55 for i in pair)
    assert all(i["sharded_logits_equal"] and i["prepared_sharded"] and i["prepared_frozen"] for i in pair)


@pytest.mark.slow
def test_hidden_state_distillation_under_ddp_matches_one_process(tmp_path):
    # A narrower student: the layer projections are trained, and as part of the student DDP averages their gradients.
    one, two = tmp_path / "one", tmp_path / "two"
    run([sys.executable, str(SCRIPT), str(one), "8", "hidden"], tmp_path)
    run(_torchrun(SCRIPT, str(two), "4", "hidden"), tmp_path)
    a, b = load_file(str(one / "weights.safetensors")), load_file(str(two / "weights.safetensors"))
    assert any(name.startswith("hf_kd_projections.projections.") for name in a)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)
    single = json.loads((one / "info-0.json").read_text())
    pair = [json.loads((two / f"info-{r}.json").read_text()) for r in (0, 1)]
    assert all(
        i["student_wrapped"] == "DistributedDataParallel" and i["find_unused_parameters"] is False for i in pair
    )
    # The teacher's agreement on 7 evaluation examples (the last batch padded by the sampler) equals one process's.
    for key in ("eval_teacher_agreement", "eval_distill_loss"):
        assert [i["eval"][key] for i in pair] == pytest.approx([single["eval"][key]] * 2, rel=1e-6)
    # Without average_tokens_across_devices each process normalises by its own labelled items.
    assert [pair[0]["local_num_items"][k] + pair[1]["local_num_items"][k] for k in (0, 1)] == single["local_num_items"]
