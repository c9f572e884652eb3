"""Uncertainty for what a point measures: a Wilson interval for accuracy, a percentile
bootstrap for any other statistic (toxicity's mean, MCC).

A measure's row carries its headline column `m` and, beside it, `m_low`, `m_high` and
`m_n` (`interval_columns`), so a plot draws bands and a readout says `± (n=…)` from the
same row the CSV keeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Z_95 = 1.959964
BOOTSTRAP_REPS = 1000


def interval_columns(metric: str) -> tuple[str, str, str]:
    return f"{metric}_low", f"{metric}_high", f"{metric}_n"


def wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval: unlike the normal one it stays inside [0, 1] and is not
    zero-width at 0 or n successes, which small live readouts hit often."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap(n: int, statistic: Callable[[np.ndarray], float], seed: int = 0,
              reps: int = BOOTSTRAP_REPS) -> tuple[float, float]:  # fmt: skip
    """The 2.5th and 97.5th percentiles of `statistic(indices)` over resamples of range(n);
    seeded, so a cached point and a re-run draw the same interval."""
    if n <= 0:
        return math.nan, math.nan
    draws = np.random.default_rng(seed).integers(0, n, size=(reps, n))
    values = np.array([statistic(row) for row in draws], dtype=float)
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def with_interval(metric: str, value: float, low: float, high: float, n: int) -> dict[str, float]:
    names = interval_columns(metric)
    return {metric: value, names[0]: low, names[1]: high, names[2]: float(n)}


def mean_with_interval(metric: str, scores: Sequence[float], seed: int = 0) -> dict[str, float]:
    """A mean and its bootstrap interval, e.g. toxicity over sampled completions."""
    array = np.asarray(scores, dtype=float)
    mean = float(array.mean()) if len(array) else math.nan
    low, high = bootstrap(len(array), lambda rows: float(array[rows].mean()), seed)
    return with_interval(metric, mean, low, high, len(array))
