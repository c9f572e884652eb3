"""The Gradio workbench: `build_app()` assembles the tabs around one Controller."""

from __future__ import annotations

import gradio as gr

from workbench.catalog.bases import ZOO_BASES, weights_note
from workbench.catalog.presets import PRESETS
from workbench.errors import WorkbenchError
from workbench.ui.controller import UPLOAD_LIMIT_BYTES, Controller
from workbench.ui.errors import KEEP, guarded, session_of
from workbench.ui.tabs import chat, compose, export, history, models, sweep, toxicity

DEFAULT_PRESET = "unlearning-lora"
STARTUP_BASES = ("smollm2-135m-instruct", "minilm-l6")  # both zoo bases load at startup: presets switch at once
ALSO = "Every preset (MiniLM's distribution generalization and multi-task, SmolLM2's unlearning) is in the preset menu."
TITLE = "PEM Workbench"
CACHE_CLEANUP = (3600, 6 * 3600)  # hourly, Gradio deletes its copies of uploads and downloads older than 6 h
# What `launch` needs besides host and port: Gradio refuses larger uploads before they reach a handler.
LAUNCH_OPTIONS = {"max_file_size": UPLOAD_LIMIT_BYTES}


def build_app(controller: Controller | None = None, preset: str = DEFAULT_PRESET) -> gr.Blocks:
    controller = controller or Controller()
    default_expression = PRESETS[preset].expression if preset in PRESETS else ""
    with gr.Blocks(title=TITLE, delete_cache=CACHE_CLEANUP) as app:
        gr.Markdown(
            f"# {TITLE}\nCompose parameter-efficient modules by arithmetic and watch what the composition "
            "does. Offline: SmolLM2-135M-Instruct and MiniLM from PyPI packages, modules from the zoo."
        )
        status = gr.Markdown(elem_id="status")
        with gr.Tab("Compose"):
            view = compose.build(controller, default_expression, preset if preset in PRESETS else "")
        with gr.Tab("Models"):
            shelf = models.build(controller)
        with gr.Tab("Sweep"):
            tasks = sweep.build(controller, view.expression, view.names)
        with gr.Tab("Toxicity"):
            toxicity.build(controller)
        with gr.Tab("Chat"):
            talking_to, describe = chat.build(controller)
        with gr.Tab("Export") as export_tab:  # its preview follows the composition: on select and on Compose's changes
            export.build(controller, export_tab, view.outputs)
        with gr.Tab("History") as history_tab:  # fills by itself, the same way
            restored, history_table, refresh_history = history.build(controller, history_tab, view.outputs)

        def open_preset(name: str, session: str):
            """The preset's base and modules in place of the session's; on failure, the
            session keeps what it had (or, on a first visit, gets the bare SmolLM2)."""
            try:
                expression_text = controller.start(session, preset=name)
                weights = weights_note(PRESETS[name].base) if PRESETS[name].base in ZOO_BASES else ""
                note = f"Loaded preset **{name}**: `{expression_text}` on `{PRESETS[name].base}`. {ALSO}\n\n{weights}."
            except WorkbenchError as exc:
                if session in controller.manager.sessions:
                    raise
                name = ""
                controller.start(session, base="smollm2-135m-instruct")
                note = f"Loaded the base model only ({exc})."
            choices = controller.tasks_for(session)
            # a classifier preset's own tasks; for a language model the quick one (perplexity)
            chosen = (
                [t for t in PRESETS[name].tasks if t in choices and t.endswith("-validation")]
                if name in PRESETS
                else []
            )
            return (note, controller.modules_table(session),  # the render that follows draws Compose
                    gr.update(choices=choices, value=chosen or choices[:1]), gr.update(value=name),
                    gr.update(value=controller.manager.state(session).base))  # fmt: skip

        @guarded
        def on_start(request: gr.Request):
            controller.warm(STARTUP_BASES)
            return open_preset(preset, session_of(request))

        @guarded
        def on_preset(name: str, request: gr.Request):
            if not name:
                return (gr.update(),) * 5
            return open_preset(name, session_of(request))

        @guarded
        def on_base_loaded(request: gr.Request):
            """After another base: no preset (the session starts bare; the render clears Compose)."""
            session = session_of(request)
            return gr.update(value=""), gr.update(choices=controller.tasks_for(session), value=[])

        @guarded
        def refresh_table(request: gr.Request):
            return controller.modules_table(session_of(request))

        opened = [status, shelf.table, tasks, view.preset, shelf.base]
        view.render(app.load(on_start, None, opened, **KEEP)).then(describe, None, [talking_to], **KEEP)
        view.render(view.preset.input(on_preset, [view.preset], opened, **KEEP)).success(describe, None, [talking_to])
        view.render(shelf.loaded.success(on_base_loaded, None, [view.preset, tasks], **KEEP)).success(
            describe, None, [talking_to], **KEEP
        )
        for added in shelf.added:  # a replaced module may be in the composition: Compose shows it again
            view.render(added)
        view.render(restored).success(refresh_history, None, [history_table], **KEEP).success(
            refresh_table, None, [shelf.table], **KEEP
        ).success(describe, None, [talking_to])

        def on_unload(request: gr.Request) -> None:
            controller.release(session_of(request))

        app.unload(on_unload)
    return app
