"""Sweep: a grid per parameter, tasks, n, Run and Stop; the plot and table grow live."""

from __future__ import annotations

import gradio as gr

from workbench.errors import WorkbenchError
from workbench.ui.controller import LIVE_PPL_CHARACTERS, Controller
from workbench.ui.errors import LONG_RUN, guarded, session_of


def build(controller: Controller, expression: gr.Textbox, names: gr.State):
    gr.Markdown("Grids are START:STOP:STEP (or a list, 0,0.5,1). One parameter draws curves, two a heatmap.")
    with gr.Row():
        grid_a = gr.Textbox(value="0:1:0.25", label="grid for the first parameter", elem_id="grid-a")
        grid_b = gr.Textbox(value="0:1:0.5", label="grid for the second parameter (if any)")
        tasks = gr.CheckboxGroup(["austen-perplexity", "toxicity"], value=["austen-perplexity"], label="tasks",
                                 elem_id="sweep-tasks")  # fmt: skip
    with gr.Row():  # one size per measure, each named for what it sets
        n = gr.Number(value=200, precision=0, label="examples per classification task", elem_id="sweep-n")
        samples = gr.Number(value=20, precision=0, label="toxicity samples per point", elem_id="sweep-samples")
        characters = gr.Number(value=LIVE_PPL_CHARACTERS, precision=0, elem_id="sweep-ppl-characters",
                               label="perplexity: characters of the Austen text")  # fmt: skip
    with gr.Row():
        run = gr.Button("Run sweep", variant="primary", elem_id="run-sweep")
        stop = gr.Button("Stop", elem_id="stop-sweep")
        progress = gr.Textbox(label="progress", interactive=False, elem_id="sweep-progress")
    plot = gr.Plot(label="sweep", elem_id="sweep-plot")
    table = gr.Dataframe(label="results", interactive=False, elem_id="sweep-table")
    download = gr.File(label="results.csv")

    @guarded
    def on_run(text: str, params: list[str], a: str, b: str, chosen: list[str], count: float, sampled: float,
               length: float, request: gr.Request):  # fmt: skip
        grids = dict(zip(params, [a, b], strict=False))
        frame = None
        sizes = {"n": whole(count, "examples per classification task"), "samples": whole(sampled, "toxicity samples"),
                 "ppl_characters": whole(length, "perplexity characters")}  # fmt: skip
        for figure, frame, done in controller.sweep(session_of(request), text, grids, chosen, **sizes):
            yield figure, frame, done, None
        if frame is not None:
            path = controller.sweep_table(session_of(request), frame)
            yield gr.update(), gr.update(), f"done: {len(frame)} rows", str(path)

    def on_stop(request: gr.Request) -> None:
        """A toast, not the progress box: the sweep's own last message must not be overwritten."""
        controller.stop(session_of(request))
        gr.Info("Stopping after this point.")

    run.click(on_run, [expression, names, grid_a, grid_b, tasks, n, samples, characters],
              [plot, table, progress, download],
              **LONG_RUN)  # fmt: skip
    stop.click(on_stop, None, None, queue=False)
    return tasks


def whole(value: float | None, what: str) -> int:
    """A number box's value as a count (the box sends a float, or None when cleared)."""
    if value is None or value != value or int(value) != value:
        raise WorkbenchError(f"{what} must be a whole number, got {value!r}")
    return int(value)
