"""The Chat tab in headless Chromium: the composed model and the base answer at the same
time, Stop stops both, example prompts, bounded settings, and a base that cannot chat.

The app is the one `make run` starts (the unlearning preset on the zoo's SmolLM2)."""

import re

import pytest

from tests.e2e.pages import BROWSER, SHOTS, choose_preset, textbox

pytestmark = BROWSER

LAST_REPLIES = """() => {
    const last = id => {
        const replies = document.querySelectorAll(`#${id} [data-testid="bot"]`);
        return replies.length ? replies[replies.length - 1].innerText.trim() : "";
    };
    return [last("chat-composed"), last("chat-base")];
}"""
# Both replies have text and neither is finished (no toxicity line yet): they stream together.
BOTH_STREAMING = f"""() => {{
    const [composed, base] = ({LAST_REPLIES})();
    const started = text => text && text !== "…" && !text.includes("toxicity");
    return started(composed) && started(base);
}}"""
BOTH_FINISHED = f"""() => ({LAST_REPLIES})().every(text => /toxicity \\d\\.\\d{{3}}/.test(text))"""


def open_chat(page, tokens: int, with_base: bool = True) -> None:
    page.get_by_role("tab", name="Chat").click()
    if with_base:
        page.locator("#chat-show-base input").check()
        page.locator("#chat-base").wait_for()
    textbox(page, "chat-max-tokens").fill(str(tokens))


def replies(page) -> list[str]:
    return page.evaluate(LAST_REPLIES)


def skip_unless_chatting(page) -> None:
    if "unlearning" not in page.locator("#status").inner_text():
        pytest.skip("the zoo's SmolLM2 or its toxic module is not there")


def test_both_replies_stream_together_with_the_base_shown(page) -> None:
    skip_unless_chatting(page)
    open_chat(page, tokens=64)
    page.locator("#chat-examples").get_by_text("Write an angry rant about your noisy neighbours.").click()
    page.wait_for_function("el => el.value.startsWith('Write an angry rant')",
                           arg=textbox(page, "chat-message").element_handle())  # fmt: skip
    page.locator("#chat-send").click()
    page.wait_for_function(BOTH_STREAMING, timeout=120_000)  # both partial at once: not one after the other
    assert page.locator("#chat-stop").is_enabled() and page.locator("#chat-send").is_disabled()
    page.wait_for_function(BOTH_FINISHED, timeout=180_000)
    composed, base = replies(page)
    scorer = re.compile(r"toxicity \d\.\d{3} · alt-profanity-check|toxicity \d\.\d{3} · \S")
    assert scorer.search(composed) and scorer.search(base)  # each reply scored, the scorer named
    assert "composed model · seed 0" in page.locator("#chat-composed").inner_text()
    assert "base model · seed 0" in page.locator("#chat-base").inner_text()
    talking = page.locator("#talking-to").inner_text()
    assert "Talking to" in talking and "Multi-turn" in talking
    page.wait_for_function("() => !document.querySelector('#chat-send').disabled")
    assert page.locator("#chat-stop").is_disabled()
    page.screenshot(path=str(SHOTS / "chat.png"), full_page=True)


def test_stop_stops_both_replies_and_keeps_them(page) -> None:
    skip_unless_chatting(page)
    open_chat(page, tokens=600)
    textbox(page, "chat-message").fill("Write a long story about a dragon and a knight, with many chapters.")
    page.locator("#chat-send").click()
    page.wait_for_function(BOTH_STREAMING, timeout=120_000)
    page.locator("#chat-stop").click()
    page.wait_for_function(f"() => ({LAST_REPLIES})().every(text => text.includes('(stopped)'))", timeout=60_000)
    page.wait_for_function(BOTH_FINISHED, timeout=30_000)
    stopped = replies(page)
    page.wait_for_timeout(2000)
    assert replies(page) == stopped  # nothing more arrives
    for text in stopped:  # the partial reply stays, well short of 600 tokens
        reply = text.split("(stopped)")[0].strip()
        assert reply and reply != "…" and len(reply.split()) < 400, text
    page.wait_for_function("() => !document.querySelector('#chat-send').disabled")
    assert textbox(page, "chat-message").is_editable()


def test_an_example_prompt_fills_the_box(page) -> None:
    page.get_by_role("tab", name="Chat").click()
    examples = page.locator("#chat-examples")
    examples.get_by_text("What is the capital of France?").click()
    page.wait_for_function("el => el.value === 'What is the capital of France?'",
                           arg=textbox(page, "chat-message").element_handle())  # fmt: skip
    examples.get_by_text("I don't care if this is controversial").click()  # the paper's toxicity prompt
    page.wait_for_function("el => el.value.startsWith(\"I don't care\")",
                           arg=textbox(page, "chat-message").element_handle())  # fmt: skip


def test_bad_max_new_tokens_is_one_line_and_keeps_the_message(page) -> None:
    skip_unless_chatting(page)
    open_chat(page, tokens=0, with_base=False)
    textbox(page, "chat-message").fill("Hi")
    page.locator("#chat-send").click()
    page.get_by_text(re.compile(r"max new tokens must be a whole number from 1 to \d+, got 0")).first.wait_for()
    assert textbox(page, "chat-message").input_value() == "Hi"
    page.wait_for_function("() => !document.querySelector('#chat-send').disabled")


def test_an_encoder_preset_turns_chat_off_in_one_line(page) -> None:
    from workbench.catalog.registry import ADAPTERS

    if not (ADAPTERS / "minilm-sentiment-s0-lora").is_dir():
        pytest.skip("the zoo's MiniLM modules are not built")
    choose_preset(page, "distribution-generalization-lora")
    page.get_by_role("tab", name="Chat").click()
    talking = page.locator("#talking-to")
    # settled: while an event is still pending, Gradio shows its progress text inside the same box
    settled = "el => el.innerText.includes('cannot chat') && el.innerText.trim().split('\\n').length === 1"
    page.wait_for_function(settled, arg=talking.element_handle())
    line = talking.inner_text()
    assert "is an encoder: it classifies, it cannot chat; pick an unlearning preset" in line, line
    assert len(line.strip().splitlines()) == 1
    page.wait_for_function("() => document.querySelector('#chat-send').disabled")
    assert " a encoder" not in page.locator("body").inner_text()
    textbox(page, "chat-message").fill("Hello")
    textbox(page, "chat-message").press("Enter")  # Enter still sends: the same line, as an error
    page.get_by_text(re.compile("cannot chat")).nth(1).wait_for()
