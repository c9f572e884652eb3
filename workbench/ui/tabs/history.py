"""History: every composition activated in this session, one row each, with its base and
preset; selecting a row restores it. The table fills by itself: when the tab is opened and
after every change the Compose tab shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr

from workbench.errors import WorkbenchError
from workbench.ui.controller import Controller
from workbench.ui.errors import KEEP, MODEL_CALL, guarded, session_of


def build(controller: Controller, tab: gr.Tab | None = None, follow: Sequence[Any] = ()):
    """Returns the restore event (the app redraws Compose after it), the table, and the
    table's refresh to chain after that redraw. With `tab` (the History tab), the table is
    refreshed when the tab is selected; with `follow` (components such as Compose's
    outputs), whenever one of them changes: no Refresh click is needed."""
    refresh = gr.Button("Refresh", elem_id="history-refresh", size="sm")
    table = gr.Dataframe(label="activated compositions (select a row to restore it)", interactive=False,
                         elem_id="history-table", wrap=True)  # fmt: skip
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
        preset = f" (preset {entry.preset})" if entry.preset else ""
        return (f"Restored `{entry.expression or '(base)'}` ({values}; {entry.mode}) on `{entry.base}`{preset}: "
                f"{entry.readout}")  # fmt: skip

    refresh.click(on_refresh, None, [table], **KEEP)
    triggers = [tab.select] if tab is not None else []
    # a plot redraws while a curve fills in: no new composition, nothing to refresh
    triggers += [component.change for component in follow if not isinstance(component, gr.Plot)]
    if triggers:
        gr.on(triggers, on_refresh, None, [table], trigger_mode="always_last", **KEEP)
    return table.select(on_select, None, [restored], **MODEL_CALL), table, on_refresh
