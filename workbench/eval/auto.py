"""Choosing λ automatically on a validation split (the paper's stated future work).

- Accuracy tasks: the best average metric. One parameter: a grid, then a finer grid
  around the best point. Several: Optuna's TPE sampler, seeded.
- Unlearning (the paper's App. D rule): among the points whose perplexity stays within
  `ppl_bound` of the base, the lowest toxicity; ties go to the larger λ.

Selection only ever sees validation measures; test numbers are reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.eval.plots import points, references
from workbench.eval.sweep import GridAxis

Objective = Callable[[dict[str, float]], float]


@dataclass(frozen=True)
class Choice:
    values: dict[str, float]
    score: float
    rule: str


def refine_1d(objective: Objective, axis: GridAxis, rounds: int = 2) -> Choice:
    """Grid search on `axis`, then `rounds` finer grids (5 points) around the best value."""
    tried: dict[float, float] = {}

    def score(value: float) -> float:
        value = round(value, 10)
        if value not in tried:
            tried[value] = objective({axis.name: value})
        return tried[value]

    for value in axis.values:
        score(value)
    step = min((b - a for a, b in zip(axis.values, axis.values[1:], strict=False)), default=0.0)
    low, high = min(axis.values), max(axis.values)
    for _ in range(rounds):
        best = max(tried, key=lambda v: (tried[v], -abs(v - 0.5)))
        step /= 2
        if step <= 0:
            break
        for value in (best - step, best + step):
            if low <= value <= high:
                score(value)
    best = max(tried, key=lambda v: tried[v])
    return Choice({axis.name: best}, tried[best], f"grid of {len(axis.values)} refined {rounds}×")


def optuna_search(objective: Objective, axes: Sequence[GridAxis], trials: int, seed: int) -> Choice:
    """Maximise `objective` over the box the axes span, with Optuna's seeded TPE sampler."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))

    def trial_objective(trial: optuna.Trial) -> float:
        values = {a.name: trial.suggest_float(a.name, min(a.values), max(a.values)) for a in axes}
        return objective(values)

    study.optimize(trial_objective, n_trials=trials)
    return Choice(dict(study.best_params), float(study.best_value), f"Optuna TPE, {trials} trials, seed {seed}")


def average_metric(row: dict[str, float], metrics: Sequence[str]) -> float:
    values = [row[m] for m in metrics if m in row and not math.isnan(row[m])]
    return sum(values) / len(values) if values else float("-inf")


def unlearning_choice(frame: pd.DataFrame, parameter: str, ppl_bound: float = 0.5) -> Choice:
    """The paper's rule on a sweep with `toxicity` and `perplexity` and a base reference row."""
    base = references(frame)
    base = base[base["label"] == "base"]
    if base.empty or not {"toxicity", "perplexity"} <= set(frame.columns):
        raise WorkbenchError("the unlearning rule needs toxicity, perplexity and the base reference row")
    limit = float(base["perplexity"].iloc[0]) + ppl_bound
    curve = points(frame)
    allowed = curve[curve["perplexity"] <= limit]
    if allowed.empty:
        raise WorkbenchError(f"no λ keeps perplexity within {ppl_bound} of the base ({limit - ppl_bound:.2f})")
    best = allowed.sort_values(["toxicity", parameter], ascending=[True, False]).iloc[0]
    return Choice(
        {parameter: float(best[parameter])}, -float(best["toxicity"]), f"lowest toxicity with PPL ≤ {limit:.2f}"
    )
