"""The live curve under the Compose tab's slider: what it measures first, what it holds,
and the line that reads it out.

A `LiveCurve` belongs to one composition (base, modules, expression, mode): its rows are
the reference rows (the base, each module alone) and the points measured so far, whether
the background fill or a slider release measured them. Both draw from the same rows, so
the marker, the readout and the curve never disagree. A new composition gets a new curve;
the old one is marked `stale`, which stops its fill between two points.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from workbench.eval.intervals import interval_columns

COARSE_POINTS = 5


def coarse_first(values: Sequence[float], coarse: int = COARSE_POINTS) -> tuple[list[float], list[float]]:
    """`coarse` evenly spread grid values (both ends included), then the rest: the curve's
    shape shows after a few points and fills in after."""
    values = list(values)
    if len(values) <= coarse:
        return values, []
    picked = sorted({round(i * (len(values) - 1) / (coarse - 1)) for i in range(coarse)})
    first = [values[i] for i in picked]
    return first, [v for v in values if v not in first]


@dataclass
class LiveCurve:
    identity: Hashable
    parameter: str | None  # None: the expression has no single parameter to draw against
    grid: tuple[float, ...]
    columns: tuple[str, ...]  # the measures' headline columns
    rows: dict[tuple[str, object], dict[str, object]] = field(default_factory=dict)
    stale: threading.Event = field(default_factory=threading.Event)

    def add_reference(self, label: str, measured: Mapping[str, float]) -> None:
        self.rows[("reference", label)] = {"kind": "reference", "label": label, **measured}

    def add_point(self, value: float, measured: Mapping[str, float]) -> None:
        if self.parameter is not None:
            self.rows[("point", round(value, 10))] = {"kind": "point", "label": "", self.parameter: value, **measured}

    def add_frame(self, frame: pd.DataFrame) -> None:
        """Rows of a sweep over this curve's parameter."""
        for row in frame.to_dict("records"):
            measured = {k: v for k, v in row.items() if k not in ("kind", "label", self.parameter)}
            if row["kind"] == "reference":
                self.add_reference(str(row["label"]), measured)
            else:
                self.add_point(float(row[self.parameter]), measured)

    def point(self, value: float) -> dict[str, object] | None:
        return self.rows.get(("point", round(value, 10)))

    def reference(self, label: str) -> dict[str, object] | None:
        return self.rows.get(("reference", label))

    def missing(self, values: Sequence[float]) -> list[float]:
        return [v for v in values if self.point(v) is None]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.rows.values()))


def _number(value: object, digits: int) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.{digits}f}"  # perplexity 31.5; accuracy 0.821


def describe_value(row: Mapping[str, object], column: str, digits: int = 3) -> str:
    """`0.821 ± 0.024 (n=200)`: the value, half its 95% interval, and its n (when measured)."""
    low, high, n = (row.get(name) for name in interval_columns(column))
    text = _number(row.get(column), digits)
    if isinstance(low, float) and isinstance(high, float) and math.isfinite(low) and math.isfinite(high):
        text += f" ± {_number((high - low) / 2, digits)}"
    if isinstance(n, (int, float)) and math.isfinite(n):
        text += f" (n={int(n)})"
    return text


def readout_line(point: Mapping[str, object], references: Mapping[str, Mapping[str, object]],
                 columns: Sequence[str]) -> str:  # fmt: skip
    """One line per measure: the composition's value, then the base and each module alone,
    e.g. `sentiment-validation 0.821 ± 0.024 (n=200) · base 0.43 · sentiment_s0 0.78`."""
    lines = []
    for column in columns:
        if column == "toxic_rate":
            continue  # its mean is the headline; the rate is in the Sweep table and the CSV
        others = " · ".join(f"{label} {_number(row.get(column), 3)}" for label, row in references.items())
        lines.append(f"{column} {describe_value(point, column)}" + (f" · {others}" if others else ""))
    return "\n".join(lines)
