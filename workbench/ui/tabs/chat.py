"""Chat: the composed model's reply and, beside it on request, the base model's, generated at
the same time with the same seed, streamed token by token, with a Stop button; each reply
shows its toxicity, the scorer named."""

from __future__ import annotations

import gradio as gr

from workbench.errors import WorkbenchError
from workbench.eval.sampling import PAPER_PROMPT
from workbench.runtime.generation import MAX_TEMPERATURE, MIN_TEMPERATURE
from workbench.ui.controller import CHAT_MAX_NEW_TOKENS, MAX_CHAT_CHARACTERS, ChatReplies, Controller
from workbench.ui.errors import CHAT, KEEP, guarded, session_of

EXAMPLES = (
    PAPER_PROMPT,  # the paper's toxicity prompt (Zhang et al., 2023, section 4.4)
    "Write an angry rant about your noisy neighbours.",
    "What is the capital of France?",
    "Give me three tips for sleeping well.",
)
MAX_NEW_TOKENS_SHOWN = 128  # what the box starts at; the controller allows up to CHAT_MAX_NEW_TOKENS
WAITING = "…"  # an answer's place before its first token
STOPPED = "*(stopped)*"


def side_label(side: str, seed: object) -> str:
    """'composed model · seed 0': both sides sample with the same seed, so what differs is the weights."""
    return f"{side} model · seed {seed if seed is not None else '?'}"


def finished(reply: str, stopped: bool, toxicity: float, scorer: str) -> str:
    """A reply as it stays on screen: its text, '(stopped)' if the user stopped it, its toxicity."""
    text = f"{reply} {STOPPED}".strip() if stopped else reply
    return f"{text}\n\n*toxicity {toxicity:.3f} · {scorer}*"


def _turn(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def fresh_memory() -> dict[str, list[dict[str, str]]]:
    """Each side's own conversation as the model saw it (no toxicity notes): what the next reply remembers."""
    return {"composed": [], "base": []}


def build(controller: Controller):
    talking_to = gr.Markdown(elem_id="talking-to")
    with gr.Row():
        composed = gr.Chatbot(label=side_label("composed", 0), height=380, elem_id="chat-composed")
        base = gr.Chatbot(label=side_label("base", 0), height=380, visible=False, elem_id="chat-base")
    with gr.Row():
        message = gr.Textbox(label="message", placeholder="Say hello", scale=4, elem_id="chat-message")
        send = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")
        stop = gr.Button("Stop", scale=1, interactive=False, elem_id="chat-stop")
    gr.Examples([[prompt] for prompt in EXAMPLES], inputs=[message], elem_id="chat-examples",
                label="Example prompts: the paper's toxicity prompt, a rant, and two neutral questions")  # fmt: skip
    with gr.Row():
        show_base = gr.Checkbox(label="show the base model's answer (both stream at once)", value=False,
                                elem_id="chat-show-base")  # fmt: skip
        max_new_tokens = gr.Number(MAX_NEW_TOKENS_SHOWN, precision=0, elem_id="chat-max-tokens",
                                   label=f"max new tokens (1 to {CHAT_MAX_NEW_TOKENS})")  # fmt: skip
        temperature = gr.Slider(MIN_TEMPERATURE, MAX_TEMPERATURE, value=1.0, step=0.05, label="temperature",
                                elem_id="chat-temperature")  # fmt: skip
        seed = gr.Number(0, precision=0, label="seed (both sides)", elem_id="chat-seed")
        clear = gr.Button("New conversation", elem_id="chat-new")
    memory = gr.State(fresh_memory())
    running = gr.State(False)  # a reply is streaming: a new description must not turn Send back on

    @guarded
    def describe(request: gr.Request) -> str:
        """One line on what answers: the composition and base, multi-turn or single turn, the
        scorer; or, on a base that cannot chat, why not."""
        session = session_of(request)
        refusal = controller.chat_refusal(session)
        if refusal:
            return f"**Chat is off:** {refusal}."
        state = controller.manager.state(session)
        values = ", ".join(f"{k}={v:g}" for k, v in sorted(state.values.items()))
        what = f"`{state.expression}` ({values}; {state.mode})" if state.expression else "the base model"
        if controller.chat_multi_turn(session):
            turns = (f"Multi-turn: each side remembers its own conversation (its last {MAX_CHAT_CHARACTERS:,} "
                     "characters) through the chat template.")  # fmt: skip
        else:
            turns = "**Single turn**: this tokenizer has no chat template, so each message is answered on its own."
        return (f"Talking to **{what}** on `{state.base}`. {turns} "
                f"Each reply shows its toxicity ({controller.scorer.name}).")  # fmt: skip

    def can_chat(session: str) -> bool:
        try:
            return not controller.chat_refusal(session)
        except WorkbenchError:  # no session yet: Send stays on, and sending says why in one line
            return True

    def ready(request: gr.Request):
        """Send and Stop as they are between replies: Send off on a base that cannot chat."""
        can = can_chat(session_of(request))
        return gr.update(interactive=can), gr.update(interactive=False), gr.update(interactive=True), False

    def busy():
        """While a reply streams: Stop on; Send and the message box (Enter) off, one reply at a time."""
        return gr.update(interactive=False), gr.update(interactive=True), gr.update(interactive=False), True

    def on_described(streaming: bool, request: gr.Request):
        """After a preset, a base or a restore changed the description: Send on or off."""
        return gr.update() if streaming else gr.update(interactive=can_chat(session_of(request)))

    @guarded
    def on_send(text: str, shown: list, base_shown: list, remembered: dict, with_base: bool, tokens: object,
                heat: object, dice: object, request: gr.Request):  # fmt: skip
        session = session_of(request)
        # the input is checked here, before anything shows: a bad value is one line and changes nothing
        replies = controller.chat_replies(session, text, remembered["composed"],
                                          remembered["base"] if with_base else None, max_new_tokens=tokens,
                                          temperature=heat, seed=dice)  # fmt: skip
        shown = [*shown, _turn("user", text), _turn("assistant", WAITING)]
        if with_base:
            base_shown = [*base_shown, _turn("user", text), _turn("assistant", WAITING)]
        yield shown, base_shown, "", remembered
        last = ChatReplies("", "" if with_base else None)
        for last in replies:
            shown[-1] = _turn("assistant", last.composed or WAITING)
            if with_base:
                base_shown[-1] = _turn("assistant", last.base or WAITING)
            yield shown, base_shown, "", remembered
        name = controller.scorer.name
        shown[-1] = _turn("assistant", finished(last.composed, last.stopped, controller.score(last.composed), name))
        remembered = {**remembered, "composed": [*remembered["composed"], _turn("user", text),
                                                 _turn("assistant", last.composed)]}  # fmt: skip
        if with_base:
            answer = last.base or ""
            base_shown[-1] = _turn("assistant", finished(answer, last.stopped, controller.score(answer), name))
            remembered["base"] = [*remembered["base"], _turn("user", text), _turn("assistant", answer)]
        yield shown, base_shown, "", remembered

    def on_stop(request: gr.Request) -> None:
        controller.stop_chat(session_of(request))

    def relabel(dice: object):
        return gr.update(label=side_label("composed", dice)), gr.update(label=side_label("base", dice))

    for trigger in (send.click, message.submit):
        told = trigger(busy, None, [send, stop, message, running], **KEEP).then(describe, None, [talking_to], **KEEP)
        replied = told.success(
            on_send, [message, composed, base, memory, show_base, max_new_tokens, temperature, seed],
            [composed, base, message, memory], **CHAT,
        )  # fmt: skip
        for after in (replied.then, replied.failure, told.failure):  # Gradio 6 runs `then` only after a success
            after(ready, None, [send, stop, message, running], **KEEP)
    stop.click(on_stop, None, None, queue=False)
    talking_to.change(on_described, [running], [send], **KEEP)
    show_base.change(lambda shown: gr.update(visible=shown), [show_base], [base], **KEEP)
    seed.change(relabel, [seed], [composed, base], **KEEP)
    clear.click(lambda: ([], [], fresh_memory()), None, [composed, base, memory], **KEEP)
    composed.clear(lambda remembered: {**remembered, "composed": []}, [memory], [memory], **KEEP)
    base.clear(lambda remembered: {**remembered, "base": []}, [memory], [memory], **KEEP)
    return talking_to, describe
