"""History: every composition activated in this session; selecting a row restores it."""

from __future__ import annotations

import gradio as gr

from workbench.ui.controller import Controller
from workbench.ui.errors import guarded, session_of


def build(controller: Controller, expression: gr.Textbox):
    refresh = gr.Button("Refresh", elem_id="history-refresh")
    table = gr.Dataframe(label="activated compositions (select a row to restore it)", interactive=False,
                         elem_id="history-table")  # fmt: skip
    restored = gr.Markdown(elem_id="history-restored")

    def on_refresh(request: gr.Request):
        return controller.history(session_of(request))

    @guarded
    def on_select(event: gr.SelectData, request: gr.Request):
        entry = controller.restore(session_of(request), int(event.index[0]))
        values = ", ".join(f"{k}={v:g}" for k, v in sorted(entry.values.items()))
        return entry.expression, f"Restored `{entry.expression}` ({values}): {entry.readout}", on_refresh(request)

    refresh.click(on_refresh, None, [table])
    selected = table.select(on_select, None, [expression, restored, table], concurrency_id="model-calls")
    return selected, on_refresh
