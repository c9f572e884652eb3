"""The Ray backend's cost on one small machine: a preset's 11-point sweep, local vs Ray.

    .venv/bin/python bench/ray_overhead.py [--preset distribution-generalization-lora] [--workers 2] [--repeats 2]

Runs the CLI as a user would, each backend in its own process (Ray's start, the workers'
model loads and its shutdown included), alternating the two, and checks that the rows agree.
On a 2-core machine this measures the path's overhead, not a speed-up: each Ray worker holds
one core and its own copy of the base, where the local sweep has both cores for one model.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def run_sweep(preset: str, out: Path, extra: list[str]) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "workbench", "sweep", "--preset", preset, "--out", str(out), *extra],
                          capture_output=True, text=True, env=env)  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"sweep {extra} failed: {done.stderr.strip().splitlines()[-1]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="distribution-generalization-lora")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for backend in ("local", "ray"):
                extra = ["--backend", "ray", "--workers", str(args.workers)] if backend == "ray" else []
                times[backend].append(run_sweep(args.preset, Path(folder) / f"{backend}{repeat}", extra))
        local, remote = (pd.read_csv(Path(folder) / f"{b}0" / "results.csv") for b in ("local", "ray"))
        numbers = [c for c in local.columns if pd.api.types.is_numeric_dtype(local[c])]
        difference = (local[numbers] - remote[numbers]).abs().max().max()
    local_s, ray_s = statistics.median(times["local"]), statistics.median(times["ray"])
    print(f"{args.preset}: {len(local)} rows, {os.cpu_count()} cores, {platform.processor() or platform.machine()}")
    print(f"| backend | wall s (median of {args.repeats}) | runs |")
    print("|---|---|---|")
    print(f"| local | {local_s:.1f} | {', '.join(f'{t:.1f}' for t in times['local'])} |")
    print(f"| ray, {args.workers} workers | {ray_s:.1f} | {', '.join(f'{t:.1f}' for t in times['ray'])} |")
    print(f"overhead ratio ray/local: {ray_s / local_s:.2f}×; largest difference between the rows: {difference:.2e}")


if __name__ == "__main__":
    main()
