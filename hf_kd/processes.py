"""Process state of a run under `accelerate launch` / `torchrun`: starting it, the main process, barriers, the end.

The pipeline, its evaluation and its search run the same code in every process; only the main process writes
markers, reports and cards and prints. These helpers wrap accelerate's `PartialState` for that.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["barrier", "is_main_process", "leave_process_group", "on_cpu", "start_state", "state"]


def state() -> Any:
    """
    accelerate's process state (`PartialState`), started on first use.

    Returns:
        `accelerate.PartialState`: The state.
    """
    from accelerate import PartialState

    return PartialState()


def start_state(cpu: bool = False) -> None:
    """
    Start accelerate's state for a run, on the CPU when asked, when `ACCELERATE_USE_CPU` is set, or when several
    processes were launched and no accelerator was found.

    Every `TrainingArguments` restarts accelerate's state from its own `use_cpu`, and on a machine without accelerator
    a state started without `use_cpu` is a single process even under a multi-process launch: every process would then
    take itself for the main one (writing the markers, the cached logits and the report at the same time, and
    computing the cache each) and the barriers would not wait. So the state is started before any stage, and every
    `TrainingArguments` the pipeline builds then follows it ([`on_cpu`]).

    Args:
        cpu (`bool`, *optional*, defaults to `False`):
            Whether the recipe asks for the CPU (a training section sets `use_cpu`).
    """
    from accelerate import PartialState
    from accelerate.state import AcceleratorState

    cpu = cpu or os.environ.get("ACCELERATE_USE_CPU", "").strip().lower() in ("1", "true", "yes", "on")
    started = PartialState(cpu=cpu)
    launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if started.device.type == "cpu" and started.num_processes < launched:
        AcceleratorState._reset_state(reset_partial_state=True)
        PartialState(cpu=True)


def on_cpu() -> bool:
    """
    Whether the run computes on the CPU; the pipeline's `TrainingArguments` get it as `use_cpu`.

    Returns:
        `bool`: True on the CPU.
    """
    return state().device.type == "cpu"


def is_main_process() -> bool:
    """
    Whether this is the main process (the only one that writes shared files and prints).

    Returns:
        `bool`: True in the main process (and in a single-process run).
    """
    return state().is_main_process


def barrier() -> None:
    """Wait for every process (nothing in a single process)."""
    state().wait_for_everyone()


def leave_process_group() -> None:
    """
    End a multi-process run cleanly: free the DDP-wrapped models, wait for every process, close the process group.

    Call it once, after the last collective, in a script run under `accelerate launch` or `torchrun`; it does nothing
    in a single process. `hf-kd` calls it when a command succeeds.

    Why: a gloo process group that is still open when the interpreter exits can abort the process in a worker thread
    ("terminate called without an active exception"), and a DDP wrapper freed after the group is closed can hang in
    the group's destructor (on CPU with torch 2.13: the abort in about 1 two-process run in 15, the hang once in 40).
    Collecting garbage first frees the wrappers (trainers hold them in reference cycles) while the group is still
    registered; the barrier lets every process finish its last collective; closing the group then joins its worker
    threads.
    """
    import gc

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
