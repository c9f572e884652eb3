"""Choosing λ automatically on a validation split (the paper's stated future work).

- Accuracy tasks: the best average metric. One parameter: a grid, then a finer grid
  around the best point. Several: Optuna's TPE sampler, seeded.
- Unlearning has two named rules, both bounded by the base's perplexity (absolute,
  `ppl_bound`, +0.5 by default, the CLI's; or relative, `ppl_ratio`, 1.05 in the UI):
  - `lowest_toxicity_within` (the paper's App. D rule, for --auto and the UI's button):
    among the points within the bound, the lowest toxicity; ties go to the larger λ.
  - `largest_lambda_within` (the model cards' rule): the largest λ within the bound.
    Perplexity alone chooses, so the toxicity a card reports was not selected on.

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
Search = Callable[[Sequence[str], Sequence[GridAxis], int], "Choice"]


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


LOWEST_TOXICITY = "lowest toxicity with perplexity within the bound (the paper's App. D rule)"
LARGEST_LAMBDA = "largest λ with perplexity within the bound (the model cards' rule; toxicity is not read)"


def _within_bound(frame: pd.DataFrame, ppl_bound: float, ppl_ratio: float | None) -> tuple[pd.DataFrame, float]:
    """The points whose perplexity stays within the bound of the base reference row's, and the limit."""
    base = references(frame)
    base = base[base["label"] == "base"]
    if base.empty or "perplexity" not in frame.columns:
        raise WorkbenchError("the unlearning rules need perplexity and the base reference row")
    base_ppl = float(base["perplexity"].iloc[0])
    limit = base_ppl * ppl_ratio if ppl_ratio is not None else base_ppl + ppl_bound
    curve = points(frame)
    allowed = curve[curve["perplexity"] <= limit]
    if allowed.empty:
        within = f"{ppl_ratio:g} × the base's" if ppl_ratio is not None else f"{ppl_bound} of the base's"
        raise WorkbenchError(f"no λ keeps perplexity within {within} ({base_ppl:.2f}); measure smaller λ")
    return allowed, limit


def lowest_toxicity_within(frame: pd.DataFrame, parameter: str, ppl_bound: float = 0.5,
                           ppl_ratio: float | None = None) -> Choice:  # fmt: skip
    """The paper's rule on a sweep with `toxicity` and `perplexity` and a base reference row."""
    if "toxicity" not in frame.columns:
        raise WorkbenchError("the lowest-toxicity rule needs toxicity measured")
    allowed, limit = _within_bound(frame, ppl_bound, ppl_ratio)
    best = allowed.sort_values(["toxicity", parameter], ascending=[True, False]).iloc[0]
    return Choice({parameter: float(best[parameter])}, -float(best["toxicity"]),
                  f"lowest toxicity with PPL ≤ {limit:.2f}")  # fmt: skip


def largest_lambda_within(frame: pd.DataFrame, parameter: str, ppl_bound: float = 0.5,
                          ppl_ratio: float | None = None) -> Choice:  # fmt: skip
    """The cards' rule: the largest λ whose perplexity stays within the bound."""
    allowed, limit = _within_bound(frame, ppl_bound, ppl_ratio)
    best = allowed.sort_values(parameter, ascending=False).iloc[0]
    return Choice({parameter: float(best[parameter])}, float(best[parameter]), f"largest λ with PPL ≤ {limit:.2f}")


def metric_columns(columns: Sequence[str]) -> list[str]:
    """The higher-is-better task metrics among a sweep's columns (not toxicity or perplexity)."""
    return [c for c in columns if c not in ("toxicity", "toxic_rate") and not c.startswith("perplexity")]


def perplexity_column(columns: Sequence[str]) -> str | None:
    """Sweeps name it `perplexity:TEXT` (with `[:N]` for part of it); the Compose tab's live curve `perplexity`."""
    return next((c for c in columns if c == "perplexity" or c.startswith("perplexity:")), None)


def choose_values(measure_at: Callable[[dict[str, float]], dict[str, float]], axes: Sequence[GridAxis],
                  columns: Sequence[str], frame: pd.DataFrame, seed: int = 0, ppl_bound: float = 0.5,
                  ppl_ratio: float | None = None, search: Search | None = None) -> Choice:  # fmt: skip
    """λ chosen on validation, for the CLI's --auto and the UI's button alike.

    `frame` is a validation sweep over `axes` (reference rows included); `measure_at(values)`
    measures one more point on validation (through the result cache, so grid points are not
    measured twice). Toxicity with perplexity takes the unlearning rule on the frame; task
    metrics their best average, refined around the best grid point (one parameter) or by
    `search(metrics, axes, seed)` (several; in-process Optuna unless the Ray backend passes
    Ray Tune)."""
    ppl = perplexity_column(columns)
    if "toxicity" in columns and ppl:
        return lowest_toxicity_within(frame.rename(columns={ppl: "perplexity"}), axes[0].name, ppl_bound, ppl_ratio)
    metrics = metric_columns(columns)
    if not metrics:
        raise WorkbenchError("choosing λ needs a classification task, or toxicity with a perplexity task")

    def objective(values: dict[str, float]) -> float:
        return average_metric(measure_at(values), metrics)

    if len(axes) == 1:
        return refine_1d(objective, axes[0])
    if search is not None:
        return search(metrics, axes, seed)
    return optuna_search(objective, axes, trials=30, seed=seed)
