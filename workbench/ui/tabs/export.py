"""Export: the live composition as a zip (PEFT adapter, own format, or composition folder)."""

from __future__ import annotations

import gradio as gr

from workbench.ui.controller import Controller
from workbench.ui.errors import KEEP, guarded, session_of


def build(controller: Controller) -> None:
    gr.Markdown("One LoRA or (IA)³ exports as a PEFT adapter; RED and sparse in their own format; mixed types "
                "as a composition folder that reloads to the same composition.")  # fmt: skip
    build_zip = gr.Button("Build zip of the current composition")
    archive = gr.File(label="download")
    with gr.Accordion("Push to the Hugging Face Hub (online only)", open=False):
        repo = gr.Textbox(label="repository id", placeholder="you/my-composition")
        token = gr.Textbox(label="token", type="password")
        push = gr.Button("Push")
        status = gr.Markdown()

    @guarded
    def on_zip(request: gr.Request):
        return str(controller.export(session_of(request)))

    @guarded
    def on_push(repo_id: str, secret: str, request: gr.Request):
        return controller.push_to_hub(session_of(request), repo_id, secret)

    build_zip.click(on_zip, None, [archive], **KEEP)
    push.click(on_push, [repo, token], [status], **KEEP)
