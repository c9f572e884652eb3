"""λ sweeps: a 1-D or 2-D grid over an expression's parameters, streamed point by point.

`sweep` is a generator: after every point it yields the results so far as a pandas
DataFrame, so plots grow live; a caller stops it by not asking for more (or by setting
`stop`), and keeps what it has. Reference rows come first: the base, and each module
alone (coefficient 1), so plots can draw them as lines. Each point is measured with the
composition live under the base's lock, so other sessions interleave between points.
Results are cached by (composition key, measure key): an overlapping sweep reuses them.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

import pandas as pd

from workbench.algebra import compose, parse
from workbench.errors import WorkbenchError
from workbench.eval.measures import Measure
from workbench.runtime.session import SessionManager

MAX_POINTS = 441  # a 21 × 21 grid


@dataclass(frozen=True)
class GridAxis:
    name: str
    values: tuple[float, ...]


def parse_grid(spec: str) -> GridAxis:
    """`lam=0:1:0.1` (start:stop:step, stop included) or `lam=0,0.3,1`."""
    name, sep, body = spec.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier() or not body:
        raise WorkbenchError(f"a grid looks like lam=0:1:0.1 or lam=0,0.5,1; got {spec!r}")
    try:
        if ":" in body:
            start, stop, step = (float(part) for part in body.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            values = tuple(round(start + i * step, 10) for i in range(count))
        else:
            values = tuple(float(part) for part in body.split(","))
    except ValueError:
        raise WorkbenchError(f"grid {spec!r}: use START:STOP:STEP with STEP > 0 and STOP >= START, or a list") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise WorkbenchError(f"grid {spec!r} has no finite values")
    if len(values) > MAX_POINTS:
        raise WorkbenchError(f"grid {spec!r} has {len(values)} points; the limit is {MAX_POINTS}")
    return GridAxis(name, values)


@dataclass(frozen=True)
class SweepUpdate:
    frame: pd.DataFrame
    done: int
    total: int


class ResultCache:
    """Measure results by (composition key, measure key); thread-safe, unbounded (small floats)."""

    def __init__(self) -> None:
        self._results: dict[Hashable, dict[str, float]] = {}
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: Hashable) -> dict[str, float] | None:
        with self._lock:
            found = self._results.get(key)
            self.hits += found is not None
            return found

    def put(self, key: Hashable, value: dict[str, float]) -> None:
        with self._lock:
            self._results[key] = value


def sweep(
    manager: SessionManager,
    session: str,
    expression: str,
    axes: Sequence[GridAxis],
    measures: Sequence[Measure],
    cache: ResultCache | None = None,
    fixed: dict[str, float] | None = None,
    references: bool = True,
    stop: threading.Event | None = None,
) -> Iterator[SweepUpdate]:
    """Measure `expression` at every grid point; the session's own composition is restored after."""
    state = manager.state(session)
    fixed = dict(fixed or {})
    mode, merge = state.mode, state.merge
    combination = parse(expression, state.modules)
    missing = set(combination.parameters) - fixed.keys() - {a.name for a in axes}
    if missing:
        raise WorkbenchError(f"parameter(s) {', '.join(sorted(missing))} need a grid or a fixed value")
    compose(state.modules, combination, {**fixed, **{a.name: a.values[0] for a in axes}}, mode, merge)  # fail early
    cache = cache if cache is not None else ResultCache()
    jobs: list[tuple[dict[str, object], str, dict[str, float]]] = []
    if references:
        jobs.append(({"kind": "reference", "label": "base"}, "", {}))
        for name in combination.modules:
            jobs.append(({"kind": "reference", "label": name}, name, {}))
    for point in itertools.product(*(axis.values for axis in axes)):
        values = {**fixed, **dict(zip((a.name for a in axes), point, strict=True))}
        jobs.append(
            (
                {"kind": "point", "label": "", **dict(zip((a.name for a in axes), point, strict=True))},
                expression,
                values,
            )
        )
    rows: list[dict[str, object]] = []
    with manager.keeping_composition(session):
        for done, (row, expr, values) in enumerate(jobs, start=1):
            if stop is not None and stop.is_set():
                break
            manager.set_composition(session, expr, values, mode, merge)
            rows.append({**row, **_measure(manager, session, measures, cache)})
            yield SweepUpdate(pd.DataFrame(rows), done, len(jobs))


def _measure(
    manager: SessionManager, session: str, measures: Sequence[Measure], cache: ResultCache
) -> dict[str, float]:
    state = manager.state(session)
    composition_key = manager.cache_key(state) or ("base", manager.base(state.base).key)
    result: dict[str, float] = {}
    pending = []
    for measure in measures:
        found = cache.get((composition_key, measure.key))
        if found is None:
            pending.append(measure)
        else:
            result.update(found)
    if pending:
        with manager.model_for(session) as base:
            for measure in pending:
                values = measure.run(base)
                cache.put((composition_key, measure.key), values)
                result.update(values)
    return result


def measure_point(
    manager: SessionManager,
    session: str,
    expression: str,
    values: dict[str, float],
    measures: Sequence[Measure],
    cache: ResultCache,
) -> dict[str, float]:
    """The measures at one composition; the session's own composition is restored after."""
    with manager.keeping_composition(session) as state:
        manager.set_composition(session, expression, values, state.mode, state.merge)
        return _measure(manager, session, measures, cache)
