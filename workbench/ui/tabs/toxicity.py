"""Toxicity: samples from the base, a module and its negations, scored by a named scorer."""

from __future__ import annotations

import time

import gradio as gr

from workbench.errors import WorkbenchError
from workbench.eval.sampling import PAPER_PROMPT
from workbench.ui.controller import Controller, progress_line, rounded, toxicity_needs
from workbench.ui.errors import KEEP, LONG_RUN, guarded, session_of

# 4 settings (base, module, λ = 0.5, 1) × 20 samples (one batch each): 23 s for the first
# run in a fresh process on a 2-core CPU (the zoo's SmolLM2, unlearning-lora, no GPU); 12 or
# 16 samples take about as long; MORE (80 samples, four batches) about 4× as long.
DEFAULT_SAMPLES = 20
MORE = 4  # "more" is one click: the second button runs this many times the samples
MAX_SAMPLES = 400
# the progress bar and an error's badge go on the progress box alone; the plots keep their last values
WITH_PROGRESS = {**LONG_RUN, "show_progress": "full"}


def build(controller: Controller, tab: gr.Tab | None = None) -> None:
    """With `tab`, the note says on selecting the tab whether the session's base can be sampled."""
    intro = (
        f"**Scorer: {controller.scorer.name}.** {controller.scorer.note}\n\n"
        f"Toxicity samples completions from a language model (SmolLM2): on a MiniLM preset, {toxicity_needs()}."
    )
    note = gr.Markdown(intro, elem_id="toxicity-note")
    with gr.Row():
        module = gr.Textbox(value="toxic", label="module to negate", elem_id="toxicity-module")
        prompts = gr.Textbox(value=PAPER_PROMPT, label="prompts (one per line)", lines=3, elem_id="toxicity-prompts")
        samples = gr.Number(value=DEFAULT_SAMPLES, precision=0, label="samples per setting",
                            elem_id="toxicity-samples")  # fmt: skip
        lambdas = gr.Textbox(value="0.5, 1.0", label="λ values for −λ·module", elem_id="toxicity-lambdas")
    naive = gr.Checkbox(False, elem_id="toxicity-naive",
                        label="also the naive negation, an ablation (paper Table 11): every parameter negated, "
                              "so a LoRA's (−B)(−A) = BA is the module itself")  # fmt: skip
    with gr.Row():
        run = gr.Button("Run", variant="primary", elem_id="run-toxicity")
        more = gr.Button(f"Run with {MORE}× the samples", elem_id="run-toxicity-more")
    progress_box = gr.Textbox(label="progress", interactive=False, elem_id="toxicity-progress")
    with gr.Row():
        boxes = gr.Plot(label="scores per setting", elem_id="toxicity-boxes")
        curve = gr.Plot(label="toxicity and perplexity against λ", elem_id="toxicity-curve")
    table = gr.Dataframe(label="samples (score to 4 significant digits)", interactive=False, wrap=True,
                         column_widths=["14%", "9%", "22%", "55%"], elem_id="toxicity-table")  # fmt: skip

    def runner(factor: int):
        @guarded
        def on_run(name: str, text: str, count: float, values: str, ablation: bool, request: gr.Request,
                   progress: gr.Progress = gr.Progress()):  # noqa: B008 - Gradio's idiom  # fmt: skip
            try:
                lams = [float(v) for v in values.replace(",", " ").split()]
            except ValueError:
                raise WorkbenchError(f"λ values must be numbers, got {values!r}") from None
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            count = int(count or 0) * factor
            if not 1 <= count <= MAX_SAMPLES:
                raise WorkbenchError(f"samples per setting must be between 1 and {MAX_SAMPLES}; {count} were asked")
            started = time.monotonic()
            finished = [(0, 0)]

            def on_setting(done: int, total: int, label: str) -> None:
                finished.append((done, total))
                line = progress_line(done, total, time.monotonic() - started, "settings")
                progress(done / total, desc=f"{label} sampled · {line}")

            progress(0, desc=f"sampling {count} completions for the base first")
            box, line, frame, scorer_note = controller.toxicity(
                session_of(request), name.strip(), lines, count, lams, on_setting=on_setting, naive=bool(ablation)
            )
            done = progress_line(*finished[-1], time.monotonic() - started, "settings")
            return box, line, rounded(frame), scorer_note, f"{done}, {count} samples each"

        return on_run

    inputs = [module, prompts, samples, lambdas, naive]
    outputs = [boxes, curve, table, note, progress_box]
    for button, factor in ((run, 1), (more, MORE)):
        button.click(runner(factor), inputs, outputs, show_progress_on=[progress_box], **WITH_PROGRESS)

    if tab is not None:

        @guarded
        def on_select(request: gr.Request) -> str:
            refusal = controller.toxicity_refusal(session_of(request))
            return f"**{refusal}.**\n\n{intro}" if refusal else intro

        tab.select(on_select, None, [note], **KEEP)
