"""Two CPU processes under DDP (gloo) give the student one process gives; the teacher is never DDP-wrapped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"


def run(cmd, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.mark.slow
def test_two_processes_match_one_process_and_teacher_is_not_wrapped(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run([sys.executable, str(SCRIPT), str(one), "8"], tmp_path)
    run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29533",
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
