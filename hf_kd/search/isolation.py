"""Process isolation for parallel particles: one single-process trial inside a multi-process launch.

Under `torchrun` / `accelerate launch` with K processes each process trains its own particles. A trial must not
synchronise gradients with the others, so it runs with accelerate's process state emptied and the launcher's rank
variables hidden (see `hf_kd.search.pso`); only the search itself uses the process group, through the helpers here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
from accelerate.state import AcceleratorState, GradientState, PartialState
from transformers.utils import logging

__all__ = [
    "LAUNCHER_ENV",
    "all_gather",
    "broadcast",
    "is_distributed",
    "pin_device",
    "single_process_overrides",
    "single_process_state",
]

# Variables through which launchers tell accelerate that the process is one of several.
LAUNCHER_ENV: tuple[str, ...] = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "GROUP_WORLD_SIZE",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "PMI_RANK",
    "PMI_SIZE",
    "OMPI_COMM_WORLD_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MV2_COMM_WORLD_RANK",
    "MV2_COMM_WORLD_SIZE",
    "MV2_COMM_WORLD_LOCAL_RANK",
    "MV2_COMM_WORLD_LOCAL_SIZE",
    "MPI_LOCALRANKID",
    "MPI_LOCALNRANKS",
    "ACCELERATE_TORCH_DEVICE",
)


@contextlib.contextmanager
def single_process_state(device: torch.device | None) -> Iterator[None]:
    """Run the body with accelerate's process state emptied, and, when `device` is given, as a single process on it.

    `TrainingArguments` and `Accelerator` built inside see a fresh accelerate state; with `device` set they also see no
    launcher variables, so they set up a single-process run on `device` that never joins the other processes. The
    accelerate state, the environment and the current CUDA device are put back on exit.
    """
    states = (PartialState, AcceleratorState, GradientState)
    saved_states = [dict(cls._shared_state) for cls in states]
    saved_env = {k: os.environ[k] for k in LAUNCHER_ENV if k in os.environ}
    args_logger = logging.get_logger("transformers.training_args")
    saved_level = args_logger.level
    for cls in states:
        cls._shared_state.clear()
    if device is not None:
        for k in LAUNCHER_ENV:
            os.environ.pop(k, None)
        if device.type != "cpu":
            os.environ["ACCELERATE_TORCH_DEVICE"] = str(device)
        # Silences "process group is initialized, but parallel_mode != DISTRIBUTED": that is the point here.
        args_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for cls, state in zip(states, saved_states):
            cls._shared_state.clear()
            cls._shared_state.update(state)
        for k in LAUNCHER_ENV:
            if k in saved_env:
                os.environ[k] = saved_env[k]
            else:
                os.environ.pop(k, None)
        args_logger.setLevel(saved_level)
        if device is not None and device.type == "cuda":
            torch.cuda.set_device(device)


def pin_device(args: Any, device: torch.device) -> None:
    """Make single-process arguments use `device` (transformers would pick device 0 and all visible GPUs)."""
    args.__dict__["_setup_devices"] = device
    args._n_gpu = 0 if device.type == "cpu" else 1
    if device.type == "cuda":
        torch.cuda.set_device(device)


def single_process_overrides(device: torch.device | None) -> dict[str, Any]:
    """Arguments that a single-process trial inside a multi-process launch needs."""
    # With a backend named, accelerate would count the still-initialised process group as this run's.
    return {} if device is None else {"ddp_backend": None}


def is_distributed(world_size: int) -> bool:
    return world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()


def broadcast(obj: Any, world_size: int) -> Any:
    if not is_distributed(world_size):
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(obj: Any, world_size: int) -> list[Any]:
    if not is_distributed(world_size):
        return [obj]
    out: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(out, obj)
    return out
