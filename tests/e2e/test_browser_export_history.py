"""Export and History in the real app (the default preset on the zoo's SmolLM2), in
headless Chromium: the preview before the click, the zip's name and contents, no push
offline, and a History that fills by itself with each row's base and preset.

The Compose readout's wording is not relied on here: only that it changes."""

import json
import re
import zipfile

import pytest

from tests.e2e.pages import BROWSER, SHOTS, set_slider, textbox, wait_for_value

pytestmark = BROWSER


def loaded_default(page) -> str:
    """The default preset's first readout (λ = 0.2), once it is on screen."""
    if "unlearning" not in page.locator("#status").inner_text():
        pytest.skip("the zoo's toxic module is not built")
    return wait_for_value(textbox(page, "readout"), bool)


def move_to(page, value: float, before: str) -> None:
    """Move the first slider and wait for the composition's new readout."""
    readout = textbox(page, "readout")
    set_slider(page, 0, value)
    page.wait_for_function("([el, old]) => el.value && el.value !== old", arg=[readout.element_handle(), before],
                           timeout=120_000)  # fmt: skip


def test_export_previews_the_zip_and_downloads_it_named_by_its_values(page, tmp_path) -> None:
    first = loaded_default(page)
    page.get_by_role("tab", name="Export").click()
    preview = page.locator("#export-preview")
    page.wait_for_function("el => el.innerText.includes('lam=0.2.zip')", arg=preview.element_handle())
    shown = preview.inner_text()  # before any click on Build
    for text in ("lora-minus-lam-toxic__lam=0.2.zip", "PEFT LoRA adapter", "-lam*toxic", "exact",
                 "HuggingFaceTB/SmolLM2-135M-Instruct", "zoo:smollm2-toxic-lora", "README.md"):  # fmt: skip
        assert text in shown, text
    assert not page.get_by_text("Push to the Hugging Face Hub").is_visible()  # make run is offline: no push at all
    assert not page.locator("#export-push").is_visible()

    page.get_by_role("tab", name="Compose").click()
    move_to(page, 1.3, first)
    page.get_by_role("tab", name="Export").click()  # the preview follows the composition
    page.wait_for_function("el => el.innerText.includes('lam=1.3.zip')", arg=preview.element_handle())
    page.locator("#export-build").click()
    link = page.locator("#export-file a").first
    link.wait_for(timeout=120_000)
    page.screenshot(path=str(SHOTS / "export.png"), full_page=True)
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "lora-minus-lam-toxic__lam=1.3.zip"
    archive = tmp_path / download.suggested_filename
    download.save_as(archive)
    with zipfile.ZipFile(archive) as zipped:
        assert {"README.md", "composition.json", "adapter_config.json", "adapter_model.safetensors"} <= set(
            zipped.namelist()
        )
        data = json.loads(zipped.read("composition.json"))
        config = json.loads(zipped.read("adapter_config.json"))
        card = zipped.read("README.md").decode()
    assert data["values"] == {"lam": 1.3} and data["mode"] == "exact" and data["expression"] == "-lam*toxic"
    assert data["base"] == config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert config["task_type"] == "CAUSAL_LM"
    assert data["readout"] and data["readout"] in card and data["modules"]["toxic"]["fingerprint"] in card


def test_history_fills_by_itself_once_per_composition_with_base_and_preset(page) -> None:
    first = loaded_default(page)
    move_to(page, 1.3, first)
    page.get_by_role("tab", name="History").click()  # no Refresh click from here on
    table = page.locator("#history-table")
    page.wait_for_function("el => el.innerText.includes('lam=1.3')", arg=table.element_handle())
    text = table.inner_text()
    assert "lam=0.2" in text and "smollm2-135m-instruct" in text and "unlearning-lora" in text
    headers = [h.strip() for h in table.locator("thead th, [role='columnheader']").all_inner_texts()]
    assert any(h.startswith("base") for h in headers) and any(h.startswith("preset") for h in headers), headers
    page.screenshot(path=str(SHOTS / "history.png"), full_page=True)

    page.get_by_role("tab", name="Compose").click()
    page.locator("#compare input").check()  # recomposes what is on screen, and reads the base beside it
    # back to the first row's λ: model calls run in order, so the compare's recompose is done when this one is
    move_to(page, 0.2, textbox(page, "readout").input_value())
    page.get_by_role("tab", name="History").click()
    page.wait_for_timeout(1500)  # a duplicate row would land with the refresh
    rows = table.inner_text()
    assert len(re.findall(r"lam=1\.3", rows)) == 1 and len(re.findall(r"lam=0\.2\b", rows)) == 1, rows
