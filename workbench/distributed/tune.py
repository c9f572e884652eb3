"""Automatic λ for several parameters on Ray Tune, with its Optuna searcher (seeded).

Each trial asks one of the pool's workers for its point, so the base is never loaded
again per trial. Selection sees validation only, as in `eval.auto`.
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Sequence

from workbench.distributed.pool import WorkerPool
from workbench.errors import WorkbenchError
from workbench.eval.auto import Choice, average_metric
from workbench.eval.sweep import GridAxis

TRIALS = 30  # as eval.auto's in-process Optuna search


def tune_search(pool: WorkerPool, expression: str, fixed: dict[str, float], metrics: Sequence[str],
                axes: Sequence[GridAxis], trials: int | None = None, seed: int = 0) -> Choice:  # fmt: skip
    """Maximise the average of `metrics` over the box the axes span. With several trials in
    flight at once, TPE's later proposals depend on which trials finished first, so two runs
    with the same seed can differ; the chosen point is measured again for the report."""
    import optuna
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = trials or TRIALS
    actors, metrics = list(pool.actors), list(metrics)

    def trial(config: dict[str, float]) -> dict[str, float]:
        worker = actors[zlib.crc32(tune.get_context().get_trial_id().encode()) % len(actors)]
        measured = ray.get(worker.measure.remote(expression, {**fixed, **config}, "validation"))
        return {"score": average_metric(measured.values, metrics)}

    searcher = OptunaSearch(metric="score", mode="max", sampler=optuna.samplers.TPESampler(seed=seed))
    space = {axis.name: tune.uniform(min(axis.values), max(axis.values)) for axis in axes}
    with tempfile.TemporaryDirectory(prefix="workbench-tune-") as storage:
        tuner = tune.Tuner(
            tune.with_resources(trial, {"cpu": 0, "memory": 1}),  # the workers hold the CPUs
            param_space=space,
            tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=len(actors)),
                                        num_samples=trials),  # fmt: skip
            run_config=tune.RunConfig(storage_path=storage, name="auto", verbose=0),
        )
        try:
            best = tuner.fit().get_best_result(metric="score", mode="max")
        except RuntimeError:  # every trial failed: the first failure is the useful line
            raise WorkbenchError("automatic λ on Ray Tune: no trial finished; measure one point with "
                                 "--backend local to see why") from None
    values = {axis.name: float(best.config[axis.name]) for axis in axes}
    return Choice(values, float(best.metrics["score"]), f"Ray Tune with Optuna TPE, {trials} trials, seed {seed}")
