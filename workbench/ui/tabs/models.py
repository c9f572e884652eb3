"""Models: pick a base, add adapters from the zoo, a folder, or an upload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from workbench.catalog.bases import ZOO_BASES
from workbench.catalog.registry import zoo_adapters
from workbench.ui.controller import UPLOAD_SUFFIXES, Controller
from workbench.ui.errors import KEEP, MODEL_CALL, guarded, session_of


@dataclass
class ModelsView:
    """What other tabs follow: the table, the base menu, and the events that change modules."""

    table: gr.Dataframe
    base: gr.Dropdown
    loaded: Any
    added: list[Any]


def build(controller: Controller) -> ModelsView:
    gr.Markdown("Load a base model (a zoo name, a local folder, or a hub id when online), then add modules.")
    with gr.Row():
        base = gr.Dropdown(list(ZOO_BASES), value="smollm2-135m-instruct", allow_custom_value=True,
                           label="base model", scale=3, elem_id="base-menu")  # fmt: skip
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
    replace = gr.Checkbox(label="replace a loaded module of the same name", value=False, elem_id="replace")
    table = gr.Dataframe(label="loaded modules", interactive=False, elem_id="modules-table")

    @guarded
    def on_load(base_name: str, request: gr.Request, progress: gr.Progress = gr.Progress()):  # noqa: B008
        progress(0, desc=f"loading {base_name}")
        return controller.load_base(session_of(request), base_name)

    @guarded
    def on_add(module_name: str, module_source: str, swap: bool, request: gr.Request):
        return controller.add_adapter(session_of(request), module_name, module_source or "", replace=swap)

    @guarded
    def on_upload(module_name: str, paths: list[str] | None, swap: bool, request: gr.Request):
        return controller.add_upload(session_of(request), module_name, paths or [], replace=swap)

    loaded = load.click(on_load, [base], [table], **MODEL_CALL)
    added = [add.click(on_add, [name, source, replace], [table], **KEEP),
             upload.click(on_upload, [upload_name, files, replace], [table], **KEEP)]  # fmt: skip
    return ModelsView(table, base, loaded, added)
