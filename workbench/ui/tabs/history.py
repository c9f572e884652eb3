"""History: every composition activated in this session; selecting a row restores it."""

from __future__ import annotations

import gradio as gr

from workbench.errors import WorkbenchError
from workbench.ui.controller import Controller
from workbench.ui.errors import KEEP, MODEL_CALL, guarded, session_of


def build(controller: Controller):
    """Returns the restore event (the app redraws Compose after it) and the table refresh
    to chain after that redraw, which adds the restored composition's own row."""
    refresh = gr.Button("Refresh", elem_id="history-refresh")
    table = gr.Dataframe(label="activated compositions (select a row to restore it)", interactive=False,
                         elem_id="history-table")  # fmt: skip
    restored = gr.Markdown(elem_id="history-restored")

    @guarded
    def on_refresh(request: gr.Request):
        return controller.history(session_of(request))

    @guarded
    def on_select(event: gr.SelectData, request: gr.Request):
        index = event.index[0] if isinstance(event.index, (list, tuple)) and event.index else event.index
        if not isinstance(index, int):
            raise WorkbenchError("select a row of the table to restore its composition")
        entry = controller.restore(session_of(request), index)
        values = ", ".join(f"{k}={v:g}" for k, v in sorted(entry.values.items()))
        note = f"Restored `{entry.expression or '(base)'}` ({values}; {entry.mode}) on `{entry.base}`: {entry.readout}"
        return note

    refresh.click(on_refresh, None, [table], **KEEP)
    return table.select(on_select, None, [restored], **MODEL_CALL), table, on_refresh
