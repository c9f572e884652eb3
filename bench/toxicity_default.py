"""The Toxicity tab's default run, timed: is it under a minute on this machine?

    .venv/bin/python bench/toxicity_default.py [--repeats 3]

The default preset (unlearning-lora on SmolLM2-135M-Instruct), the tab's defaults: the
paper's prompt, DEFAULT_SAMPLES completions per setting, λ 0.5 and 1.0, so 4 settings
(base, +toxic, −0.5·toxic, −1·toxic), each sampled and scored, with perplexity. The
first run includes the warm-up of the sampling path; all runs are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from workbench.eval.sampling import PAPER_PROMPT
    from workbench.ui.controller import Controller
    from workbench.ui.tabs.toxicity import DEFAULT_SAMPLES

    controller = Controller()
    controller.start("bench", preset="unlearning-lora")
    took = []
    for seed in range(args.repeats):  # a new seed each time: nothing comes from a cache
        start = time.perf_counter()
        controller.toxicity("bench", "toxic", [PAPER_PROMPT], DEFAULT_SAMPLES, [0.5, 1.0], seed=seed)
        took.append(time.perf_counter() - start)
    runs = ", ".join(f"{t:.1f}" for t in took)
    print(f"Toxicity tab defaults ({DEFAULT_SAMPLES} samples × 4 settings), {torch.get_num_threads()} threads")
    print(f"| runs (s) | median (s) | target |\n|---|---|---|\n| {runs} | {statistics.median(took):.1f} | < 60 |")


if __name__ == "__main__":
    main()
