"""Models: pick a base, add adapters from the zoo, a folder, or an upload."""

from __future__ import annotations

import gradio as gr

from workbench.ui.controller import UPLOAD_SUFFIXES, Controller
from workbench.ui.errors import guarded, session_of
from workbench.zoo.bases import ZOO_BASES
from workbench.zoo.registry import zoo_adapters


def build(controller: Controller) -> gr.Dataframe:
    gr.Markdown("Load a base model (a zoo name, a local folder, or a hub id when online), then add modules.")
    with gr.Row():
        base = gr.Dropdown(list(ZOO_BASES), value="smollm2-135m-instruct", allow_custom_value=True,
                           label="base model", scale=3)  # fmt: skip
        load = gr.Button("Load base", scale=1)
    with gr.Row():
        name = gr.Textbox(label="module name", placeholder="e.g. toxic", scale=1)
        source = gr.Dropdown(zoo_adapters(), allow_custom_value=True, label="zoo adapter or folder", scale=3)
        add = gr.Button("Add module", scale=1)
    with gr.Row():
        upload_name = gr.Textbox(label="uploaded module name", scale=1)
        files = gr.File(label=f"upload ({', '.join(UPLOAD_SUFFIXES)}, 200 MB at most)", file_count="multiple",
                        file_types=list(UPLOAD_SUFFIXES), scale=3)  # fmt: skip
        upload = gr.Button("Add upload", scale=1)
    table = gr.Dataframe(label="loaded modules", interactive=False, elem_id="modules-table")

    @guarded
    def on_load(base_name: str, request: gr.Request, progress: gr.Progress = gr.Progress()):  # noqa: B008
        progress(0, desc=f"loading {base_name}")
        return controller.load_base(session_of(request), base_name)

    @guarded
    def on_add(module_name: str, module_source: str, request: gr.Request):
        return controller.add_adapter(session_of(request), module_name, module_source or "")

    @guarded
    def on_upload(module_name: str, paths: list[str] | None, request: gr.Request):
        return controller.add_upload(session_of(request), module_name, paths or [])

    load.click(on_load, [base], [table], concurrency_id="model-calls")
    add.click(on_add, [name, source], [table])
    upload.click(on_upload, [upload_name, files], [table])
    return table
