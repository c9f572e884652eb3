"""Server memory across waves of sessions: RSS after warm-up, at each wave's peak, and after
every session of the wave has ended.

    .venv/bin/python bench/sessions_memory.py [--waves 4] [--sessions 20] [--values 3]

Each session does what a reviewer's visit does through the UI's controller: open a preset
(alternating the SmolLM2 unlearning preset and the MiniLM distribution-generalization
preset), move the slider to `--values` new λ (each a recompose and a readout), then leave
(`Controller.release`, which Gradio's unload calls). Prints a markdown table; memory must
come back after each wave, whatever the peak.
"""

from __future__ import annotations

import argparse
import time

from workbench.runtime.memory import resident_bytes
from workbench.ui.controller import Controller

PRESETS = ("unlearning-lora", "distribution-generalization-lora")


def visit(controller: Controller, session: str, preset: str, lams: list[float]) -> None:
    controller.start(session, preset=preset)
    for lam in lams:
        controller.recompose(session, "-lam*toxic" if "unlearning" in preset else "lam*a + (1-lam)*b", {"lam": lam})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waves", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--values", type=int, default=3)
    args = parser.parse_args()
    controller = Controller()
    visit(controller, "warm-up", PRESETS[0], [0.5])
    visit(controller, "warm-up-2", PRESETS[1], [0.5])
    controller.release("warm-up")
    controller.release("warm-up-2")
    warm = resident_bytes()
    rows = [("after warm-up", warm, "")]
    started = time.perf_counter()
    for wave in range(args.waves):
        sessions = [f"w{wave}s{i}" for i in range(args.sessions)]
        for index, session in enumerate(sessions):
            lams = [round(-1 + 2 * ((wave * 97 + index * 13 + k * 7) % 41) / 40, 3) for k in range(args.values)]
            visit(controller, session, PRESETS[index % 2], lams)
        rows.append((f"wave {wave + 1}: {args.sessions} sessions open", resident_bytes(), ""))
        for session in sessions:
            controller.release(session)
        after = resident_bytes()
        rows.append((f"wave {wave + 1}: all ended", after, f"{after / warm:.3f}× warm-up"))
    seconds = time.perf_counter() - started
    print(f"{args.waves} waves × {args.sessions} sessions, {args.values} λ each, in {seconds:.0f} s")
    print(f"cache: {controller.manager.stats()}")
    print("| moment | RSS (MiB) | note |\n|---|---|---|")
    for moment, rss, note in rows:
        print(f"| {moment} | {rss / 2**20:.0f} | {note} |")


if __name__ == "__main__":
    main()
