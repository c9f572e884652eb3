"""Evaluation: task metrics, perplexity, toxicity, streamed λ sweeps and automatic λ."""

from workbench.eval.classify import evaluate
from workbench.eval.measures import PerplexityMeasure, TaskMeasure, ToxicityMeasure
from workbench.eval.sweep import GridAxis, ResultCache, SweepUpdate, parse_grid, parse_grids, sweep
from workbench.eval.tasks import ClassificationTask, load_csv_task
from workbench.eval.toxicity import DetoxifyScorer, ProfanityScorer, default_scorer

__all__ = [
    "ClassificationTask",
    "DetoxifyScorer",
    "GridAxis",
    "PerplexityMeasure",
    "ProfanityScorer",
    "ResultCache",
    "SweepUpdate",
    "TaskMeasure",
    "ToxicityMeasure",
    "default_scorer",
    "evaluate",
    "load_csv_task",
    "parse_grid",
    "parse_grids",
    "sweep",
]
