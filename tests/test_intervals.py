"""Intervals checked against hand-computed values."""

import math

import numpy as np
import pytest

from workbench.eval.intervals import bootstrap, interval_columns, mean_with_interval, wilson


def test_wilson_matches_the_hand_computed_interval() -> None:
    # p = 0.8, n = 10, z = 1.96: centre (0.8 + 0.19208) / 1.38416, half 1.96·sqrt(0.016 + 0.0096040) / 1.38416
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_is_not_zero_width_at_the_edges() -> None:
    low, high = wilson(10, 10)
    assert high == pytest.approx(1.0) and low == pytest.approx(0.7225, abs=1e-4)
    assert wilson(0, 10)[0] == 0.0 and wilson(0, 10)[1] > 0.2
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_bootstrap_of_a_constant_is_that_constant_and_is_seeded() -> None:
    assert bootstrap(5, lambda rows: 3.0) == (3.0, 3.0)
    scores = np.arange(20, dtype=float)
    first = bootstrap(20, lambda rows: float(scores[rows].mean()), seed=1)
    assert first == bootstrap(20, lambda rows: float(scores[rows].mean()), seed=1)
    assert first[0] < 9.5 < first[1]


def test_mean_with_interval_names_its_columns() -> None:
    row = mean_with_interval("toxicity", [0.0, 1.0, 0.0, 1.0])
    low, high, n = interval_columns("toxicity")
    assert row["toxicity"] == 0.5 and row[n] == 4.0
    assert 0.0 <= row[low] <= 0.5 <= row[high] <= 1.0
