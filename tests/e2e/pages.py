"""What the browser tests do to a page: find a box, wait for its value, move a slider.

Screenshots go to $E2E_SCREENSHOTS (default: a temp dir); the README shows the best of
them from docs/img/.
"""

import os
import socket
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
BROWSER = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
SHOTS = Path(os.environ.get("E2E_SCREENSHOTS", tempfile.mkdtemp(prefix="workbench-shots-")))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def textbox(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def wait_for_value(locator, predicate, timeout_ms: int = 120_000) -> str:
    """Wait until the box holds text (the app's first readout arrives after the page loads)."""
    locator.page.wait_for_function("el => el.value", arg=locator.element_handle(), timeout=timeout_ms)
    value = locator.input_value()
    assert predicate(value), value
    return value


def on_top(page, selector: str) -> bool:
    """Whether the element is what a user sees at its centre (not covered, e.g. by an error badge),
    once scrolled into view as a user would: elementFromPoint sees only the viewport."""
    return page.locator(selector).first.evaluate(
        "el => { el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect();"
        " const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);"
        " return top === el || el.contains(top); }"
    )


def set_slider(page, index: int, value: float) -> None:
    number = page.locator(f"#slider-{index} input[data-testid='number-input']")
    number.fill(str(value))
    number.press("Tab")  # blur: the slider fires `release`


def choose_preset(page, name: str) -> None:
    """Open a preset from the Compose tab's menu (typing filters the menu, so any preset is in reach)."""
    import re

    page.get_by_role("tab", name="Compose").click()
    page.locator("#preset input").first.fill(name)
    page.get_by_role("option", name=name, exact=True).click()
    page.get_by_text(re.compile(f"Loaded preset {re.escape(name)}")).wait_for()
