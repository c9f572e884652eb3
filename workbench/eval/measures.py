"""What a sweep measures at each point: a task metric, perplexity, or toxicity.

A measure is anything with a `key` (what its result depends on besides the model) and
`run(base) -> {column: value}`, called with the composition live. Results are cached by
(composition key, measure key), so the key must name the task, n, seed and scorer.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from workbench.algebra.merging import check_seed
from workbench.errors import WorkbenchError
from workbench.eval.classify import predict
from workbench.eval.intervals import bootstrap, mean_with_interval, wilson, with_interval
from workbench.eval.metrics import compute
from workbench.eval.perplexity import perplexity
from workbench.eval.sampling import PAPER_PROMPT, sample
from workbench.eval.tasks import ClassificationTask
from workbench.eval.toxicity import Scorer, summarise
from workbench.runtime.loading import LoadedBase

MAX_EXAMPLES = 100_000  # a task's examples per point
MAX_SAMPLES = 10_000  # sampled completions per point (each is a generation)
MAX_PROMPT_CHARACTERS = 2_000


def check_count(what: str, value: object, limit: int) -> int:
    """A count from 1 to `limit`: zero or negative would silently measure less, a huge one never end."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise WorkbenchError(f"{what} must be a whole number from 1 to {limit}, got {value!r}")
    return value


class Measure(Protocol):
    @property
    def key(self) -> Hashable: ...

    @property
    def columns(self) -> tuple[str, ...]: ...

    def run(self, base: LoadedBase) -> dict[str, float]: ...


@dataclass(frozen=True)
class TaskMeasure:
    task: ClassificationTask
    n: int | None = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n is not None:
            check_count("examples per task", self.n, MAX_EXAMPLES)
        check_seed(self.seed)

    @property
    def key(self) -> Hashable:
        return ("task", self.task.name, self.task.metric, len(self.task.texts), self.n, self.seed)

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.task.name,)

    def run(self, base: LoadedBase) -> dict[str, float]:
        """The metric, with a Wilson interval for accuracy and a bootstrap one otherwise."""
        task = self.task.subset(self.n, self.seed)
        predictions, labels = predict(base, task), list(task.labels)
        value = compute(task.metric, predictions, labels)
        n = len(labels)
        if task.metric == "accuracy":
            low, high = wilson(sum(p == y for p, y in zip(predictions, labels, strict=True)), n)
        else:
            low, high = bootstrap(n, lambda rows: compute(task.metric, [predictions[i] for i in rows],
                                                          [labels[i] for i in rows]), self.seed)  # fmt: skip
        return with_interval(self.task.name, value, low, high, n)


@dataclass(frozen=True)
class PerplexityMeasure:
    text: str
    name: str = "perplexity"
    stride: int | None = None

    @property
    def key(self) -> Hashable:
        return ("perplexity", self.name, hash(self.text), len(self.text), self.stride)

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.name,)

    def run(self, base: LoadedBase) -> dict[str, float]:
        return {self.name: perplexity(base, self.text, stride=self.stride)}


@dataclass(frozen=True)
class ToxicityMeasure:
    scorer: Scorer = field(compare=False)
    prompts: tuple[str, ...] = (PAPER_PROMPT,)
    n: int = 40
    seed: int = 0
    max_new_tokens: int = 40
    chat: bool = False

    def __post_init__(self) -> None:
        check_count("toxicity samples", self.n, MAX_SAMPLES)
        check_seed(self.seed)
        if not self.prompts or not all(isinstance(p, str) and p.strip() for p in self.prompts):
            raise WorkbenchError("give at least one non-empty prompt to sample toxicity from")
        if any(len(p) > MAX_PROMPT_CHARACTERS for p in self.prompts):
            raise WorkbenchError(f"a toxicity prompt is longer than {MAX_PROMPT_CHARACTERS} characters; shorten it")

    @property
    def key(self) -> Hashable:
        return ("toxicity", self.scorer.name, self.prompts, self.n, self.seed, self.max_new_tokens, self.chat)

    @property
    def columns(self) -> tuple[str, ...]:
        return ("toxicity", "toxic_rate")

    def run(self, base: LoadedBase) -> dict[str, float]:
        return self.score_samples(self.samples(base))[0]

    def samples(self, base: LoadedBase) -> list[tuple[str, str]]:
        return sample(base, self.prompts, self.n, self.seed, self.max_new_tokens, self.chat)

    def score_samples(self, pairs: Sequence[tuple[str, str]]) -> tuple[dict[str, float], list[float]]:
        scores = self.scorer.score([completion for _, completion in pairs])
        summary = summarise(self.scorer, scores)
        return {**mean_with_interval("toxicity", scores, self.seed), "toxic_rate": summary.toxic_rate}, scores
