"""Run `hf-kd distill RECIPE` alone or under `accelerate launch`; each process writes what the test checks.

    python ddp_pipeline.py RECIPE.yaml INFO_DIR
    accelerate launch --config_file recipes/accelerate/multi_cpu.yaml ddp_pipeline.py RECIPE.yaml INFO_DIR

`INFO_DIR/info-<rank>.json` holds the process count, how many examples the teacher ran over while its logits were
cached in this process and the process count and main-process flag the caching was given, and, for every training run,
the stage, the world size, the wrapper of the trained model and the type and state of the teacher the trainer holds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch


def _instrument(seen: dict[str, Any]) -> None:
    import hf_kd.training.teacher_cache as teacher_cache
    from hf_kd import DistillationTrainer

    original_cache = teacher_cache.cache_teacher_logits

    def counting_cache(teacher_model, *args, **kwargs):
        def hook(module, args_, kwargs_, output):
            seen["teacher_logits_examples"] += int(kwargs_["input_ids"].shape[0])

        state = kwargs.get("accelerator")
        seen["teacher_logits_state"] = None if state is None else [state.num_processes, state.is_main_process]
        handle = teacher_model.register_forward_hook(hook, with_kwargs=True)
        try:
            return original_cache(teacher_model, *args, **kwargs)
        finally:
            handle.remove()

    # The pipeline imports `cache_teacher_logits` from the module when the stage runs, so this replaces it there.
    teacher_cache.cache_teacher_logits = counting_cache

    original_train = DistillationTrainer.train

    def recording_train(self, *args, **kwargs):
        result = original_train(self, *args, **kwargs)
        teacher = self.teacher_model
        frozen = None if teacher is None else not any(p.requires_grad for p in teacher.parameters())
        seen["trainers"].append(
            {
                "stage": Path(self.args.output_dir).parent.name,
                "world_size": self.args.world_size,
                "model_wrapped": type(self.model_wrapped).__name__,
                "teacher": None if teacher is None else type(teacher).__name__,
                "teacher_training": None if teacher is None else teacher.training,
                "teacher_requires_grad": None if frozen is None else not frozen,
            }
        )
        return result

    DistillationTrainer.train = recording_train


def main() -> None:
    from accelerate import PartialState

    from hf_kd.cli import main as cli_main

    recipe, info_dir = sys.argv[1], Path(sys.argv[2])
    seen: dict[str, Any] = {"teacher_logits_examples": 0, "teacher_logits_state": None, "trainers": []}
    _instrument(seen)
    status = cli_main(["distill", recipe])
    seen["process_group_open_after_cli"] = torch.distributed.is_initialized()
    state = PartialState()
    info_dir.mkdir(parents=True, exist_ok=True)
    info = {"status": status, "num_processes": state.num_processes, "process_index": state.process_index, **seen}
    (info_dir / f"info-{state.process_index}.json").write_text(json.dumps(info, indent=2))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
