"""A training step on a shared CPU: OpenMP's active wait against `--shared-cpu` (passive wait, half the cores).

    python benchmarks/shared_cpu.py [--rounds 3] [--steps 10]

One MiniLM-L6 (../shared) training step at batch 16 and 32 tokens, timed in a fresh process per setting (the wait
policy is read when torch loads): alone, and beside one busy single-threaded process (a Python loop), with torch's
default (active) wait and 2 threads, with `OMP_WAIT_POLICY=PASSIVE`, with 1 thread, and with the settings of
`hf-kd --shared-cpu` (`hf_kd.cli.share_cpu`). Each setting runs once per round, in the same order each round; the
figure is the median step time over rounds (each round's own figure: the median of `--steps` steps after 3 untimed
ones), with the min-max. Writes `benchmarks/results/shared_cpu.json` and `shared_cpu.md`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import benchmark_parser, machine, machine_line, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

STEP = r"""
import json, sys, time
if sys.argv[1] == "shared":
    from hf_kd.cli import share_cpu
    share_cpu()
import torch
from transformers import AutoModelForSequenceClassification
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[2], num_labels=10, use_safetensors=True)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
torch.manual_seed(0)
ids = torch.randint(1000, 20000, (16, 32))
labels = torch.randint(0, 10, (16,))
times = []
for step in range(3 + int(sys.argv[3])):
    started = time.perf_counter()
    loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    if step >= 3:
        times.append(1000 * (time.perf_counter() - started))
times.sort()
print(json.dumps({"ms": times[len(times) // 2], "threads": torch.get_num_threads()}))
"""

SETTINGS = {
    "alone, default (active wait), 2 threads": ({}, False, False),
    "alone, OMP_WAIT_POLICY=PASSIVE, 2 threads": ({"OMP_WAIT_POLICY": "PASSIVE"}, False, False),
    "busy neighbour, default (active wait), 2 threads": ({}, True, False),
    "busy neighbour, OMP_WAIT_POLICY=PASSIVE, 2 threads": ({"OMP_WAIT_POLICY": "PASSIVE"}, True, False),
    "busy neighbour, 1 thread": ({"OMP_NUM_THREADS": "1"}, True, False),
    "busy neighbour, hf-kd --shared-cpu": ({}, True, True),
}


def one(model: str, steps: int, env: dict, busy: bool, shared: bool) -> dict:
    environment = {**os.environ, "OMP_NUM_THREADS": "2", **env, "TOKENIZERS_PARALLELISM": "false"}
    if "OMP_WAIT_POLICY" not in env:
        environment.pop("OMP_WAIT_POLICY", None)
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        done = subprocess.run(
            [sys.executable, "-c", STEP, "shared" if shared else "plain", model, str(steps)],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
            cwd=ROOT,
        )
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = benchmark_parser(__doc__, "shared_cpu", rounds=3)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--steps", type=int, default=10)
    options = parser.parse_args()
    model = str(Path(options.shared) / "models" / "all-MiniLM-L6-v2")
    host = machine()
    runs: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    for _ in range(options.rounds):
        for name, (env, busy, shared) in SETTINGS.items():
            runs[name].append(one(model, options.steps, env, busy, shared))
            print(name, runs[name][-1], flush=True)
    alone = statistics.median(r["ms"] for r in runs["alone, default (active wait), 2 threads"])
    lines = [
        f"Machine: {machine_line(host)}.",
        f"One MiniLM-L6 training step (batch 16, 32 tokens, AdamW), median over {options.rounds} rounds of the median "
        f"of {options.steps} steps; the busy neighbour is one single-threaded Python loop.",
        "",
        "| setting | threads | ms per step (median) | min-max | × alone, default |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    summary = {}
    for name, results in runs.items():
        values = [r["ms"] for r in results]
        median = statistics.median(values)
        summary[name] = {"ms": values, "median": median, "threads": results[0]["threads"]}
        lines.append(
            f"| {name} | {results[0]['threads']} | {median:.0f} | {min(values):.0f}-{max(values):.0f} | "
            f"{median / alone:.2f}× |"
        )
    payload = {"machine": host, "settings": vars(options), "results": summary}
    write_results(options.name, payload, "\n".join(lines), options.out)


if __name__ == "__main__":
    main()
