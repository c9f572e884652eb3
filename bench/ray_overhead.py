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


def per_point_costs(workers: int) -> None:
    """In one process: the workers' start (Ray actors importing torch and loading the base),
    and the time per point on the tiny example model, where a point costs milliseconds, so
    what is left is the backend's own cost per point (dispatch, transfer, scoring)."""
    from workbench.algebra import MergeOptions, parse
    from workbench.distributed.cluster import ray_runtime
    from workbench.distributed.pool import WorkerPool
    from workbench.eval import PerplexityMeasure, ResultCache, parse_grids, sweep
    from workbench.eval.sweep import plan_jobs
    from workbench.modules import load_module
    from workbench.runtime import SessionManager

    examples = Path(__file__).resolve().parent.parent / "assets" / "examples"
    base = str(examples / "tiny-llama")
    modules = {name: load_module(examples / f"lora-{name}") for name in ("a", "b")}
    measures = [PerplexityMeasure((examples / "sample.txt").read_text(), name="perplexity")]
    expression, axes = "lam*a + (1-lam)*b", parse_grids(["lam=0:1:0.025"])
    manager = SessionManager()
    manager.rebuild("bench", base, modules)
    started = time.perf_counter()
    local = list(sweep(manager, "bench", expression, axes, measures, ResultCache()))[-1]
    local_s = time.perf_counter() - started
    jobs = plan_jobs(parse(expression, modules), expression, axes, {})
    with ray_runtime(None):
        started = time.perf_counter()
        with WorkerPool(base, modules, "exact", MergeOptions(), {"validation": measures}, workers) as pool:
            start_s = time.perf_counter() - started
            started = time.perf_counter()
            remote = list(pool.sweep(jobs))[-1]
            ray_s = time.perf_counter() - started
    assert len(remote.frame) == len(local.frame)
    print(f"\ntiny example model, {len(jobs)} points of perplexity on {len(measures[0].text)} characters")
    print("| | seconds | ms per point |")
    print("|---|---|---|")
    print(f"| local sweep | {local_s:.2f} | {1000 * local_s / len(jobs):.1f} |")
    print(f"| Ray: {workers} workers start and load the base | {start_s:.2f} | |")
    print(f"| Ray sweep, {workers} workers | {ray_s:.2f} | {1000 * ray_s / len(jobs):.1f} |")


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
    per_point_costs(args.workers)


if __name__ == "__main__":
    main()
