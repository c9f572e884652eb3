"""Sweep: a grid per parameter, tasks, n, Run and Stop; the plot and table grow live."""

from __future__ import annotations

import gradio as gr

from workbench.errors import WorkbenchError
from workbench.ui.controller import LIVE_PPL_CHARACTERS, Controller, rounded
from workbench.ui.errors import KEEP, LONG_RUN, guarded, session_of

NO_PARAMETER = "grid (the expression has no parameter to sweep)"


def grid_labels(params: list[str]) -> tuple[dict, dict]:
    """The grid boxes named for the expression's parameters; the second one only for two."""
    first = f"grid for {params[0]}" if params else NO_PARAMETER
    second = f"grid for {params[1]}" if len(params) > 1 else "grid for the second parameter"
    return gr.update(label=first), gr.update(label=second, visible=len(params) == 2)


def build(controller: Controller, expression: gr.Textbox, names: gr.State):
    gr.Markdown("Grids are START:STOP:STEP (or a list, 0,0.5,1). One parameter draws curves, two a heatmap. "
                "The base and each module alone are measured first, as reference lines.")  # fmt: skip
    with gr.Row():
        grid_a = gr.Textbox(value="0:1:0.25", label="grid for the parameter", elem_id="grid-a")
        grid_b = gr.Textbox(value="0:1:0.5", label="grid for the second parameter", visible=False, elem_id="grid-b")
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
    table = gr.Dataframe(label="results (4 significant digits; the CSV keeps every digit)", interactive=False,
                         elem_id="sweep-table")  # fmt: skip
    download = gr.File(label="results: CSV and run.json (base, modules, expression, sizes, seed, versions)",
                       file_count="multiple", interactive=False, elem_id="sweep-download")  # fmt: skip

    @guarded
    def on_run(text: str, a: str, b: str, chosen: list[str], count: float, sampled: float, length: float,
               request: gr.Request):  # fmt: skip
        session = session_of(request)
        params = controller.parameters(session, text)  # the expression's own: Compose may not have drawn it yet
        if len(params) > 2:
            raise WorkbenchError(f"a sweep grids one or two parameters; this expression has {len(params)} "
                                 f"({', '.join(params)}): fix the others to numbers")  # fmt: skip
        grids = dict(zip(params, [a, b], strict=False))
        sizes = {"n": whole(count, "examples per classification task"), "samples": whole(sampled, "toxicity samples"),
                 "ppl_characters": whole(length, "perplexity characters")}  # fmt: skip
        record = controller.sweep_record(session, text, grids, chosen, **sizes)
        yield gr.update(), gr.update(), "starting: the base and each module alone, then the grid", None
        frame = None
        for figure, frame, line in controller.sweep(session, text, grids, chosen, **sizes):
            yield figure, rounded(frame), line, gr.update()
        if frame is not None and not frame.empty:  # stopped or done: what was measured is kept
            files = controller.sweep_table(session, frame, record)
            yield gr.update(), gr.update(), gr.update(), [str(path) for path in files]

    def on_stop(request: gr.Request) -> None:
        """A toast, not the progress box: the sweep's own last message says where it stopped."""
        controller.stop(session_of(request))
        gr.Info("Stopping after this point; the points measured so far stay.")

    names.change(grid_labels, [names], [grid_a, grid_b], **KEEP)
    run.click(on_run, [expression, grid_a, grid_b, tasks, n, samples, characters],
              [plot, table, progress, download],
              **LONG_RUN)  # fmt: skip
    stop.click(on_stop, None, None, queue=False)
    return tasks


def whole(value: float | None, what: str) -> int:
    """A number box's value as a count (the box sends a float, or None when cleared)."""
    if value is None or value != value or int(value) != value:
        raise WorkbenchError(f"{what} must be a whole number, got {value!r}")
    return int(value)
