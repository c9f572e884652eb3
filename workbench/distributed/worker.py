"""The Ray actor: one per worker, holding the base and the modules for a whole run.

Workers sample toxicity completions but do not score them: the caller holds the one
scorer (Detoxify's weights, or the offline stand-in), so workers need no scorer weights
and every sample is scored the same way, wherever it was drawn.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from workbench.algebra import MergeOptions
from workbench.distributed.packing import PackedModule, unpack
from workbench.errors import WorkbenchError
from workbench.eval.measures import Measure, ToxicityMeasure
from workbench.eval.sweep import ResultCache, measure_point
from workbench.modules.pem import Mode
from workbench.runtime.loading import LoadedBase
from workbench.runtime.session import SessionManager

SESSION = "worker"
Pairs = list[tuple[str, str]]


@dataclass(frozen=True)
class ScoredByCaller:
    """Stands in for the scorer on a worker; its name keeps the measure's key."""

    name: str

    def score(self, texts: Sequence[str]) -> list[float]:
        raise RuntimeError("toxicity is scored by the caller, not on a worker")


def for_workers(measures: Sequence[Measure]) -> tuple[Measure, ...]:
    """The measures as a worker gets them: toxicity measures without their scorer."""
    return tuple(replace(m, scorer=ScoredByCaller(m.scorer.name)) if isinstance(m, ToxicityMeasure) else m
                 for m in measures)  # fmt: skip


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker loads once: the base (a zoo name, a hub id, or a folder present on
    every node), the modules' own files, and the measures of each kind ("validation", "test")."""

    base: str
    modules: tuple[PackedModule, ...]
    mode: Mode
    merge: MergeOptions
    measures: Mapping[str, tuple[Measure, ...]]


@dataclass(frozen=True)
class Measured:
    """A point's measures from a worker; `samples[i]` are the completions for toxicity measure i."""

    values: dict[str, float]
    samples: dict[int, Pairs]
    node: str


@dataclass
class _Sampling:
    """A toxicity measure that only samples: its completions go back to the caller."""

    measure: ToxicityMeasure
    pairs: Pairs = field(default_factory=list)

    @property
    def key(self) -> Hashable:
        return ("samples", *self.measure.key)

    @property
    def columns(self) -> tuple[str, ...]:
        return ()

    def run(self, base: LoadedBase) -> dict[str, float]:
        self.pairs = self.measure.samples(base)
        return {}


class PointWorker:
    """Loads everything in its constructor and keeps the first error as a line for the
    caller, rather than dying: the caller then names what went wrong and where."""

    def __init__(self, spec: WorkerSpec) -> None:
        import ray

        self.node = ray.get_runtime_context().get_node_id()
        self.spec = spec
        self.error = ""
        try:
            folder = Path(tempfile.mkdtemp(prefix="workbench-worker-"))
            sources = {packed.name: unpack(packed, folder) for packed in spec.modules}
            self.manager = SessionManager()
            state = self.manager.rebuild(SESSION, spec.base, sources, mode=spec.mode)
            for packed in spec.modules:
                if state.modules[packed.name].fingerprint != packed.fingerprint:
                    raise WorkbenchError(f"module {packed.name} loads differently on this worker")
            self.manager.set_composition(SESSION, "", {}, spec.mode, spec.merge)
        except WorkbenchError as error:
            self.error = str(error)
        except Exception as error:  # reported to the caller as one line; the worker stays up
            self.error = f"{type(error).__name__}: {error}"

    def ready(self) -> tuple[str, str]:
        return self.node, self.error

    def pid(self) -> int:
        return os.getpid()

    def measure(self, expression: str, values: dict[str, float], which: str) -> Measured:
        if self.error:
            raise WorkbenchError(self.error)
        measures = self.spec.measures[which]
        sampling = {i: _Sampling(m) for i, m in enumerate(measures) if isinstance(m, ToxicityMeasure)}
        plain = [m for m in measures if not isinstance(m, ToxicityMeasure)]
        found = measure_point(self.manager, SESSION, expression, values, [*plain, *sampling.values()], ResultCache())
        return Measured(found, {i: s.pairs for i, s in sampling.items()}, self.node)
