"""The teacher over several processes: the shared logit pass and FSDP2 sharding. Run under torchrun or alone.

    python distributed_teacher.py OUT
    torchrun --standalone --nproc_per_node 2 distributed_teacher.py OUT

Writes OUT/info-<rank>.json: how many examples this process's teacher ran over while caching logits (in memory and
with a cache folder), the cached logits, the store's files and the object gathers made, and, with several processes,
the parameter count this process holds of an FSDP2-sharded teacher, the teacher's full count, whether the sharded
logits equal the unsharded ones, and what `prepare_teacher` made of a teacher under an FSDP run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import tiny_bert  # noqa: E402

N_EXAMPLES = 41  # odd: the two shards differ in length, the shorter one is padded


def _dataset():
    import datasets

    g = torch.Generator().manual_seed(3)
    rows = [
        torch.randint(5, 64, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist()
        for _ in range(N_EXAMPLES)
    ]
    return datasets.Dataset.from_dict({"input_ids": rows, "labels": [i % 3 for i in range(N_EXAMPLES)]})


def main() -> None:
    import torch.distributed as dist
    from accelerate import PartialState

    from hf_kd import cache_teacher_logits
    from hf_kd.processes import leave_process_group

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    state = PartialState(cpu=True)
    teacher = tiny_bert(layers=4, seed=1).eval()
    seen = {"examples": 0}
    teacher.register_forward_hook(
        lambda m, a, k, o: seen.__setitem__("examples", seen["examples"] + k["input_ids"].shape[0]), with_kwargs=True
    )
    info: dict = {"processes": state.num_processes}
    gathers = {"count": 0}
    if state.num_processes > 1:  # the shards are joined on disk: no object gather of the logits
        original_gather = dist.all_gather_object

        def counting_gather(*args, **kwargs):
            gathers["count"] += 1
            return original_gather(*args, **kwargs)

        dist.all_gather_object = counting_gather
    memory = cache_teacher_logits(teacher, _dataset(), batch_size=4, accelerator=state, map_batch_size=8)
    info["memory_examples"], seen["examples"] = seen["examples"], 0
    on_disk = cache_teacher_logits(teacher, _dataset(), batch_size=4, cache_dir=out / "cache", accelerator=state)
    info["disk_examples"], seen["examples"] = seen["examples"], 0
    again = cache_teacher_logits(teacher, _dataset(), batch_size=4, cache_dir=out / "cache", accelerator=state)
    info["cached_examples"] = seen["examples"]
    info["object_gathers"] = gathers["count"]
    info["store_files"] = sorted(p.name for store in (out / "cache").iterdir() for p in store.iterdir())
    info["memory_logits"] = memory["teacher_logits"][:]
    info["disk_logits"] = on_disk["teacher_logits"][:]
    info["again_logits"] = again["teacher_logits"][:]

    if state.num_processes > 1:
        from accelerate.utils import DistributedType

        from hf_kd.training.teacher import prepare_teacher, shard_teacher

        ids = torch.randint(5, 64, (4, 8), generator=torch.Generator().manual_seed(0))
        full = tiny_bert(layers=4, seed=2).eval().requires_grad_(False)
        with torch.no_grad():
            reference = full(input_ids=ids).logits
        sharded = shard_teacher(tiny_bert(layers=4, seed=2).eval().requires_grad_(False))
        with torch.no_grad():
            logits = sharded(input_ids=ids).logits
        info["full_parameters"] = sum(p.numel() for p in full.parameters())
        info["local_parameters"] = sum(p.to_local().numel() for p in sharded.parameters())
        info["sharded_logits_equal"] = bool(torch.allclose(logits, reference, atol=1e-6))
        fake = SimpleNamespace(distributed_type=DistributedType.FSDP, device=torch.device("cpu"))
        prepared = prepare_teacher(tiny_bert(layers=4, seed=2), fake)
        info["prepared_sharded"] = all(hasattr(p, "to_local") for p in prepared.parameters())
        info["prepared_frozen"] = not any(p.requires_grad for p in prepared.parameters()) and not prepared.training
        dist.barrier()
    (out / f"info-{state.process_index}.json").write_text(json.dumps(info))
    leave_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
