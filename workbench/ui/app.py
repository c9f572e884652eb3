"""The Gradio workbench: `build_app()` assembles the tabs around one Controller."""

from __future__ import annotations

import gradio as gr

from workbench.errors import WorkbenchError
from workbench.ui.controller import Controller
from workbench.ui.errors import session_of
from workbench.ui.tabs import chat, compose, export, history, models, sweep, toxicity
from workbench.zoo.presets import PRESETS

DEFAULT_PRESET = "unlearning-lora"
TITLE = "PEM Workbench"


def build_app(controller: Controller | None = None, preset: str = DEFAULT_PRESET) -> gr.Blocks:
    controller = controller or Controller()
    default_expression = PRESETS[preset].expression if preset in PRESETS else ""
    with gr.Blocks(title=TITLE) as app:
        gr.Markdown(
            f"# {TITLE}\nCompose parameter-efficient modules by arithmetic and watch what the composition "
            "does. Offline: SmolLM2-135M-Instruct and MiniLM from PyPI packages, modules from the zoo."
        )
        status = gr.Markdown(elem_id="status")
        with gr.Tab("Compose"):
            expression, names, sliders, outputs, on_expression, on_release = compose.build(
                controller, default_expression
            )
        with gr.Tab("Models"):
            table = models.build(controller)
        with gr.Tab("Sweep"):
            tasks = sweep.build(controller, expression, names)
        with gr.Tab("Toxicity"):
            toxicity.build(controller)
        with gr.Tab("Chat"):
            talking_to, describe = chat.build(controller)
        with gr.Tab("Export"):
            export.build(controller)
        with gr.Tab("History"):
            restored, _ = history.build(controller, expression)
            restored.then(on_expression, [expression, names, *sliders], [names, *sliders])  # sliders follow

        def on_start(request: gr.Request):
            session = session_of(request)
            try:
                expression_text = controller.start(session, preset=preset)
                note = f"Loaded preset **{preset}**: `{expression_text}` on `{PRESETS[preset].base}`."
            except WorkbenchError as exc:
                expression_text = ""
                controller.start(session, base="smollm2-135m-instruct")
                note = f"Loaded the base model only ({exc})."
            choices = controller.tasks_for(session)
            return (note, controller.modules_table(session), expression_text,
                    gr.update(choices=choices, value=choices[:1]))  # fmt: skip

        app.load(on_start, None, [status, table, expression, tasks]).then(
            on_expression, [expression, names, *sliders], [names, *sliders]
        ).then(on_release, [expression, gr.State("exact"), names, gr.State(False), *sliders], outputs).then(
            describe, None, [talking_to]
        )

        def on_unload(request: gr.Request) -> None:
            controller.release(session_of(request))

        app.unload(on_unload)
    return app
