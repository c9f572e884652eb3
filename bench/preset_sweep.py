"""Points per minute for a classifier preset's sweep, against the naive PEFT loop.

    .venv/bin/python bench/preset_sweep.py [--preset distribution-generalization-lora] [--n 200]

The preset's own modules (trained zoo LoRAs on MiniLM, with their heads), expression and
11-point grid, accuracy on `n` examples of its validation task per point. The naive way
in the same run: per λ, deepcopy the PEFT sequence classifier holding both adapters,
`add_weighted_adapter` (linear: the paper's combination for same-rank LoRAs), set the
heads' combination, `merge_and_unload`, then the same predictions.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).parent))
from sweep import report  # noqa: E402

from workbench.catalog.presets import PRESETS  # noqa: E402
from workbench.catalog.registry import DATA, zoo_adapter_path  # noqa: E402
from workbench.eval import TaskMeasure, load_csv_task, parse_grid, sweep  # noqa: E402
from workbench.eval.classify import predict  # noqa: E402
from workbench.runtime import SessionManager  # noqa: E402
from workbench.runtime.loading import LoadedBase, resolve_folder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="distribution-generalization-lora")
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    preset = PRESETS[args.preset]
    task = load_csv_task(DATA / f"{preset.tasks[0]}.csv").subset(args.n, 0)
    grid = parse_grid(preset.grid)
    paths = {name: zoo_adapter_path(zoo) for name, zoo in preset.adapters.items()}

    manager = SessionManager()
    manager.rebuild("bench", preset.base, paths, preset.expression, {"lam": 0.5})
    with manager.model_for("bench") as base:
        predict(base, task)  # warm-up
    start = time.perf_counter()
    for _ in sweep(manager, "bench", preset.expression, [grid], [TaskMeasure(task, None)], references=False):
        pass
    sweep_seconds = time.perf_counter() - start
    with manager.model_for("bench") as base:
        start = time.perf_counter()
        for _ in grid.values:
            predict(base, task)
        forward_seconds = time.perf_counter() - start
    naive_seconds = naive_loop(preset.base, paths, grid.values, task)

    title = (f"preset {args.preset} on {preset.base}: 11-point sweep of `{preset.expression}`, accuracy on "
             f"{args.n} {preset.tasks[0]} examples per point, {torch.get_num_threads()} threads")  # fmt: skip
    report(title, sweep_seconds, forward_seconds, len(grid.values), naive_seconds)


def naive_loop(base_name: str, paths: dict[str, object], values: tuple[float, ...], task) -> float | str:
    """Seconds for the naive loop, or PEFT's own refusal when it cannot combine these adapters."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder, _ = resolve_folder(base_name)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=len(task.label_words)).eval()
    (first, a), (second, b) = paths.items()
    peft_model = PeftModel.from_pretrained(model, str(a), adapter_name=first)
    peft_model.load_adapter(str(b), adapter_name=second)
    heads = {name: peft_model.base_model.model.classifier.modules_to_save[name] for name in (first, second)}
    tokenizer = AutoTokenizer.from_pretrained(folder)
    start = time.perf_counter()
    for index, lam in enumerate(values):
        clone = copy.deepcopy(peft_model)
        try:
            clone.add_weighted_adapter([first, second], [lam, 1 - lam], adapter_name=f"m{index}",
                                       combination_type="linear")  # fmt: skip
        except ValueError as exc:  # PEFT refuses adapters that carry modules_to_save heads
            return f"PEFT refuses: {exc}"
        clone.set_adapter(f"m{index}")
        merged = clone.merge_and_unload()
        with torch.no_grad():
            for name in ("weight", "bias"):
                combined = lam * getattr(heads[first], name) + (1 - lam) * getattr(heads[second], name)
                getattr(merged.classifier, name).copy_(combined)
        loaded = LoadedBase(base_name, merged, tokenizer, "classifier", torch.device("cpu"), torch.float32, {}, None)
        predict(loaded, task)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
