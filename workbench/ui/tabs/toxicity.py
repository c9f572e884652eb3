"""Toxicity: samples from the base, a module and its negations, scored by a named scorer."""

from __future__ import annotations

import gradio as gr

from workbench.errors import WorkbenchError
from workbench.eval.sampling import PAPER_PROMPT
from workbench.ui.controller import Controller
from workbench.ui.errors import LONG_RUN, guarded, session_of


def build(controller: Controller) -> None:
    gr.Markdown(f"**Scorer: {controller.scorer.name}.** {controller.scorer.note}")
    with gr.Row():
        module = gr.Textbox(value="toxic", label="module to negate")
        prompts = gr.Textbox(value=PAPER_PROMPT, label="prompts (one per line)", lines=3)
        samples = gr.Number(value=20, precision=0, label="samples per setting")
        lambdas = gr.Textbox(value="0.5, 1.0", label="λ values for −λ·module")
    run = gr.Button("Run", variant="primary")
    note = gr.Markdown()
    with gr.Row():
        boxes = gr.Plot(label="scores per setting")
        curve = gr.Plot(label="toxicity and perplexity against λ")
    table = gr.Dataframe(label="samples", interactive=False, wrap=True)

    @guarded
    def on_run(name: str, text: str, count: float, values: str, request: gr.Request):
        try:
            lams = [float(v) for v in values.replace(",", " ").split()]
        except ValueError:
            raise WorkbenchError(f"λ values must be numbers, got {values!r}") from None
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        count = int(count or 0)
        if not 1 <= count <= 400:
            raise WorkbenchError("samples per setting must be between 1 and 400")
        gr.Info(f"Sampling and scoring {count} completions per setting: a minute or more on a CPU.")
        box, line, frame, scorer_note = controller.toxicity(session_of(request), name.strip(), lines, count, lams)
        return box, line, frame, scorer_note

    run.click(on_run, [module, prompts, samples, lambdas], [boxes, curve, table, note], **LONG_RUN)
