"""Task metrics, written out so each can be checked against a hand-computed case."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

METRICS = ("accuracy", "mcc", "spearman")


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    if not labels:
        return float("nan")
    return sum(int(p == y) for p, y in zip(predictions, labels, strict=True)) / len(labels)


def mcc(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Matthews correlation for any number of classes (Gorodkin's R_K); 0 when undefined."""
    classes = sorted(set(labels) | set(predictions))
    index = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    confusion = [[0] * k for _ in range(k)]
    for p, y in zip(predictions, labels, strict=True):
        confusion[index[y]][index[p]] += 1
    n = len(labels)
    correct = sum(confusion[i][i] for i in range(k))
    true_counts = [sum(row) for row in confusion]
    predicted_counts = [sum(confusion[r][c] for r in range(k)) for c in range(k)]
    covariance = correct * n - sum(t * p for t, p in zip(true_counts, predicted_counts, strict=True))
    spread = math.sqrt((n * n - sum(p * p for p in predicted_counts)) * (n * n - sum(t * t for t in true_counts)))
    return covariance / spread if spread else 0.0


def spearman(predictions: Sequence[float], labels: Sequence[float]) -> float:
    """Rank correlation with average ranks for ties; nan when either side is constant."""
    frame = pd.DataFrame({"p": list(predictions), "y": list(labels)})
    return float(frame["p"].corr(frame["y"], method="spearman"))


def compute(metric: str, predictions: Sequence, labels: Sequence) -> float:
    if metric == "accuracy":
        return accuracy(predictions, labels)
    if metric == "mcc":
        return mcc(predictions, labels)
    if metric == "spearman":
        return spearman(predictions, labels)
    raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
