"""Slider release to new readout on screen, measured through the browser.

    .venv/bin/python bench/ui_latency.py [--releases 20]

Starts the app on its default (SmolLM2-135M-Instruct with the unlearning preset), opens
it in headless Chromium, and times from the slider's release (the number box losing
focus) to the readout text changing: warm (alternating between two λ already composed,
so every recompose is a cache hit) and cold (a new λ each time). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

from playwright.sync_api import sync_playwright

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=20)
    args = parser.parse_args()
    from workbench.ui.app import build_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = build_app().queue()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        page = browser.new_page()
        page.set_default_timeout(120_000)
        page.goto(f"http://127.0.0.1:{port}")
        page.get_by_text("Loaded preset").wait_for()
        readout = page.locator("#readout textarea").first
        page.wait_for_function("el => el.value.startsWith('next token')", arg=readout.element_handle())
        number = page.locator("#slider-0 input[data-testid='number-input']")

        def release(value: float) -> float:
            before = readout.input_value()
            number.fill(f"{value:g}")
            start = time.perf_counter()
            number.press("Tab")
            page.wait_for_function("([el, old]) => el.value !== old", arg=[readout.element_handle(), before])
            return time.perf_counter() - start

        cold = [release(0.5 + 0.013 * (i + 1)) for i in range(args.releases)]
        release(0.2)
        release(0.9)
        warm = [release(0.2 if i % 2 == 0 else 0.9) for i in range(args.releases)]
        browser.close()
    app.close()
    print(f"SmolLM2-135M-Instruct, -lam*toxic (the default), {args.releases} releases each, through Chromium")
    print("| measure | median | max |\n|---|---|---|")
    print(f"| warm (cached λ) | {statistics.median(warm) * 1e3:.0f} ms | {max(warm) * 1e3:.0f} ms |")
    print(f"| cold (new λ) | {statistics.median(cold) * 1e3:.0f} ms | {max(cold) * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
