"""Sweep overhead, and the speed-up over rebuilding the merged model with PEFT per λ.

    .venv/bin/python bench/sweep.py [--base smollm2-135m-instruct] [--n 64]

An 11-point sweep of `lam*a + (1-lam)*b` (two rank-8 LoRAs with random factors on
q_proj, v_proj: this measures speed, not skill) with label-word classification of `n`
short texts. It prints a markdown table of:

- sweep wall time over the time of the same forward passes with the composition already
  active (the overhead of recomposing and bookkeeping; target at most 1.10);
- points per minute;
- the naive way in the same run: per λ, deepcopy the PEFT model, `add_weighted_adapter`,
  `merge_and_unload`, then the same forward passes; our speed-up over it.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import transformers

sys.path.insert(0, str(Path(__file__).parent))
from recompose import make_loras  # noqa: E402

from workbench.eval import ClassificationTask, TaskMeasure, parse_grid, sweep  # noqa: E402
from workbench.eval.classify import predict  # noqa: E402
from workbench.runtime import SessionManager  # noqa: E402
from workbench.runtime.loading import load_base_model, resolve_folder  # noqa: E402

WORDS = "good bad fine awful great poor dull bright calm loud".split()


def texts(n: int) -> tuple[str, ...]:
    return tuple(f"The film was {WORDS[i % 10]} and the {WORDS[(3 * i) % 10]} ending felt {WORDS[(7 * i) % 10]}."
                 for i in range(n))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=64)
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    from peft import PeftModel

    folder, _ = resolve_folder(args.base)
    paths = make_loras(Path(folder), Path(tempfile.mkdtemp()), 8)
    task = ClassificationTask("bench", texts(args.n), tuple(i % 2 for i in range(args.n)), ("negative", "positive"))
    grid = parse_grid("lam=0:1:0.1")

    manager = SessionManager()
    manager.rebuild("bench", args.base, {"a": paths[0], "b": paths[1]})
    measure = TaskMeasure(task, n=None)
    with manager.model_for("bench") as base:
        predict(base, task)  # warm-up: first calls pay for allocator growth and kernel set-up
    start = time.perf_counter()
    for _ in sweep(manager, "bench", "lam*a + (1-lam)*b", [grid], [measure], references=False):
        pass
    sweep_seconds = time.perf_counter() - start

    manager.set_composition("bench", "lam*a + (1-lam)*b", {"lam": 0.5})
    with manager.model_for("bench") as base:
        start = time.perf_counter()
        for _ in grid.values:
            predict(base, task)
        forward_seconds = time.perf_counter() - start

    reference = load_base_model(str(folder))  # a second copy for the naive loop, with its tokenizer
    peft_model = PeftModel.from_pretrained(reference.model, str(paths[0]), adapter_name="a")
    peft_model.load_adapter(str(paths[1]), adapter_name="b")
    start = time.perf_counter()
    for index, lam in enumerate(grid.values):
        clone = copy.deepcopy(peft_model)
        clone.add_weighted_adapter(["a", "b"], [lam, 1 - lam], adapter_name=f"m{index}", combination_type="cat")
        clone.set_adapter(f"m{index}")
        merged = clone.merge_and_unload()
        predict(type(reference)(**{**vars(reference), "model": merged}), task)
    naive_seconds = time.perf_counter() - start

    title = f"base {args.base}, 11-point sweep, label-word classification of {args.n} texts per point"
    report(title, sweep_seconds, forward_seconds, len(grid.values), naive_seconds)


def report(title: str, sweep_seconds: float, forward_seconds: float, points: int, naive_seconds: float | str) -> None:
    """The markdown table docs/benchmarks.md keeps, for every sweep benchmark; `naive_seconds`
    is a message where the naive loop could not run."""
    print(title)
    print("| measure | value |\n|---|---|")
    print(f"| sweep wall time | {sweep_seconds:.1f} s |")
    print(f"| same forward passes, composition already active | {forward_seconds:.1f} s |")
    print(f"| sweep overhead (wall / forward) | {sweep_seconds / forward_seconds:.3f} |")
    print(f"| points per minute | {60 * points / sweep_seconds:.1f} |")
    naive = "naive PEFT loop (deepcopy + add_weighted_adapter + merge_and_unload per λ)"
    if isinstance(naive_seconds, str):
        print(f"| {naive} | cannot run: {naive_seconds} |")
        return
    print(f"| {naive} | {naive_seconds:.1f} s |")
    print(f"| speed-up over the naive loop | {naive_seconds / sweep_seconds:.2f}× |")


if __name__ == "__main__":
    main()
