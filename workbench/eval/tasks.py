"""Classification tasks: texts, labels, the words that name the labels, and a metric.

A task is plain data, so the UI, the CLI and the tests build them the same way: from a
CSV file (`text,label` columns) or in code. Label words are what a language model is
scored on; an encoder with a task head ignores them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.eval.metrics import METRICS

DEFAULT_TEMPLATE = "{text}\nAnswer:"


@dataclass(frozen=True)
class ClassificationTask:
    name: str
    texts: tuple[str, ...]
    labels: tuple[int, ...]
    label_words: tuple[str, ...]
    metric: str = "accuracy"
    template: str = DEFAULT_TEMPLATE

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels) or not self.texts:
            raise WorkbenchError(f"task {self.name}: needs as many labels as texts, and at least one")
        if self.metric not in METRICS:
            raise WorkbenchError(f"task {self.name}: unknown metric {self.metric!r}")
        if any(not 0 <= y < len(self.label_words) for y in self.labels):
            raise WorkbenchError(f"task {self.name}: a label is outside its {len(self.label_words)} label words")

    def subset(self, n: int | None, seed: int) -> ClassificationTask:
        """A seeded sample of `n` examples (all when n is None or larger)."""
        if n is None or n >= len(self.texts):
            return self
        order = list(range(len(self.texts)))
        random.Random(seed).shuffle(order)
        keep = sorted(order[:n])
        return ClassificationTask(
            self.name,
            tuple(self.texts[i] for i in keep),
            tuple(self.labels[i] for i in keep),
            self.label_words,
            self.metric,
            self.template,
        )


def load_csv_task(path: str | Path, metric: str = "accuracy", name: str | None = None) -> ClassificationTask:
    """A task from a CSV with `text` and `label` columns; label words are the sorted labels."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"could not read task file {path} ({type(exc).__name__})") from None
    if not {"text", "label"} <= set(frame.columns):
        raise WorkbenchError(f"task file {path} needs 'text' and 'label' columns, has {list(frame.columns)}")
    words = tuple(sorted(str(v) for v in frame["label"].unique()))
    labels = tuple(words.index(str(v)) for v in frame["label"])
    return ClassificationTask(name or path.stem, tuple(frame["text"].astype(str)), labels, words, metric)
