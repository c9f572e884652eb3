"""Two users on one SmolLM2: how long a slider release waits while another user's toxicity
run holds the model.

    .venv/bin/python bench/fairness.py [--releases 10] [--samples 20]

Both users work through the UI's controller in one process, as the Gradio handlers do
(toxicity runs and chats have queues of their own in the app, so only the base's lock is
shared). The reviewer releases the slider `--releases` times, alternating two λ (each
recompose after the first is a cache hit, so what is measured is waiting plus a readout):
once with the model idle, then while the other user samples toxicity, with long jobs
stepping aside between tokens (the workbench) and without (`FairLock.step_aside` switched
off, as a lock held for a whole job behaves). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from workbench.eval.sampling import PAPER_PROMPT
from workbench.runtime.fairness import FairLock
from workbench.ui.controller import Controller


def releases(controller: Controller, count: int) -> list[float]:
    seconds = []
    for index in range(count):
        started = time.perf_counter()
        controller.recompose("reviewer", "-lam*toxic", {"lam": (0.3, 0.6)[index % 2]})
        seconds.append(time.perf_counter() - started)
        time.sleep(0.2)  # a person between two releases
    return seconds


def busy(controller: Controller, count: int, samples: int) -> tuple[list[float], float]:
    """The reviewer's release times while the other user's toxicity run goes on, and that run's length."""
    started = time.perf_counter()
    job = threading.Thread(target=controller.toxicity, args=("busy", "toxic", [PAPER_PROMPT], samples, [0.5, 1.0]))
    job.start()
    time.sleep(1.0)  # the run is under way
    seconds = releases(controller, count)
    job.join()
    return seconds, time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=10)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    controller = Controller()
    for session in ("reviewer", "busy"):
        controller.start(session, preset="unlearning-lora")
    releases(controller, 2)  # warm: both λ folded and cached
    rows = [("idle", releases(controller, args.releases), None)]
    rows.append(("during a toxicity run, stepping aside", *busy(controller, args.releases, args.samples)))
    step_aside = FairLock.step_aside
    FairLock.step_aside = lambda self: False  # a lock held for the whole job
    try:
        rows.append(("during a toxicity run, lock held per job", *busy(controller, args.releases, args.samples)))
    finally:
        FairLock.step_aside = step_aside
    idle_p95 = percentile(rows[0][1], 0.95)
    print(f"SmolLM2-135M-Instruct, unlearning preset; {args.releases} releases; toxicity: {args.samples} samples × "
          "4 settings")  # fmt: skip
    print("| slider release | median (s) | p95 (s) | p95 / idle p95 | toxicity run (s) |\n|---|---|---|---|---|")
    for label, seconds, run in rows:
        p95 = percentile(seconds, 0.95)
        shown = f"{run:.1f}" if run is not None else ""
        print(f"| {label} | {statistics.median(seconds):.3f} | {p95:.3f} | {p95 / idle_p95:.1f}× | {shown} |")


if __name__ == "__main__":
    main()
