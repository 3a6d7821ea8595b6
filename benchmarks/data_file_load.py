"""Loading a large unlabeled file: the resident memory of `hf_kd.data.loading.load_data_files`, as shipped and as
`datasets` does it by default, side by side.

    python benchmarks/data_file_load.py [--rows 10000000] [--rounds 2]

`datasets` writes an Arrow copy of a JSON Lines file, then loads it; loading reads each record batch's header, and
the kernel maps in about 64 KiB of the file around each read. Arms, each in a fresh process with a fresh cache
folder, interleaved over `--rounds` rounds:
- `datasets default`: record batches of 1,000 rows (`datasets`' default), nothing released;
- `hf_kd`: record batches of 10,000 rows (`loading._LOADED_BATCH_ROWS`), and the pages loading mapped in released.
Measured: the process's peak RSS during the load (sampled every 50 ms) and its RSS once loaded, less its RSS
before. The notes are `benchmarks/transfer_scale.py`'s synthetic ones (no real text). Writes `data_file_load.json`
and `.md`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import benchmark_parser, machine, machine_line, write_results  # noqa: E402
from transfer_scale import write_notes  # noqa: E402

ARMS = ("datasets default", "hf_kd")

CHILD = r"""
import json, sys, tempfile, shutil, threading, time
from hf_kd.data import loading

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024 / 1e9

if sys.argv[2] == "datasets default":
    loading._LOADED_BATCH_ROWS = 1000
    loading.release_pages_of = lambda datasets: 0
cache = tempfile.mkdtemp(prefix="hf_kd_load_")
peak, done = [0.0], []
def watch():
    while not done:
        peak[0] = max(peak[0], rss())
        time.sleep(0.05)
before = rss()
thread = threading.Thread(target=watch)
thread.start()
started = time.perf_counter()
data = loading.load_data_files({"unlabeled": sys.argv[1]}, cache_dir=cache)["unlabeled"]
seconds = time.perf_counter() - started
done.append(1)
thread.join()
print(json.dumps({"rows": len(data), "seconds": seconds, "peak_gb": peak[0] - before, "after_gb": rss() - before}))
shutil.rmtree(cache, ignore_errors=True)
"""


def main() -> None:
    parser = benchmark_parser(__doc__, "data_file_load", rounds=2)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--work", default="/tmp/hf_kd_transfer_scale", help="Folder of the notes file.")
    args = parser.parse_args()
    notes = write_notes(Path(args.work) / f"notes-{args.rows}.jsonl", args.rows)
    runs = []
    for index in range(args.rounds):
        for arm in ARMS:
            out = (
                subprocess.run(
                    [sys.executable, "-c", CHILD, str(notes), arm], capture_output=True, text=True, check=True
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            runs.append({"round": index, "arm": arm, **json.loads(out)})
            print(runs[-1], flush=True)
    table = {}
    for arm in ARMS:
        mine = [r for r in runs if r["arm"] == arm]
        table[arm] = {key: statistics.median(r[key] for r in mine) for key in ("peak_gb", "after_gb", "seconds")} | {
            "peak_gb_min_max": [min(r["peak_gb"] for r in mine), max(r["peak_gb"] for r in mine)]
        }
    info = machine()
    lines = [
        f"Machine: {machine_line(info)}.",
        f"`load_data_files` on {args.rows:,} synthetic JSON Lines notes, a fresh process and cache per run; median of "
        f"{args.rounds} interleaved rounds. RSS above the process's RSS before the load.",
        "",
        "| arm | peak RSS during the load (GB) | peak min-max | RSS once loaded (GB) | seconds |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for arm, row in table.items():
        low, high = row["peak_gb_min_max"]
        lines.append(
            f"| {arm} | {row['peak_gb']:.2f} | {low:.2f}-{high:.2f} | {row['after_gb']:.2f} | {row['seconds']:.0f} |"
        )
    write_results(
        args.name, {"machine": info, "rows": args.rows, "runs": runs, "table": table}, "\n".join(lines), args.out
    )


if __name__ == "__main__":
    main()
