"""From a measure's name to the measure: the one place the UI, the CLI, the cards and the
studies turn "sentiment-validation", "austen-perplexity" or "toxicity" into what runs.

Before this, the UI and the CLI each read task names their own way, and the same name gave
two measurements under two column names. Now a name and its sizes give one measure, and
its column says what was measured: a perplexity over part of a text is named with the part
(`perplexity:austen-perplexity[:2000]`), so two columns of one name are always comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.catalog.registry import zoo_task_path
from workbench.errors import WorkbenchError
from workbench.eval.measures import (
    MAX_EXAMPLES,
    Measure,
    PerplexityMeasure,
    TaskMeasure,
    ToxicityMeasure,
    check_count,
)
from workbench.eval.sampling import PAPER_PROMPT
from workbench.eval.tasks import load_csv_task
from workbench.eval.toxicity import Scorer

TOXICITY = "toxicity"
PPL_PREFIX = "ppl:"


@dataclass(frozen=True)
class Sizes:
    """How much each kind of measure reads: the same spec at other sizes is another measure."""

    n: int | None = 200  # examples per classification task; None: all of them
    samples: int = 20  # sampled completions per toxicity point
    ppl_characters: int | None = None  # the opening of a perplexity text; None: all of it
    seed: int = 0
    prompts: tuple[str, ...] = (PAPER_PROMPT,)
    max_new_tokens: int = 40
    chat: bool = False


def measure_from_spec(spec: str, sizes: Sizes, scorer: Scorer | None = None) -> Measure:
    """`spec` is "toxicity", a zoo task name (assets/data/NAME.csv or NAME.txt), "ppl:PATH",
    or the path of a task CSV (text,label) or a perplexity text (.txt). Toxicity needs `scorer`."""
    if spec == TOXICITY:
        if scorer is None:
            raise WorkbenchError("toxicity needs a scorer; none was given")
        return ToxicityMeasure(scorer, sizes.prompts, sizes.samples, sizes.seed, sizes.max_new_tokens, sizes.chat)
    path = Path(spec.removeprefix(PPL_PREFIX)) if spec.startswith(PPL_PREFIX) else zoo_task_path(spec) or Path(spec)
    if not path.is_file():
        raise WorkbenchError(f"task {spec!r}: no such file or zoo task")
    if spec.startswith(PPL_PREFIX) or path.suffix == ".txt":
        text = read_text_task(spec, path)
        name = f"perplexity:{path.stem}"
        if sizes.ppl_characters is not None:
            check_count("perplexity characters", sizes.ppl_characters, len(text))
            if sizes.ppl_characters < len(text):
                text, name = text[: sizes.ppl_characters], f"{name}[:{sizes.ppl_characters}]"
        return PerplexityMeasure(text, name=name)
    task = load_csv_task(path)
    n = None if sizes.n is None else min(check_count("examples per task", sizes.n, MAX_EXAMPLES), len(task.texts))
    return TaskMeasure(task, n, sizes.seed)


def measures_from_specs(specs: list[str] | tuple[str, ...], sizes: Sizes, scorer: Scorer | None = None) -> list:
    """One measure per spec, all refused before any model loads."""
    if not specs:
        raise WorkbenchError("choose at least one task to measure")
    return [measure_from_spec(spec, sizes, scorer) for spec in specs]


def read_text_task(spec: str, path: Path) -> str:
    """A perplexity text, refused now (not after the models load) when unreadable as UTF-8 or empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise WorkbenchError(f"task {spec!r}: {path} is not UTF-8 text; save it as UTF-8") from None
    if not text.strip():
        raise WorkbenchError(f"task {spec!r}: {path} is empty")
    return text
