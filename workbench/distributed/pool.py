"""Workers on Ray, fed one point at a time, with results streamed back as they finish.

A point goes to whichever worker is free, so a slow point never holds up the others;
the rows come back in plan order whatever order they finished in. Stop cancels the
points not yet started and keeps those finished. A worker that dies, or a point that
fails, ends the run with one line naming the point; the finished points are kept.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence

import pandas as pd

from workbench.algebra import MergeOptions
from workbench.distributed.cluster import cluster_resources, worker_shape
from workbench.distributed.packing import pack
from workbench.distributed.worker import Measured, PointWorker, WorkerSpec, for_workers
from workbench.errors import WorkbenchError
from workbench.eval.measures import Measure, ToxicityMeasure
from workbench.eval.sweep import Job, SweepUpdate
from workbench.modules import PEM
from workbench.modules.pem import Mode

WAIT_SECONDS = 0.25  # how often a run looks at its stop flag while points are in flight


class PointFailed(WorkbenchError):
    """A point could not be measured. `frame` holds the rows finished before it (or None)."""

    def __init__(self, message: str, frame: pd.DataFrame | None = None, done: int = 0, total: int = 0) -> None:
        super().__init__(message)
        self.frame, self.done, self.total = frame, done, total


def _point_key(expression: str, values: Mapping[str, float], which: str) -> tuple:
    return expression, tuple(sorted(values.items())), which


class WorkerPool:
    """`workers` actors on the Ray cluster this process is connected to (see
    `cluster.ray_runtime`). Use it as a context manager: the actors end with the block."""

    def __init__(self, base: str, modules: Mapping[str, PEM], mode: Mode, merge: MergeOptions,
                 measures: Mapping[str, Sequence[Measure]], workers: int | None = None) -> None:  # fmt: skip
        import ray

        self.measures = {which: tuple(found) for which, found in measures.items()}
        spec = WorkerSpec(base, tuple(pack(name, module) for name, module in modules.items()), mode, merge,
                          {which: for_workers(found) for which, found in self.measures.items()})  # fmt: skip
        self.size, reserve = worker_shape(cluster_resources(), workers)
        remote = ray.remote(max_restarts=0, **reserve)(PointWorker)
        self.actors = [remote.remote(spec) for _ in range(self.size)]
        self.nodes: Counter[str] = Counter()  # points measured per node
        self._memo: dict[tuple, dict[str, float]] = {}
        try:
            ready = ray.get([actor.ready.remote() for actor in self.actors])
        except ray.exceptions.RayError as error:
            self.close()
            raise WorkbenchError(f"a Ray worker could not start: {_reason(error)}") from None
        self.node_of = {id(actor): node for actor, (node, _) in zip(self.actors, ready, strict=True)}
        failed = [(node, error) for node, error in ready if error]
        if failed:
            self.close()
            node, error = failed[0]
            raise WorkbenchError(f"a worker on node {node[:8]} cannot load the base or modules: {error}")

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []

    def run(self, jobs: Sequence[Job], which: str = "validation",
            stop: threading.Event | None = None) -> Iterator[tuple[int, dict[str, float]]]:  # fmt: skip
        """(index, result) for each job as it finishes; points measured before come first."""
        import ray

        pending: deque[int] = deque()
        for index, job in enumerate(jobs):
            known = self._memo.get(_point_key(job.expression, job.values, which))
            if known is not None:
                yield index, known
            else:
                pending.append(index)
        idle, in_flight = list(self.actors), {}
        while pending or in_flight:
            if stop is not None and stop.is_set():
                return
            while idle and pending:
                actor, index = idle.pop(), pending.popleft()
                job = jobs[index]
                in_flight[actor.measure.remote(job.expression, job.values, which)] = (index, actor)
            finished, _ = ray.wait(list(in_flight), num_returns=1, timeout=WAIT_SECONDS)
            for ref in finished:
                index, actor = in_flight.pop(ref)
                job = jobs[index]
                try:
                    measured: Measured = ray.get(ref)
                except ray.exceptions.RayActorError:
                    node = self.node_of.get(id(actor), "")[:8]
                    raise PointFailed(f"the worker on node {node} died while measuring {job.describe()}") from None
                except ray.exceptions.RayError as error:
                    raise PointFailed(f"measuring {job.describe()} failed on a worker: {_reason(error)}") from None
                result = self._scored(measured, which)
                self._memo[_point_key(job.expression, job.values, which)] = result
                self.nodes[measured.node] += 1
                idle.append(actor)
                yield index, result

    def measure(self, expression: str, values: dict[str, float], which: str = "validation") -> dict[str, float]:
        """One point, on whichever worker is free (points measured before are not sent again)."""
        job = Job({"kind": "point", "label": ""}, expression, dict(values))
        return next(iter(self.run([job], which)))[1]

    def sweep(self, jobs: Sequence[Job], stop: threading.Event | None = None) -> Iterator[SweepUpdate]:
        """The local `eval.sweep.sweep`'s updates, from the workers: rows in plan order."""
        rows: dict[int, dict[str, object]] = {}
        try:
            for index, result in self.run(jobs, "validation", stop):
                rows[index] = {**jobs[index].row, **result}
                yield SweepUpdate(pd.DataFrame([rows[i] for i in sorted(rows)]), len(rows), len(jobs))
        except PointFailed as failure:
            if rows:
                failure.frame = pd.DataFrame([rows[i] for i in sorted(rows)])
            failure.done, failure.total = len(rows), len(jobs)
            raise

    def _scored(self, measured: Measured, which: str) -> dict[str, float]:
        """The worker's values, with its toxicity samples scored here, in the measures' order."""
        result = dict(measured.values)
        for index, pairs in measured.samples.items():
            measure = self.measures[which][index]
            assert isinstance(measure, ToxicityMeasure)
            result.update(measure.score_samples(pairs)[0])
        return result


def _reason(error: BaseException) -> str:
    """One line for a Ray error: the first line of the exception a worker raised (a
    WorkbenchError reads as itself), else the last line of Ray's own report."""
    cause = getattr(error, "cause", None)
    lines = [line for line in str(cause if cause is not None else error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[0] if cause is not None else lines[-1]
