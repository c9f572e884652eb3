"""Sweep: a grid per parameter, tasks, n, Run and Stop; the plot and table grow live."""

from __future__ import annotations

import gradio as gr

from workbench.ui.controller import Controller
from workbench.ui.errors import guarded, session_of


def build(controller: Controller, expression: gr.Textbox, names: gr.State):
    gr.Markdown("Grids are START:STOP:STEP (or a list, 0,0.5,1). One parameter draws curves, two a heatmap.")
    with gr.Row():
        grid_a = gr.Textbox(value="0:1:0.25", label="grid for the first parameter", elem_id="grid-a")
        grid_b = gr.Textbox(value="0:1:0.5", label="grid for the second parameter (if any)")
        tasks = gr.CheckboxGroup(["austen-perplexity", "toxicity"], value=["austen-perplexity"], label="tasks",
                                 elem_id="sweep-tasks")  # fmt: skip
        n = gr.Number(value=200, precision=0, label="examples per task", elem_id="sweep-n")
    with gr.Row():
        run = gr.Button("Run sweep", variant="primary", elem_id="run-sweep")
        stop = gr.Button("Stop", elem_id="stop-sweep")
        progress = gr.Textbox(label="progress", interactive=False, elem_id="sweep-progress")
    plot = gr.Plot(label="sweep", elem_id="sweep-plot")
    table = gr.Dataframe(label="results", interactive=False, elem_id="sweep-table")
    download = gr.File(label="results.csv")

    @guarded
    def on_run(text: str, params: list[str], a: str, b: str, chosen: list[str], count: float, request: gr.Request):
        grids = dict(zip(params, [a, b], strict=False))
        frame = None
        for figure, frame, done in controller.sweep(session_of(request), text, grids, chosen, int(count or 200)):
            yield figure, frame, done, None
        if frame is not None:
            path = controller.sweep_table(session_of(request), frame)
            yield gr.update(), gr.update(), f"done: {len(frame)} rows", str(path)

    def on_stop(request: gr.Request) -> None:
        """A toast, not the progress box: the sweep's own last message must not be overwritten."""
        controller.stop(session_of(request))
        gr.Info("Stopping after this point.")

    run.click(on_run, [expression, names, grid_a, grid_b, tasks, n], [plot, table, progress, download],
              concurrency_id="long-runs")  # fmt: skip
    stop.click(on_stop, None, None, queue=False)
    return tasks
