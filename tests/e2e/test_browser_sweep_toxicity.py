"""Sweep and Toxicity in the real app (the default preset on the zoo's SmolLM2), in headless
Chromium: grid boxes named for the parameters, progress with an ETA, Stop keeping what was
measured, the CSV and run.json downloads, and a small toxicity run with both plots.

Only these tabs' own elements are relied on, besides the expression box."""

import json
import re

import pandas as pd
import pytest

from tests.e2e.pages import BROWSER, SHOTS, textbox

pytestmark = BROWSER


def on_the_default(page) -> None:
    if "unlearning" not in page.locator("#status").inner_text():
        pytest.skip("the zoo's toxic module is not built")


def open_sweep(page) -> None:
    """The Sweep tab, once Compose has drawn the preset (its grid box is named for λ)."""
    on_the_default(page)
    page.get_by_role("tab", name="Sweep").click()
    page.wait_for_function("el => el.innerText.includes('grid for lam')", arg=page.locator("#grid-a").element_handle())


def label_of(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id}").inner_text().strip().splitlines()[0]


def wait_for_progress(page, elem_id: str, pattern: str, timeout_ms: int = 300_000) -> str:
    box = textbox(page, elem_id)
    page.wait_for_function("([el, p]) => new RegExp(p).test(el.value)", arg=[box.element_handle(), pattern],
                           timeout=timeout_ms)  # fmt: skip
    return box.input_value()


def file_link(page, suffix: str):
    """The download link on the row of the sweep's file ending in `suffix`."""
    return page.locator("#sweep-download tr", has_text=suffix).locator("a").first


def download(page, link, folder):
    with page.expect_download() as info:
        link.click()
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path


def test_grid_boxes_are_named_for_the_parameters(page) -> None:
    open_sweep(page)
    assert not page.locator("#grid-b").is_visible()  # one parameter: one grid box
    page.get_by_role("tab", name="Compose").click()
    expression = textbox(page, "expression")
    expression.fill("lam*toxic - mu*toxic")
    expression.press("Enter")
    page.get_by_role("tab", name="Sweep").click()
    page.locator("#grid-b").wait_for(state="visible", timeout=60_000)
    assert label_of(page, "grid-a") == "grid for lam" and label_of(page, "grid-b") == "grid for mu"


def test_a_short_sweep_shows_an_eta_then_done_and_offers_the_csv_and_run_json(page, tmp_path) -> None:
    open_sweep(page)
    textbox(page, "grid-a").fill("0,1")
    page.locator("#run-sweep").click()
    eta = wait_for_progress(page, "sweep-progress", r"^[1-3]/4 points · about \d+ (s|min) left$")
    assert re.match(r"^[1-3]/4 points · about \d+ (s|min) left$", eta)
    done = wait_for_progress(page, "sweep-progress", "^done: 4/4 points in ")
    plot = page.locator("#sweep-plot")
    # the y axis says which way is better, and what part of the text was measured
    assert "perplexity:austen-perplexity[:2000] ↓ (lower is better)" in plot.inner_text()
    assert "base" in plot.inner_text() and "toxic" in plot.inner_text()  # the references, in the legend
    table = page.locator("#sweep-table").inner_text()
    assert "reference" in table and "point" in table and "perplexity" in table
    csv_link, json_link = file_link(page, ".csv"), file_link(page, ".json")
    csv_link.wait_for(timeout=60_000)
    page.screenshot(path=str(SHOTS / "sweep.png"), full_page=True)
    csv_path = download(page, csv_link, tmp_path)
    assert csv_path.name == "sweep-minus-lam-toxic__lam=0-1.csv"  # says what was swept
    frame = pd.read_csv(csv_path, float_precision="round_trip")
    ppl = frame["perplexity:austen-perplexity[:2000]"]  # the Sweep tab's default part of the text
    assert len(frame) == 4 and ppl.notna().all()
    digits = [len(repr(v).replace(".", "").lstrip("0")) for v in ppl]
    assert max(digits) > 4  # full precision, not the screen's 4 significant digits
    json_path = download(page, json_link, tmp_path)
    assert json_path.name == "sweep-minus-lam-toxic__lam=0-1.run.json"
    facts = json.loads(json_path.read_text())
    assert facts["expression"] == "-lam*toxic" and facts["modules"]["toxic"]["fingerprint"]
    assert facts["complete"] and set(facts["versions"]) >= {"torch", "transformers", "peft", "gradio", "workbench"}
    assert done.startswith("done: 4/4 points")


def test_stop_says_where_it_stopped_and_keeps_the_points(page, tmp_path) -> None:
    open_sweep(page)
    textbox(page, "grid-a").fill("0:1:0.05")
    page.locator("#run-sweep").click()
    wait_for_progress(page, "sweep-progress", r"^([3-9]|1[0-9])/23 points")
    page.locator("#stop-sweep").click()
    stopped = wait_for_progress(page, "sweep-progress", r"^stopped at \d+/23 points$")
    kept = int(re.search(r"stopped at (\d+)/23", stopped).group(1))
    assert 3 <= kept < 23
    table = page.locator("#sweep-table")  # the rows measured stay on screen: the base, toxic, then the points
    page.wait_for_function("([el, n]) => (el.innerText.match(/\\bpoint\\b/g) || []).length === n",
                           arg=[table.element_handle(), kept - 2])  # fmt: skip
    assert table.inner_text().count("reference") == 2
    csv_link = file_link(page, ".csv")
    csv_link.wait_for(timeout=60_000)
    assert len(pd.read_csv(download(page, csv_link, tmp_path))) == kept
    facts = json.loads(download(page, file_link(page, ".json"), tmp_path).read_text())
    assert not facts["complete"] and facts["rows"] == kept


def test_a_small_toxicity_run_shows_progress_and_both_plots(page) -> None:
    on_the_default(page)
    page.get_by_role("tab", name="Toxicity").click()
    page.locator("#toxicity-note").get_by_text("unlearning-lora").first.wait_for()  # where a language model is
    textbox(page, "toxicity-samples").fill("2")
    textbox(page, "toxicity-lambdas").fill("1")
    page.locator("#run-toxicity").click()
    page.get_by_text(re.compile(r"sampled · [12]/3 settings · about \d+ (s|min) left")).first.wait_for(timeout=300_000)
    done = wait_for_progress(page, "toxicity-progress", r"^done: 3/3 settings in ")
    assert done.endswith("2 samples each")
    for plot in ("#toxicity-boxes", "#toxicity-curve"):  # the plots draw a moment after the progress line
        page.locator(f"{plot} .js-plotly-plot").first.wait_for(timeout=30_000)
    curve = page.locator("#toxicity-curve").inner_text()
    assert "+toxic toxicity" in curve and "base perplexity" in curve
    headers = [h.strip() for h in page.locator("#toxicity-table thead th").all_inner_texts() if h.strip()]
    assert headers[:2] == ["setting", "score"], headers
    page.screenshot(path=str(SHOTS / "toxicity.png"), full_page=True)
