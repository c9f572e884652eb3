"""Tests written against mutations the rest of the suite let pass: each fails if its bug comes back.

- `PatchCache` evicting the most recent entry, or a `get` not refreshing recency (the LRU
  test elsewhere counts entries and bytes, not which entry went).
- `TaskMeasure.key` without the seed: a sweep at seed 1 would be handed seed 0's results.
"""

import pytest
import torch

from workbench.eval import GridAxis, ResultCache, TaskMeasure, sweep
from workbench.eval.tasks import ClassificationTask
from workbench.runtime import SessionManager
from workbench.runtime.cache import PatchCache, tensor_bytes

ONE = {"w": torch.zeros(4)}  # 16 bytes: a budget of 32 holds two entries


def cache_with(*keys: str) -> PatchCache:
    cache = PatchCache(budget_bytes=2 * tensor_bytes(ONE))
    for key in keys:
        assert cache.put(key, dict(ONE), "s") == []
    return cache


def test_patch_cache_evicts_the_least_recently_used() -> None:
    cache = cache_with("a", "b")
    evicted = cache.put("c", dict(ONE), "s")
    assert [key for key, _ in evicted] == ["a"]
    assert "a" not in cache and "b" in cache and "c" in cache


def test_a_get_makes_an_entry_the_most_recent() -> None:
    cache = cache_with("a", "b")
    assert cache.get("a", "s") is not None
    evicted = cache.put("c", dict(ONE), "s")
    assert [key for key, _ in evicted] == ["b"]
    assert "a" in cache and "b" not in cache and "c" in cache


# Eight copies of one text: the model gives every example the same answer, so a subset's
# accuracy is the share of its labels equal to that answer, and seeds 0 and 1 pick subsets
# whose shares differ (checked below), whatever the answer is.
TASK = ClassificationTask("toy", ("a film",) * 8, (1, 1, 0, 1, 0, 1, 1, 1), ("no", "yes"))


def test_task_measures_at_two_seeds_have_two_keys() -> None:
    first, second = TaskMeasure(TASK, n=4, seed=0), TaskMeasure(TASK, n=4, seed=1)
    assert first.key != second.key
    assert first.key == TaskMeasure(TASK, n=4, seed=0).key


def test_a_sweep_at_another_seed_does_not_reuse_the_cached_result(base_dirs, adapters) -> None:
    shares = {seed: TASK.subset(4, seed).labels.count(0) / 4 for seed in (0, 1)}
    assert shares[0] != shares[1]
    manager = SessionManager()
    manager.open("s", str(base_dirs["llama"]))
    manager.add_module("s", "a", adapters["llama"]["lora_a"])
    cache = ResultCache()
    axes = [GridAxis("lam", (1.0,))]

    def measured(seed: int) -> float:
        frame = list(sweep(manager, "s", "lam*a", axes, [TaskMeasure(TASK, n=4, seed=seed)], cache,
                           references=False))[-1].frame  # fmt: skip
        return float(frame["toy"].iloc[0])

    first = measured(0)
    assert first in (shares[0], 1 - shares[0])
    hits = cache.hits
    second = measured(1)
    assert cache.hits == hits and len(cache) == 2
    assert second in (shares[1], 1 - shares[1]) and second != pytest.approx(first)
    measured(0)
    assert cache.hits == hits + 1  # the same seed again is a hit
