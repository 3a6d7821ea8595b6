"""The shared teacher pass with 1 and 2 processes, and the FSDP teacher's memory per rank (issue 12).

    python benchmarks/distributed_cache.py [--sequences 1536] [--repeats 2]

The driver launches the worker below with `torchrun --nproc_per_node K` (gloo, 1 thread per process) for K = 1 and
2, alternating, `--repeats` times each, on the real all-MiniLM-L6-v2 teacher and the first `--sequences` HoC training
sentences (max_length 128):

- `cache_teacher_logits(..., accelerator=state)` on an in-memory dataset, and with a cache folder (a fresh folder
  per run, so that it computes); wall time of the call on the main process, after a barrier;
- the cached logits of each K compared with K = 1's (max abs difference);
- with K = 2, the teacher sharded by `hf_kd.training.teacher.shard_teacher` (FSDP2): bytes of teacher parameters
  each rank holds, against the whole teacher.

Writes `benchmarks/results/distributed_cache.{json,md}` (numbers only, no text).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import benchmark_parser, machine, machine_line, quiet_logs, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2"
HOC = ROOT.parent / "shared" / "data" / "hoc"


def worker(cli: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_kd.data.corpora import load_hoc
    from hf_kd.processes import start_state
    from hf_kd.processes import state as accelerate_state
    from hf_kd.training.teacher_cache import cache_teacher_logits

    quiet_logs()
    import datasets

    datasets.disable_progress_bars()
    start_state(cpu=True)
    state = accelerate_state()
    tokenizer = AutoTokenizer.from_pretrained(str(MODEL))
    teacher = AutoModelForSequenceClassification.from_pretrained(
        str(MODEL), num_labels=10, problem_type="multi_label_classification", use_safetensors=True
    )
    torch.manual_seed(0)
    teacher.classifier.reset_parameters()  # the same head on every rank
    teacher.eval()
    hoc, _ = load_hoc(HOC, level="sentence")
    texts = list(hoc["train"]["text"][: cli.sequences])
    dataset = datasets.Dataset.from_dict(dict(tokenizer(texts, truncation=True, max_length=128)))
    out: dict = {"processes": state.num_processes}
    for mode in ("in_memory", "cache_dir"):
        folder = tempfile.mkdtemp(prefix="hf_kd_bench_cache_") if mode == "cache_dir" else None
        if state.num_processes > 1:
            torch.distributed.barrier()
        started = time.perf_counter()
        cached = cache_teacher_logits(teacher, dataset, batch_size=32, cache_dir=folder, accelerator=state)
        if state.num_processes > 1:
            torch.distributed.barrier()
        out[f"{mode}_seconds"] = time.perf_counter() - started
        logits = torch.tensor(cached["teacher_logits"])
        if state.is_main_process:
            torch.save(logits, Path(cli.logits_dir) / f"{mode}-{state.num_processes}.pt")
    if state.num_processes > 1:
        from hf_kd.training.teacher import shard_teacher

        full = sum(p.numel() * p.element_size() for p in teacher.parameters())
        shard_teacher(teacher)
        local = sum(p.to_local().numel() * p.element_size() for p in teacher.parameters())
        held = [None] * state.num_processes
        torch.distributed.all_gather_object(held, local)
        out.update({"teacher_bytes": full, "fsdp_bytes_per_rank": held})
    if state.is_main_process:
        Path(cli.result).write_text(json.dumps(out))


def launch(processes: int, cli: argparse.Namespace, logits_dir: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result = handle.name
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
        __file__, "--worker", "--result", result, "--logits_dir", logits_dir, "--sequences", str(cli.sequences),
    ]  # fmt: skip
    subprocess.run(command, check=True, env=env, cwd=ROOT)
    return json.loads(Path(result).read_text())


def main() -> None:
    parser = benchmark_parser(__doc__, "distributed_cache")
    parser.add_argument("--sequences", type=int, default=1536)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--logits_dir", help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.worker:
        return worker(cli)

    import torch

    info = machine()
    logits_dir = tempfile.mkdtemp(prefix="hf_kd_bench_logits_")
    runs: list[dict] = []
    for _ in range(cli.repeats):
        for processes in (1, 2):
            runs.append(launch(processes, cli, logits_dir))
            print(f"[bench] {runs[-1]}", flush=True)
    reference = torch.load(Path(logits_dir) / "in_memory-1.pt")
    differences = {
        f"{mode}-{k}": float((torch.load(Path(logits_dir) / f"{mode}-{k}.pt") - reference).abs().max())
        for mode in ("in_memory", "cache_dir")
        for k in (1, 2)
    }
    lines = [
        f"Machine: {machine_line(info)}; each process 1 thread (gloo, `torchrun`), load average at start "
        f"{info.get('load_average_at_start')}.",
        f"`cache_teacher_logits` over {cli.sequences} HoC training sentences (max_length 128), teacher "
        f"all-MiniLM-L6-v2, batch 32; median of {cli.repeats} launches per row, alternating.",
        "",
        "| dataset | 1 process (s) | 2 processes (s) | speed-up | max abs difference from 1 process |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for mode, title in (("in_memory", "in memory"), ("cache_dir", "with a cache folder")):
        one = statistics.median(r[f"{mode}_seconds"] for r in runs if r["processes"] == 1)
        two = statistics.median(r[f"{mode}_seconds"] for r in runs if r["processes"] == 2)
        lines.append(f"| {title} | {one:.1f} | {two:.1f} | {one / two:.2f}× | {differences[f'{mode}-2']:.1e} |")
    sharded = next(r for r in runs if r["processes"] == 2)
    held = sharded["fsdp_bytes_per_rank"]
    lines += [
        "",
        f"FSDP2 teacher (`shard_teacher`, 2 ranks): the whole teacher is {sharded['teacher_bytes'] / 1e6:.1f} MB of "
        f"parameters; rank 0 holds {held[0] / 1e6:.1f} MB, rank 1 {held[1] / 1e6:.1f} MB "
        f"({100 * max(held) / sharded['teacher_bytes']:.1f} % at most).",
    ]
    markdown = "\n".join(lines)
    payload = {"machine": info, "settings": vars(cli), "runs": runs, "max_abs_difference": differences}
    write_results(cli.name, payload, markdown, cli.out)


if __name__ == "__main__":
    main()
