"""Chat: stream replies from the composed model, optionally beside the base model's."""

from __future__ import annotations

import gradio as gr

from workbench.ui.controller import Controller
from workbench.ui.errors import CHAT, guarded, session_of


def build(controller: Controller) -> None:
    talking_to = gr.Markdown(elem_id="talking-to")
    with gr.Row():
        composed = gr.Chatbot(label="composed model", height=360, elem_id="chat-composed")
        base = gr.Chatbot(label="base model", height=360, visible=False, elem_id="chat-base")
    with gr.Row():
        message = gr.Textbox(label="message", placeholder="Say hello", scale=4, elem_id="chat-message")
        show_base = gr.Checkbox(label="show the base model's answer", value=False, scale=1)
        send = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")

    @guarded
    def describe(request: gr.Request) -> str:
        state = controller.manager.state(session_of(request))
        values = ", ".join(f"{k}={v:g}" for k, v in sorted(state.values.items()))
        what = f"`{state.expression}` ({values}; {state.mode})" if state.expression else "the base model"
        return f"Talking to **{what}** on `{state.base}`. Each reply shows its toxicity ({controller.scorer.name})."

    @guarded
    def on_send(text: str, history: list, base_history: list, with_base: bool, request: gr.Request):
        session = session_of(request)
        history = [*history, {"role": "user", "content": text}, {"role": "assistant", "content": ""}]
        reply = ""
        for reply in controller.chat(session, text):
            history[-1]["content"] = reply
            yield history, base_history, ""
        history[-1]["content"] = f"{reply}\n\n*toxicity {controller.score(reply):.3f}*"
        if with_base:
            base_history = [*base_history, {"role": "user", "content": text}, {"role": "assistant", "content": ""}]
            answer = ""
            for answer in controller.chat(session, text, use_base=True):
                base_history[-1]["content"] = answer
                yield history, base_history, ""
            base_history[-1]["content"] = f"{answer}\n\n*toxicity {controller.score(answer):.3f}*"
        yield history, base_history, ""

    for trigger in (send.click, message.submit):
        trigger(describe, None, [talking_to]).then(
            on_send, [message, composed, base, show_base], [composed, base, message], **CHAT
        )
    show_base.change(lambda shown: gr.update(visible=shown), [show_base], [base])
    return talking_to, describe
