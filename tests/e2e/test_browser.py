"""The real app in headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

It starts the app as `make run` does (the default preset on the zoo's SmolLM2), then
clicks through the flows a reviewer would try.
"""

import re

import pytest

from tests.e2e.pages import BROWSER, SHOTS, choose_preset, on_top, set_slider, textbox, wait_for_value

pytestmark = BROWSER


def test_opens_with_the_default_loaded(page) -> None:
    status = page.locator("#status").inner_text()
    page.get_by_role("tab", name="Models").click()
    table = page.locator("#modules-table")
    page.wait_for_function("el => el.innerText.includes('lora')", arg=table.element_handle())
    assert "toxic" in table.inner_text()
    page.get_by_role("tab", name="Compose").click()
    assert "unlearning-lora" in status or "base model only" in status
    if "unlearning-lora" in status:  # the menus show what the session is on
        assert page.locator("#preset input").first.input_value() == "unlearning-lora"
    readout = textbox(page, "readout")
    wait_for_value(readout, lambda v: v.startswith("toxicity"))


def test_preset_and_slider_change_the_readout(page) -> None:
    if "unlearning" not in page.locator("#status").inner_text():
        pytest.skip("the zoo's toxic module is not built")
    page.get_by_role("tab", name="Compose").click()
    choose_preset(page, "unlearning-lora")
    page.wait_for_function("el => el.value === '-lam*toxic'", arg=textbox(page, "expression").element_handle())
    readout = textbox(page, "readout")
    first = wait_for_value(readout, lambda v: v.startswith("toxicity"))
    for value in (1.5, 1.2):  # a second move if the preset's slider update raced the first one
        set_slider(page, 0, value)
        try:
            page.wait_for_function(
                "([el, old]) => el.value !== old", arg=[readout.element_handle(), first], timeout=30_000
            )
            break
        except Exception:
            continue
    assert readout.input_value() != first
    assert textbox(page, "canonical").input_value() == "-lam*toxic"


def test_bad_expression_shows_an_error_and_the_session_survives(page) -> None:
    readout = textbox(page, "readout")
    before = wait_for_value(readout, lambda v: v.startswith("toxicity"))  # the default's readout (λ = 0.2)
    expression = textbox(page, "expression")
    expression.fill("toxic*toxic")
    expression.press("Enter")
    page.get_by_text(re.compile("cannot multiply two modules")).first.wait_for()
    page.screenshot(path=str(SHOTS / "error.png"))
    assert readout.input_value() == before  # the failed expression changed nothing on screen
    # the failed event keeps what was on screen: no "Error" badge covers the slider or the readout
    for shown in ("#slider-0 input[data-testid='number-input']", "#readout textarea", "#canonical textarea"):
        assert on_top(page, shown), f"{shown} is covered"
    expression.fill("-toxic")  # a valid expression (λ = 1): the session answers with a new readout
    expression.press("Enter")
    page.wait_for_function("([el, old]) => el.value && el.value !== old", arg=[readout.element_handle(), before])
    assert textbox(page, "canonical").input_value() == "-toxic"


def test_short_sweep_fills_plot_and_table(page) -> None:
    page.get_by_role("tab", name="Sweep").click()
    textbox(page, "grid-a").fill("0,1")
    page.locator("#run-sweep").click()
    progress = textbox(page, "sweep-progress")
    page.wait_for_function("el => el.value.startsWith('done')", arg=progress.element_handle(), timeout=300_000)
    assert page.locator("#sweep-plot .js-plotly-plot, #sweep-plot .plotly").count() > 0
    table = page.locator("#sweep-table").inner_text()
    assert "reference" in table and "point" in table and "perplexity" in table


def test_sweep_can_be_cancelled(page) -> None:
    page.get_by_role("tab", name="Sweep").click()
    textbox(page, "grid-a").fill("0:1:0.05")
    page.locator("#run-sweep").click()
    progress = textbox(page, "sweep-progress")
    page.wait_for_function("el => /^[0-9]+\\//.test(el.value)", arg=progress.element_handle())
    page.locator("#stop-sweep").click()
    page.wait_for_function("el => /^stopped at [0-9]+\\/[0-9]+ points/.test(el.value)", arg=progress.element_handle(),
                           timeout=300_000)  # fmt: skip
    rows = int(re.search(r"stopped at (\d+)/23 points", progress.input_value()).group(1))
    assert rows < 2 + 21


def test_chat_streams_a_reply(page) -> None:
    page.get_by_role("tab", name="Chat").click()
    textbox(page, "chat-message").fill("Say hello in five words.")
    page.locator("#chat-send").click()
    page.locator("#chat-composed").get_by_text(re.compile(r"toxicity \d\.\d{3}")).first.wait_for(timeout=180_000)
    assert "Talking to" in page.locator("#talking-to").inner_text()


def test_minilm_preset_reads_accuracy_and_sweeps_it(page) -> None:
    from workbench.catalog.registry import ADAPTERS

    if not (ADAPTERS / "minilm-sentiment-s0-lora").is_dir():
        pytest.skip("the zoo's MiniLM modules are not built")
    page.get_by_role("tab", name="Compose").click()
    choose_preset(page, "distribution-generalization-lora")
    readout = textbox(page, "readout")
    page.wait_for_function("el => el.value.includes('sentiment-validation')", arg=readout.element_handle())
    assert "sentiment_s0" in readout.input_value() and "(n=100)" in readout.input_value()
    page.get_by_role("tab", name="Sweep").click()
    textbox(page, "grid-a").fill("0,0.5,1")
    textbox(page, "sweep-n").fill("100")
    page.locator("#run-sweep").click()
    progress = textbox(page, "sweep-progress")
    page.wait_for_function("el => el.value.startsWith('done')", arg=progress.element_handle(), timeout=300_000)
    table = page.locator("#sweep-table").inner_text()
    assert "sentiment-validation" in table and "reference" in table and "point" in table
    page.screenshot(path=str(SHOTS / "sweep-accuracy.png"), full_page=True)


def test_history_restores_a_composition_and_its_slider(page) -> None:
    if "unlearning" not in page.locator("#status").inner_text():
        pytest.skip("the zoo's toxic module is not built")
    readout = textbox(page, "readout")
    first = wait_for_value(readout, lambda v: v.startswith("toxicity"))  # the default, λ = 0.2
    set_slider(page, 0, 1.3)
    page.wait_for_function("([el, old]) => el.value !== old", arg=[readout.element_handle(), first])
    page.get_by_role("tab", name="History").click()
    page.locator("#history-refresh").click()
    table = page.locator("#history-table")
    page.wait_for_function("el => el.innerText.includes('lam=1.3')", arg=table.element_handle())
    table.locator("[data-testid='cell-0-3']").click()  # the entry made on load: λ = 0.2
    page.get_by_text(re.compile(r"Restored -lam\*toxic \(lam=0\.2; exact\)")).wait_for()
    page.get_by_role("tab", name="Compose").click()
    # the Compose tab shows the restored composition's own readout, not the last λ's
    page.wait_for_function("([el, v]) => el.value === v", arg=[readout.element_handle(), first], timeout=60_000)
    number = page.locator("#slider-0 input[data-testid='number-input']")
    page.wait_for_function("el => parseFloat(el.value) === 0.2", arg=number.element_handle(), timeout=30_000)


def test_the_keyboard_moves_the_slider_and_recomposes(page) -> None:
    readout = textbox(page, "readout")
    first = wait_for_value(readout, lambda v: v.startswith("toxicity"))
    page.locator("#slider-0 input[type='range']").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("([el, old]) => el.value !== old", arg=[readout.element_handle(), first], timeout=60_000)


def test_an_empty_expression_is_the_base_model(page) -> None:
    readout = textbox(page, "readout")
    wait_for_value(readout, lambda v: v.startswith("toxicity"))
    expression = textbox(page, "expression")
    expression.fill("")
    expression.press("Enter")
    canonical = textbox(page, "canonical")
    page.wait_for_function("el => el.value === '(base model)'", arg=canonical.element_handle(), timeout=60_000)
    assert not page.locator("#slider-0").is_visible()


def test_switching_preset_keeps_the_mode_on_screen_and_in_history(page) -> None:
    if "unlearning" not in page.locator("#status").inner_text():
        pytest.skip("the zoo's toxic module is not built")
    wait_for_value(textbox(page, "readout"), lambda v: v.startswith("toxicity"))
    page.locator("#mode").get_by_text("paper", exact=True).click()
    choose_preset(page, "unlearning-ia3")
    page.get_by_role("tab", name="History").click()
    table = page.locator("#history-table")
    for _ in range(20):  # the preset's recompose lands a moment after its status line
        page.locator("#history-refresh").click()
        rows = table.inner_text()
        if rows.count("paper") >= 2:
            break
        page.wait_for_timeout(1000)
    assert table.inner_text().count("exact") == 1, table.inner_text()  # only the entry made on load
    assert page.locator("#mode input[value='paper']").is_checked()


def test_a_slider_moved_during_a_sweep_is_what_chat_runs_after_it(page) -> None:
    if "unlearning" not in page.locator("#status").inner_text():
        pytest.skip("the zoo's toxic module is not built")
    readout = textbox(page, "readout")
    first = wait_for_value(readout, lambda v: v.startswith("toxicity"))
    page.get_by_role("tab", name="Sweep").click()
    textbox(page, "grid-a").fill("0:1:0.25")
    page.locator("#run-sweep").click()
    progress = textbox(page, "sweep-progress")
    page.wait_for_function("el => /^[0-9]+\\//.test(el.value)", arg=progress.element_handle())
    page.get_by_role("tab", name="Compose").click()
    set_slider(page, 0, 1.3)  # while the sweep runs
    page.wait_for_function("([el, old]) => el.value !== old", arg=[readout.element_handle(), first], timeout=120_000)
    page.get_by_role("tab", name="Sweep").click()
    page.wait_for_function("el => el.value.startsWith('done')", arg=progress.element_handle(), timeout=300_000)
    page.get_by_role("tab", name="Chat").click()
    textbox(page, "chat-message").fill("Hi")
    page.locator("#chat-send").click()
    page.get_by_text(re.compile(r"Talking to -lam\*toxic \(lam=1\.3; exact\)")).wait_for(timeout=60_000)
