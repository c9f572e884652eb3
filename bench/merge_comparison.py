"""KnOTS, TSV-M and Iso-C against linear (exact task arithmetic) and TIES on the zoo's
multi-task LoRA pair; prints the markdown tables that docs/zoo-studies.md holds between its
`MERGE_COMPARISON` markers (`workbench/studio/sections.py`), which `zoo study` keeps.

    .venv/bin/python bench/merge_comparison.py [--n N] [--density 0.2]

The `multi-task-lora` preset: `lam*sentiment + (1-lam)*topic` on minilm-l6, with the zoo's
`minilm-sentiment-lora` and `minilm-topic-lora` (rank 8 on query and value); each task is
read through its own module's head, as the linear composition reads it (`combine_heads`:
the merge changes the backbone's ΔW only). For each method, λ on the preset's grid
(0:1:0.1) is chosen on validation (the two-task average accuracy), then validation and
test are reported at that λ.

- linear: exact mode, ΔW = λΔW_s + (1−λ)ΔW_t, a LoRA of rank 16.
- TIES: our TIES applies to sparse task vectors only, so each LoRA's ΔW = s·B·A is written
  out as a dense task vector (every entry kept, the LoRA's head with it) and merged with
  `--merge ties --density D`, per parameter, weights (λ, 1−λ). Its result is a dense τ,
  not a LoRA.
- KnOTS (TIES in the aligned space, density D), TSV-M (density 1: the paper's 1/n of each
  rank, so rank 8) and Iso-C, each written as a LoRA (`workbench.algebra.lora_merges`).

Every example of each split (`--n N`: a seeded sample of N, for a loaded machine), sorted
by length so a batch pads less: predictions are the same up to float rounding. 8.2
minutes on 2 CPU cores (a test run shared them part of the time); `--n 400` took 27 while
another job held a core throughout.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace

import torch
import transformers

from workbench.algebra import MergeOptions
from workbench.catalog.presets import PRESETS
from workbench.catalog.registry import zoo_adapter_path
from workbench.eval import parse_grid
from workbench.eval.classify import evaluate
from workbench.eval.tasks import ClassificationTask
from workbench.modules import PEM
from workbench.modules.lora import LoraModule
from workbench.modules.sparse import SparseModule, SparseTensor
from workbench.runtime import SessionManager
from workbench.studio.cards import split_task

PRESET = PRESETS["multi-task-lora"]
TASKS = ("sentiment", "topic")


@dataclass(frozen=True)
class Method:
    label: str
    merge: MergeOptions
    dense: bool = False  # merge the LoRAs' ΔW as dense task vectors (TIES)


@dataclass
class Result:
    method: Method
    validation: dict[float, tuple[float, float]]  # λ -> (sentiment, topic)
    lam: float
    test: tuple[float, float]
    written: str  # what an export of the merge at λ is


def dense_task_vector(lora: LoraModule) -> SparseModule:
    """The LoRA's ΔW = s·B·A on each target as a task vector holding every entry, with its head."""
    tensors = {}
    for name, deltas in lora.edits().deltas.items():
        dense = torch.zeros(lora.needed_shapes[name])
        for delta in deltas:
            delta.add_to(dense, out=dense)
        tensors[name] = SparseTensor.from_dense(dense)
    return SparseModule(tensors, {"base_model_name_or_path": lora.base_model}, lora.source, lora.head)


def by_length(task: ClassificationTask) -> ClassificationTask:
    order = sorted(range(len(task.texts)), key=lambda i: len(task.texts[i]))
    return replace(task, texts=tuple(task.texts[i] for i in order), labels=tuple(task.labels[i] for i in order))


def splits(n: int | None) -> dict[str, tuple[ClassificationTask, ...]]:
    return {split: tuple(by_length(split_task(task, split).subset(n, 0)) for task in TASKS)
            for split in ("validation", "test")}  # fmt: skip


def scores(manager: SessionManager, session: str, merge: MergeOptions, lam: float,
           tasks: tuple[ClassificationTask, ...]) -> tuple[float, float]:  # fmt: skip
    manager.set_composition(session, PRESET.expression, {"lam": lam}, "exact", merge)
    with manager.model_for(session) as base:
        sentiment, topic = (evaluate(base, task) for task in tasks)
    return sentiment, topic


def written(manager: SessionManager, session: str) -> str:
    part = manager.state(session).composition.parts[0]
    if isinstance(part, LoraModule):
        return f"LoRA, rank {max(factor.rank for factor in part.factors.values())}"
    return "dense task vector"


def run(methods: list[Method], n: int | None) -> list[Result]:
    data = splits(n)
    grid = parse_grid(PRESET.grid).values
    loras: dict[str, PEM] = {name: LoraModule.load(zoo_adapter_path(zoo)) for name, zoo in PRESET.adapters.items()}
    dense: dict[str, PEM] = {name: dense_task_vector(module) for name, module in loras.items()}  # type: ignore[arg-type]
    manager = SessionManager()
    manager.rebuild("loras", PRESET.base, loras)
    manager.rebuild("dense", PRESET.base, dense)
    results = []
    for method in methods:
        session = "dense" if method.dense else "loras"
        start = time.perf_counter()
        validation = {lam: scores(manager, session, method.merge, lam, data["validation"]) for lam in grid}
        lam = max(grid, key=lambda value: sum(validation[value]))  # the first of equals: the grid's order
        test = scores(manager, session, method.merge, lam, data["test"])
        results.append(Result(method, validation, lam, test, written(manager, session)))
        print(f"{method.label}: λ={lam:g} in {time.perf_counter() - start:.0f} s", flush=True)
    return results


def table(results: list[Result], n: int | None, seconds: float) -> str:
    sizes = {split: [len(split_task(task, split).subset(n, 0).texts) for task in TASKS]
             for split in ("validation", "test")}  # fmt: skip
    grid = sorted(results[0].validation)
    head = " | ".join(f"{lam:g}" for lam in grid)
    curve = "\n".join(f"| {r.method.label} | " + " | ".join(f"{sum(r.validation[lam]) / 2:.4f}" for lam in grid)
                      + " |" for r in results)  # fmt: skip
    rows = "\n".join(
        f"| {r.method.label} | {r.lam:g} | {r.validation[r.lam][0]:.4f} | {r.validation[r.lam][1]:.4f} | "
        f"{sum(r.validation[r.lam]) / 2:.4f} | {r.test[0]:.4f} | {r.test[1]:.4f} | {sum(r.test) / 2:.4f} | "
        f"{r.written} |"
        for r in results
    )
    return f"""Validation: {sizes["validation"][0]} sentiment, {sizes["validation"][1]} topic examples; test: \
{sizes["test"][0]} sentiment, {sizes["test"][1]} topic ({seconds / 60:.1f} minutes).

| method | λ | validation sentiment | validation topic | validation average | test sentiment | test topic \
| test average | written as |
|---|---|---|---|---|---|---|---|---|
{rows}

The two-task validation average over the grid, from which λ was chosen:

| method | {head} |
|---|{"---|" * len(grid)}
{curve}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, help="examples per split and task (default: all)")
    parser.add_argument("--density", type=float, default=0.2, help="TIES' and KnOTS' share kept (default 0.2)")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    methods = [
        Method("linear (task arithmetic)", MergeOptions()),
        Method(f"TIES (dense ΔW, density {args.density:g})", MergeOptions("ties", args.density), dense=True),
        Method(f"KnOTS-TIES (density {args.density:g})", MergeOptions("knots", args.density)),
        Method("TSV-M", MergeOptions("tsv_m")),
        Method("Iso-C", MergeOptions("iso_c")),
    ]
    start = time.perf_counter()
    results = run(methods, args.n)
    print(table(results, args.n, time.perf_counter() - start))


if __name__ == "__main__":
    main()
