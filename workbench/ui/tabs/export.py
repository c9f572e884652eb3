"""Export: the live composition as a zip (PEFT adapter, own format, or composition folder),
with a model card and composition.json. A preview says what the zip will hold before the
click; pushing to the Hub is offered only where the hub is reachable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from workbench.ui.controller import Controller, hub_offline
from workbench.ui.errors import KEEP, MODEL_CALL, guarded, session_of


def build(controller: Controller, tab: gr.Tab | None = None, follow: Sequence[Any] = ()) -> Callable[..., Any]:
    """Returns the preview's refresh handler (no inputs, the preview as output) for the app
    to chain after any event that changes the composition. With `tab` (the Export tab), the
    preview is refreshed when the tab is selected; with `follow` (components such as
    Compose's outputs), whenever one of them changes."""
    gr.Markdown("One LoRA or (IA)³ exports as a PEFT adapter; RED and sparse in their own format; mixed types "
                "as a composition folder that reloads to the same composition. Every zip holds a model card "
                "(README.md) and composition.json.")  # fmt: skip
    preview = gr.Markdown("Open a composition on the Compose tab to see what the zip will hold.",
                          elem_id="export-preview")  # fmt: skip
    build_zip = gr.Button("Build zip of the current composition", elem_id="export-build")
    archive = gr.File(label="download", elem_id="export-file")
    with gr.Accordion("Push to the Hugging Face Hub", open=False, visible=not hub_offline(), elem_id="export-push"):
        repo = gr.Textbox(label="repository id", placeholder="you/my-composition")
        token = gr.Textbox(label="token", type="password")
        push = gr.Button("Push")
        status = gr.Markdown()

    @guarded
    def on_preview(request: gr.Request):
        return controller.export_preview(session_of(request))

    @guarded
    def on_zip(request: gr.Request):
        return str(controller.export(session_of(request)))

    @guarded
    def on_push(repo_id: str, secret: str, request: gr.Request):
        return controller.push_to_hub(session_of(request), repo_id, secret)

    build_zip.click(on_preview, None, [preview], **KEEP).then(on_zip, None, [archive], **MODEL_CALL)
    push.click(on_push, [repo, token], [status], **KEEP)
    triggers = [tab.select] if tab is not None else []
    # a plot redraws while a curve fills in: no new composition, nothing to refresh
    triggers += [component.change for component in follow if not isinstance(component, gr.Plot)]
    if triggers:
        gr.on(triggers, on_preview, None, [preview], trigger_mode="always_last", **KEEP)
    return on_preview
