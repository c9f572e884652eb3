"""The Compose tab as a reviewer meets it: the preset's guide, the curve under the slider
with its marker, the readout with intervals, λ chosen on validation, and a phone's width."""

import re

from tests.e2e.pages import BROWSER, SHOTS, choose_preset, set_slider, textbox, wait_for_value

pytestmark = BROWSER

# the plotted traces of the live curve, as plotly.js holds them
# plotly.js's decoded traces (`data` may hold numpy arrays still base64-encoded)
CURVE_TRACES = (
    "() => { const p = document.querySelector('#live-curve .js-plotly-plot');"
    " return p ? p._fullData.map(t => ({name: t.name, mode: t.mode})) : []; }"
)
MEASURED_POINTS = (
    "n => { const p = document.querySelector('#live-curve .js-plotly-plot');"
    " return p && p._fullData.some(t => t.name === 'mean toxicity' && t.x.length >= n); }"
)
MARKER_AT = (
    "x => { const p = document.querySelector('#live-curve .js-plotly-plot');"
    " return p && p._fullData.some(t => t.marker && t.marker.symbol === 'diamond' && t.x[0] === x); }"
)


def test_the_curve_fills_under_the_slider_and_its_marker_follows(page) -> None:
    readout = textbox(page, "readout")
    first = wait_for_value(readout, lambda v: v.startswith("toxicity"))
    # the value at λ with its interval and n, then the base and the module alone
    assert re.match(r"toxicity \d\.\d+ ± \d\.\d+ \(n=8\) · base \d\.\d+ · toxic \d\.\d+\nperplexity ", first), first
    page.wait_for_function(MEASURED_POINTS, arg=5, timeout=240_000)  # the coarse grid, filled in the background
    page.wait_for_function(MARKER_AT, arg=0.2)
    names = {trace.get("name") for trace in page.evaluate(CURVE_TRACES)}
    assert {"mean toxicity", "perplexity"} <= names
    set_slider(page, 0, 0.5)  # a point of the coarse grid: measured already
    page.wait_for_function(MARKER_AT, arg=0.5, timeout=30_000)
    page.wait_for_function("([el, old]) => el.value !== old", arg=[readout.element_handle(), first])
    page.wait_for_function(MEASURED_POINTS, arg=11, timeout=300_000)  # then the rest of the grid
    page.screenshot(path=str(SHOTS / "compose.png"), full_page=True)


def test_the_first_screen_explains_the_preset_and_the_grammar(page) -> None:
    guide = page.locator("#preset-guide")
    assert "Table 4" in guide.inner_text() and "within 5%" in guide.inner_text()
    page.get_by_text("How to write an expression, and what λ does").click()
    help_box = page.locator("#grammar-help")
    help_box.get_by_text("from −2 to 2").first.wait_for()  # an accordion draws its content once opened
    help_text = help_box.inner_text()
    assert "lam*sentiment_s0 + (1-lam)*sentiment_s1" in help_text and "from −2 to 2" in help_text
    choose_preset(page, "multi-task-lora")
    page.wait_for_function("el => el.innerText.includes('Table 3')", arg=guide.element_handle())
    expression = textbox(page, "expression")
    page.wait_for_function("el => el.value === 'lam*sentiment + (1-lam)*topic'", arg=expression.element_handle())
    readout = textbox(page, "readout")
    page.wait_for_function("el => el.value.includes('topic-validation')", arg=readout.element_handle())
    assert " · sentiment " in readout.input_value() and " · topic " in readout.input_value()


def test_choosing_lambda_on_validation_moves_the_slider_and_reports_test(page) -> None:
    wait_for_value(textbox(page, "readout"), lambda v: v.startswith("toxicity"))
    page.locator("#choose-lambda").click()
    chosen = page.locator("#chosen-lambda")
    page.wait_for_function("el => el.innerText.includes('chosen on validation')", arg=chosen.element_handle(),
                           timeout=300_000)  # fmt: skip
    text = chosen.inner_text()
    assert "Test, never used to choose" in text and "lowest toxicity with PPL" in text, text
    value = float(re.search(r"lam = ([-0-9.]+)", text).group(1))
    number = page.locator("#slider-0 input[data-testid='number-input']")
    page.wait_for_function("([el, v]) => Math.abs(parseFloat(el.value) - v) < 1e-9", arg=[number.element_handle(),
                           value])  # fmt: skip
    page.wait_for_function(MARKER_AT, arg=value)


def test_on_a_phone_every_tab_stays_reachable(page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    shown = {"Models": "#modules-table", "Sweep": "#run-sweep", "Toxicity": "#run-toxicity", "Chat": "#chat-message",
             "Export": "#export-build", "History": "#history-table", "Compose": "#expression"}  # fmt: skip
    folded = 0
    for name, element in shown.items():
        tab = page.get_by_role("tab", name=name)
        if tab.count() and tab.first.is_visible():
            tab.first.click()
        else:  # Gradio folds the tabs that do not fit into a "More tabs" menu
            folded += 1
            page.locator("button[aria-label='More tabs']").click()
            page.locator(".overflow-dropdown button", has_text=name).click()
        page.locator(element).first.wait_for(state="visible", timeout=10_000)
    assert folded > 0  # the narrow screen did fold some: the menu was exercised
    page.locator("#live-curve").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "compose-phone.png"))
