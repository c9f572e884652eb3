"""Compose: an expression, a preset menu, exact/paper mode, sliders, and a live readout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from workbench.ui.controller import MAX_PARAMETERS, Controller
from workbench.ui.errors import KEEP, MODEL_CALL, guarded, session_of
from workbench.zoo.presets import PRESETS


@dataclass
class ComposeView:
    """The Compose tab's components and handlers, for the events other tabs chain to it."""

    expression: gr.Textbox
    preset: gr.Dropdown
    mode: gr.Radio
    compare: gr.Checkbox
    names: gr.State
    sliders: list[gr.Slider]
    outputs: list[Any]
    on_expression: Any
    on_release: Any
    on_render: Any

    @property
    def slider_inputs(self) -> list[Any]:
        """What `on_expression` reads: the expression, the slider names and values."""
        return [self.expression, self.names, *self.sliders]

    @property
    def recompose_inputs(self) -> list[Any]:
        """What `on_release` reads: the whole of what the screen shows, mode and compare included."""
        return [self.expression, self.mode, self.names, self.compare, *self.sliders]

    @property
    def screen(self) -> list[Any]:
        """Everything the Compose tab shows about the session, in `on_render`'s order."""
        return [self.expression, self.mode, self.names, *self.sliders, *self.outputs]

    def render(self, event: Any) -> Any:
        """After `event` changed the session (a preset, a restore, a base, a module), draw the
        whole tab from the session's state: one render, not a patch per event."""
        return event.success(self.on_render, [self.compare], self.screen, **MODEL_CALL)


def build(controller: Controller, default_expression: str, default_preset: str = "") -> ComposeView:
    with gr.Row():
        expression = gr.Textbox(value=default_expression, label="expression (empty: the base model)",
                                elem_id="expression", scale=4, placeholder="lam*a + (1-lam)*b")  # fmt: skip
        preset = gr.Dropdown([""] + list(PRESETS), value=default_preset, label="preset (paper Table 1, RED, LoTA)",
                             scale=2, elem_id="preset")  # fmt: skip
        mode = gr.Radio(["exact", "paper"], value="exact", label="mode", scale=1, elem_id="mode")
    sliders = [
        gr.Slider(-2, 2, value=0.5, step=0.05, label=f"parameter {i + 1}", visible=False, elem_id=f"slider-{i}")
        for i in range(MAX_PARAMETERS)
    ]
    names = gr.State([])
    with gr.Row():
        canonical = gr.Textbox(label="canonical form", interactive=False, elem_id="canonical")
        compare = gr.Checkbox(label="compare to base", value=False, elem_id="compare")
    coefficients = gr.Dataframe(label="coefficients", interactive=False, elem_id="coefficients")
    with gr.Row():
        readout = gr.Textbox(label="readout (composed)", interactive=False, elem_id="readout", lines=2)
        base_readout = gr.Textbox(label="readout (base)", interactive=False, visible=False, lines=2,
                                  elem_id="base-readout")  # fmt: skip

    @guarded
    def on_expression(text: str, previous: list[str], v0: float, v1: float, v2: float, v3: float,
                      request: gr.Request):  # fmt: skip
        values = (v0, v1, v2, v3)
        params = controller.parameters(session_of(request), text)
        old = dict(zip(previous, values, strict=False))
        state = controller.manager.state(session_of(request))
        updates = []
        restoring = state.expression == text  # a restored or preset composition: its own values win
        for i in range(MAX_PARAMETERS):
            if i < len(params):
                saved = state.values.get(params[i])
                value = (
                    saved
                    if restoring and saved is not None
                    else old.get(params[i], saved if saved is not None else 0.5)
                )
                updates.append(gr.update(visible=True, label=params[i], value=value))
            else:
                updates.append(gr.update(visible=False))
        return [params, *updates]

    @guarded
    def on_release(text: str, chosen_mode: str, params: list[str], show_base: bool, v0: float, v1: float,
                   v2: float, v3: float, request: gr.Request):  # fmt: skip
        values = (v0, v1, v2, v3)
        session = session_of(request)
        shown = controller.recompose(session, text, dict(zip(params, values, strict=False)), chosen_mode)
        base_text = controller.readout(session, use_base=True) if show_base else ""
        return shown["canonical"], shown["coefficients"], shown["readout"], gr.update(value=base_text,
                                                                                       visible=show_base)  # fmt: skip

    @guarded
    def on_render(show_base: bool, request: gr.Request):
        session = session_of(request)
        state = controller.manager.state(session)
        params = controller.parameters(session, state.expression)
        values = {name: state.values.get(name, 0.5) for name in params}
        shown = controller.recompose(session, state.expression, values, state.mode)
        sliders = [gr.update(visible=True, label=name, value=values[name]) for name in params]
        sliders += [gr.update(visible=False)] * (MAX_PARAMETERS - len(params))
        base_text = controller.readout(session, use_base=True) if show_base else ""
        return [state.expression, state.mode, params, *sliders, shown["canonical"], shown["coefficients"],
                shown["readout"], gr.update(value=base_text, visible=show_base)]  # fmt: skip

    view = ComposeView(expression, preset, mode, compare, names, sliders,
                       [canonical, coefficients, readout, base_readout], on_expression, on_release,
                       on_render)  # fmt: skip
    expression.submit(on_expression, view.slider_inputs, [names, *sliders], **KEEP).success(
        on_release, view.recompose_inputs, view.outputs, **MODEL_CALL
    )
    for slider in sliders:
        slider.release(on_release, view.recompose_inputs, view.outputs, **MODEL_CALL)
        # the keyboard (arrow keys on a focused slider) changes the value without a release
        slider.input(on_release, view.recompose_inputs, view.outputs, **MODEL_CALL,
                     trigger_mode="always_last")  # fmt: skip
    mode.input(on_release, view.recompose_inputs, view.outputs, **MODEL_CALL)
    compare.input(on_release, view.recompose_inputs, view.outputs, **MODEL_CALL)
    return view
