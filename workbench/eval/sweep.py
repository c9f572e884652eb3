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
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from workbench.algebra import LinearCombination, MergeOptions, compose, parse
from workbench.errors import WorkbenchError
from workbench.eval.measures import Measure
from workbench.modules.pem import PEM, Mode
from workbench.runtime.session import SessionManager

MAX_POINTS = 441  # a 21 × 21 grid, for one axis or two together
GRID_FORM = "use START:STOP:STEP with finite numbers, STEP > 0 and STOP >= START, or a list like 0,0.5,1"


@dataclass(frozen=True)
class GridAxis:
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class _AxisPlan:
    """One axis as read from its spec: its size is known before any value is built."""

    name: str
    spec: str
    count: int
    start: float = 0.0
    step: float = 0.0
    listed: tuple[float, ...] | None = None

    def build(self) -> GridAxis:
        if self.listed is not None:
            return GridAxis(self.name, self.listed)
        return GridAxis(self.name, tuple(round(self.start + i * self.step, 10) for i in range(self.count)))


def _plan_axis(spec: str) -> _AxisPlan:
    name, sep, body = spec.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier() or not body:
        raise WorkbenchError(f"a grid looks like lam=0:1:0.1 or lam=0,0.5,1; got {spec!r}")
    try:
        numbers = tuple(float(part) for part in body.split(":" if ":" in body else ","))
    except ValueError:
        raise WorkbenchError(f"grid {spec!r}: {GRID_FORM}") from None
    if not all(math.isfinite(v) for v in numbers):
        raise WorkbenchError(f"grid {spec!r}: {GRID_FORM}")
    if ":" not in body:
        return _AxisPlan(name, spec, len(numbers), listed=numbers)
    if len(numbers) != 3 or numbers[2] <= 0 or numbers[1] < numbers[0]:
        raise WorkbenchError(f"grid {spec!r}: {GRID_FORM}")
    start, stop, step = numbers
    steps = (stop - start) / step  # finite or inf; counted, never enumerated
    count = int(min(steps, 1e18) + 1e-9) + 1  # steps >= 0, so int() is floor
    return _AxisPlan(name, spec, count, start, step)


def _shown(count: int) -> str:
    return f"{count}" if count < 10**6 else f"about {count:.1e}"


def parse_grids(specs: Sequence[str]) -> list[GridAxis]:
    """Every axis of a sweep, each `lam=0:1:0.1` (start:stop:step, stop included) or
    `lam=0,0.3,1`. A sweep measures every combination, so the product of the axes'
    sizes is what is bounded (MAX_POINTS), and it is counted before any point is built."""
    plans = [_plan_axis(spec) for spec in specs]
    names = [plan.name for plan in plans]
    for name in names:
        if names.count(name) > 1:
            raise WorkbenchError(f"grid {name} is given twice; give each parameter one grid")
    total = math.prod(plan.count for plan in plans)
    if total > MAX_POINTS and len(plans) == 1:
        raise WorkbenchError(f"grid {plans[0].spec!r} has {_shown(total)} points; the limit is {MAX_POINTS}: "
                             "use a larger step")  # fmt: skip
    if total > MAX_POINTS:
        sizes = " × ".join(_shown(plan.count) for plan in plans)
        raise WorkbenchError(f"the grids have {sizes} = {_shown(total)} points in all; the limit is {MAX_POINTS} "
                             "(e.g. 21 × 21): use larger steps")  # fmt: skip
    return [plan.build() for plan in plans]


def parse_grid(spec: str) -> GridAxis:
    """One axis (see `parse_grids`, which a sweep with several axes must use)."""
    return parse_grids([spec])[0]


def require_values(combination: LinearCombination, axes: Sequence[GridAxis], fixed: Mapping[str, float]) -> None:
    """Every parameter of the expression needs a grid or a fixed value, checked before any model loads."""
    missing = set(combination.parameters) - set(fixed) - {axis.name for axis in axes}
    if missing:
        raise WorkbenchError(f"parameter(s) {', '.join(sorted(missing))} need a grid or a fixed value")


def check_extreme_point(modules: Mapping[str, PEM], mode: Mode, merge: MergeOptions,
                        combination: LinearCombination, axes: Sequence[GridAxis],
                        fixed: Mapping[str, float]) -> None:  # fmt: skip
    """Compose the grid point with the largest coefficients before measuring anything, so an
    expression that does not compose, or whose largest point overflows, fails before the
    first point rather than halfway through. Coefficients are cheap to evaluate everywhere."""
    names = [axis.name for axis in axes]
    grid = itertools.product(*(axis.values for axis in axes))
    points = [{**fixed, **dict(zip(names, point, strict=True))} for point in grid]
    largest = max(points, key=lambda values: sum(abs(c) for c in combination.coefficients(values).values()))
    composition = compose(modules, combination, largest, mode, merge)
    composition.check_finite(composition.combined_tensors())


@dataclass(frozen=True)
class Job:
    """One row of a sweep: the row's own columns (kind, label, the grid values), and the
    composition to measure for it. An empty expression is the base."""

    row: dict[str, object]
    expression: str
    values: dict[str, float]

    def describe(self) -> str:
        """The point as a user would name it: `lam=0.3`, or `base`, or a module alone."""
        if self.row["kind"] == "reference":
            return str(self.row["label"])
        return ", ".join(f"{k}={v:g}" for k, v in self.row.items() if k not in ("kind", "label"))


def plan_jobs(combination: LinearCombination, expression: str, axes: Sequence[GridAxis],
              fixed: Mapping[str, float], references: bool = True) -> list[Job]:  # fmt: skip
    """Every row of a sweep in order, whichever backend measures them: the reference rows
    (the base, then each module alone), then every grid point."""
    jobs: list[Job] = []
    if references:
        jobs.append(Job({"kind": "reference", "label": "base"}, "", {}))
        jobs += [Job({"kind": "reference", "label": name}, name, {}) for name in combination.modules]
    names = [axis.name for axis in axes]
    for point in itertools.product(*(axis.values for axis in axes)):
        here = dict(zip(names, point, strict=True))
        jobs.append(Job({"kind": "point", "label": "", **here}, expression, {**fixed, **here}))
    return jobs


@dataclass(frozen=True)
class SweepUpdate:
    frame: pd.DataFrame
    done: int
    total: int


class ResultCache:
    """Measure results by (composition key, measure key); thread-safe. Entries are small
    (a few floats, under a kilobyte with their keys), but a server lives long, so the
    least recently used go first past `max_entries`."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._results: OrderedDict[Hashable, dict[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: Hashable) -> dict[str, float] | None:
        with self._lock:
            found = self._results.get(key)
            if found is not None:
                self.hits += 1
                self._results.move_to_end(key)
            return found

    def put(self, key: Hashable, value: dict[str, float]) -> None:
        with self._lock:
            self._results[key] = value
            self._results.move_to_end(key)
            while len(self._results) > self.max_entries:
                self._results.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._results)


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
    """Measure `expression` at every grid point, on a scratch copy of the session: the
    session's own composition is never changed, whatever the user does meanwhile."""
    state = manager.state(session)
    fixed = dict(fixed or {})
    mode, merge = state.mode, state.merge
    combination = parse(expression, state.modules)
    require_values(combination, axes, fixed)
    check_extreme_point(state.modules, mode, merge, combination, axes, fixed)
    cache = cache if cache is not None else ResultCache()
    jobs = plan_jobs(combination, expression, axes, fixed, references)
    rows: list[dict[str, object]] = []
    with manager.scratch(session) as trial:
        for done, job in enumerate(jobs, start=1):
            if stop is not None and stop.is_set():
                break
            manager.set_composition(trial, job.expression, job.values, mode, merge)
            rows.append({**job.row, **_measure(manager, trial, measures, cache)})
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
    """The measures at one composition, tried on a scratch copy of the session."""
    state = manager.state(session)
    with manager.scratch(session) as trial:
        manager.set_composition(trial, expression, values, state.mode, state.merge)
        return _measure(manager, trial, measures, cache)
