"""Wall time of ``ragctl --help`` (a fresh interpreter each run): median and p95 over --runs.

The control plane must stay light: no torch, chromadb or transformers on the way to --help.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

from _common import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    command = [shutil.which("ragctl") or sys.executable, "--help"]
    if not shutil.which("ragctl"):
        command = [sys.executable, "-m", "ragctl", "--help"]
    subprocess.run(command, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    times.sort()
    result = {
        "runs": args.runs,
        "median_s": round(statistics.median(times), 3),
        "p95_s": round(times[min(len(times) - 1, int(0.95 * len(times)))], 3),
        "max_s": round(times[-1], 3),
        "machine": machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
