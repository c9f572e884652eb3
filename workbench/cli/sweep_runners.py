"""Where a CLI sweep's points run: in this process, or on Ray workers. Both give the same
rows; the sweep command only sees `Runner`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from workbench.algebra import MergeOptions, parse
from workbench.eval import GridAxis, ResultCache, SweepUpdate, sweep
from workbench.eval.auto import Search
from workbench.eval.sweep import check_extreme_point, measure_point, plan_jobs
from workbench.modules import load_module
from workbench.runtime import SessionManager
from workbench.runtime.loading import base_shapes_for

SESSION = "cli"


class Runner(Protocol):
    def updates(self) -> Iterator[SweepUpdate]: ...

    def measure(self, expression: str, values: dict[str, float], which: str) -> dict[str, float]: ...

    def search(self, expression: str, fixed: dict[str, float]) -> Search | None: ...

    def spread(self) -> str: ...


class LocalRunner:
    def __init__(self, args: argparse.Namespace, base: str, adapters: dict[str, str], expression: str,
                 axes: list[GridAxis], fixed: dict[str, float], measures: dict[str, list]) -> None:  # fmt: skip
        self.manager = SessionManager()
        self.manager.rebuild(SESSION, base, adapters, mode=args.mode)
        self.expression, self.axes, self.fixed, self.measures = expression, axes, fixed, measures
        self.cache = ResultCache()

    def updates(self) -> Iterator[SweepUpdate]:
        return sweep(self.manager, SESSION, self.expression, self.axes, self.measures["validation"], self.cache,
                     self.fixed)  # fmt: skip

    def measure(self, expression: str, values: dict[str, float], which: str) -> dict[str, float]:
        return measure_point(self.manager, SESSION, expression, values, self.measures[which], self.cache)

    def search(self, expression: str, fixed: dict[str, float]) -> Search | None:
        return None  # eval.auto's in-process Optuna

    def spread(self) -> str:
        return ""


class RayRunner:
    """Checks everything it can here (modules fit, the expression composes at its largest
    point) before any worker starts, then hands the points to a `WorkerPool`."""

    def __init__(self, pool, expression: str, jobs: list) -> None:
        self.pool, self.jobs = pool, jobs

    def updates(self) -> Iterator[SweepUpdate]:
        return self.pool.sweep(self.jobs)

    def measure(self, expression: str, values: dict[str, float], which: str) -> dict[str, float]:
        return self.pool.measure(expression, values, which)

    def search(self, expression: str, fixed: dict[str, float]) -> Search | None:
        from workbench.distributed.tune import tune_search

        def search(metrics, axes, seed):
            return tune_search(self.pool, expression, fixed, metrics, axes, seed=seed)

        return search

    def spread(self) -> str:
        counts = sorted(self.pool.nodes.values(), reverse=True)
        per_node = " + ".join(map(str, counts))
        return f" (on Ray: {self.pool.size} workers, {len(counts)} node(s), points per node {per_node})"


@contextmanager
def runner_for(args: argparse.Namespace, base: str, adapters: dict[str, str], expression: str,
               axes: list[GridAxis], fixed: dict[str, float], measures: list,
               test_measures: list) -> Iterator[Runner]:  # fmt: skip
    kinds = {"validation": measures, "test": test_measures}
    if args.backend != "ray":
        yield LocalRunner(args, base, adapters, expression, axes, fixed, kinds)
        return
    from workbench.distributed.cluster import ray_runtime
    from workbench.distributed.pool import WorkerPool

    shapes = base_shapes_for(base)
    modules = {name: load_module(path, shapes) for name, path in adapters.items()}
    combination = parse(expression, modules)
    check_extreme_point(modules, args.mode, MergeOptions(), combination, axes, fixed)
    jobs = plan_jobs(combination, expression, axes, fixed)
    with ray_runtime(args.address), WorkerPool(base, modules, args.mode, MergeOptions(), kinds,
                                               args.workers) as pool:  # fmt: skip
        if args.workers is not None and pool.size < args.workers:
            print(f"ray: the cluster has room for {pool.size} worker(s) (one per GPU, else one per CPU); "
                  f"running {pool.size}, not {args.workers}", file=sys.stderr)  # fmt: skip
        yield RayRunner(pool, expression, jobs)
