"""The Compose tab's two latency targets, measured through the browser, and the naive PEFT
loop for the same curve in the same run.

    .venv/bin/python bench/ui_latency.py [--releases 20]

Starts the app as `make run` does, opens it in headless Chromium, then:
1. selects the distribution-generalization-lora preset (MiniLM) and times from the click
   to the live curve's coarse grid drawn complete (5 points, with the base and both
   modules as reference lines), then waits for the whole 11-point grid;
2. times slider releases to λ values on that grid (measured already): from the number box
   losing focus to the marker standing at the new λ (the readout comes in the same update);
3. the same releases on the default unlearning preset (SmolLM2), once its curve is filled;
4. the naive way for the coarse curve in the same run: per λ, PEFT's `add_weighted_adapter`
   on a deep copy, merge, and the same 100 predictions (bench/preset_sweep.py), for the
   5 coarse points and the 2 modules alone (the base's line needs no merge).
Prints markdown tables. Targets: a cached release under 300 ms; the first coarse curve
under 20 s.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).parent))
from preset_sweep import naive_loop  # noqa: E402

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
POINTS = (
    "([name, n]) => { const p = document.querySelector('#live-curve .js-plotly-plot');"
    " return !!p && p._fullData.some(t => t.name === name && t.x && t.x.length >= n); }"
)
MARKER_AT = (
    "x => { const p = document.querySelector('#live-curve .js-plotly-plot');"
    " return !!p && p._fullData.some(t => t.marker && t.marker.symbol === 'diamond' && t.x[0] === x); }"
)


def releases(page, values: list[float]) -> list[float]:
    """Seconds from each release to the marker standing at the new λ. The readout arrives in
    the same update as the marker (two λ may read out the same text, so it is not waited on)."""
    number = page.locator("#slider-0 input[data-testid='number-input']")
    took = []
    for value in values:
        number.fill(f"{value:g}")
        start = time.perf_counter()
        number.press("Tab")
        page.wait_for_function(MARKER_AT, arg=value)
        took.append(time.perf_counter() - start)
    return took


def row(label: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"| {label} | {statistics.median(seconds) * 1e3:.0f} ms | {p95 * 1e3:.0f} ms | {max(seconds) * 1e3:.0f} ms |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=20)
    args = parser.parse_args()
    import torch

    from workbench.catalog.presets import PRESETS
    from workbench.catalog.registry import DATA, zoo_adapter_path
    from workbench.eval import load_csv_task
    from workbench.ui.app import LAUNCH_OPTIONS, build_app
    from workbench.ui.controller import LIVE_EXAMPLES

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = build_app().queue()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **LAUNCH_OPTIONS)
    grid = [round(i / 10, 1) for i in range(11)]
    on_grid = [grid[(3 * i + 1) % 11] for i in range(args.releases)]  # a different λ each time
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(300_000)
        page.goto(f"http://127.0.0.1:{port}")
        page.get_by_text("Loaded preset").wait_for()
        page.wait_for_function(POINTS, arg=["mean toxicity", 11])  # the default preset's curve, filled
        unlearning = releases(page, on_grid)

        page.locator("#preset input").first.fill("distribution-generalization-lora")  # filters the menu
        start = time.perf_counter()
        page.get_by_role("option", name="distribution-generalization-lora", exact=True).click()
        page.wait_for_function(POINTS, arg=["sentiment-validation", 5])
        coarse = time.perf_counter() - start
        page.wait_for_function(POINTS, arg=["sentiment-validation", 11])
        whole = time.perf_counter() - start
        generalization = releases(page, on_grid)
        browser.close()
    app.close()

    preset = PRESETS["distribution-generalization-lora"]
    task = load_csv_task(DATA / f"{preset.tasks[0]}.csv").subset(LIVE_EXAMPLES, 0)
    paths = {name: zoo_adapter_path(zoo) for name, zoo in preset.adapters.items()}
    naive = naive_loop(preset.base, paths, (0.0, 0.2, 0.5, 0.8, 1.0, 0.0, 1.0), task)

    print(f"Through Chromium on this machine ({torch.get_num_threads()} threads), {args.releases} releases each")
    print("\n| slider release to the marker and readout, λ already measured | median | p95 | max |")
    print("|---|---|---|---|")
    print(row("distribution-generalization-lora (MiniLM)", generalization))
    print(row("unlearning-lora (SmolLM2, the default)", unlearning))
    print("\n| distribution-generalization-lora, from the preset click | seconds |\n|---|---|")
    print(f"| coarse curve complete (5 points, with the base and both modules alone) | {coarse:.1f} |")
    print(f"| whole grid (11 points) | {whole:.1f} |")
    shown = f"{naive:.1f}" if isinstance(naive, float) else naive
    print(f"| naive PEFT loop, same 5 points and the 2 modules alone, no UI | {shown} |")
    if isinstance(naive, float):
        print(f"\nThe coarse curve through the app takes {coarse / naive:.2f}× the naive loop's time.")


if __name__ == "__main__":
    main()
