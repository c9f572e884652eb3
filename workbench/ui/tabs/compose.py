"""Compose: the expression and its sliders on the left; on the right the live curve of the
preset's measures against λ, with the sliders' λ marked, and the readout at that λ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from workbench.algebra.merging import MERGE_METHODS
from workbench.catalog.presets import PRESETS
from workbench.ui.controller import MAX_PARAMETERS, Controller
from workbench.ui.errors import CURVE, KEEP, LONG_RUN, MODEL_CALL, guarded, session_of

GRAMMAR_HELP = """\
**Expressions.** Module names (see Models) combine with `+ - * /`, numbers, parentheses and
`^` on parameters; `⊕ ⊖ × ·` work too. Any other name is a parameter and gets a slider.

| expression | what it is |
|---|---|
| `lam*sentiment_s0 + (1-lam)*sentiment_s1` | interpolate two modules (λ=1: the first alone) |
| `-lam*toxic` | subtract a module: λ sets how much (unlearning) |
| `0.5*sentiment + 0.5*topic` | a fixed merge, no slider |
| `a + lam*(b - a)` | move from `a` towards `b` |
| *(empty)* | the base model |

**λ** scales a module's weight change: 0 is the base model, 1 the module as trained, −1
its negation. The sliders go from −2 to 2 so you can see past both ends: past 1 a module is
amplified, below 0 it is subtracted.
"""


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
    guide: gr.Markdown
    plot: gr.Plot
    on_expression: Any
    on_release: Any
    on_render: Any
    on_fill: Any
    merge: gr.Dropdown
    density: gr.Number

    @property
    def slider_inputs(self) -> list[Any]:
        """What `on_expression` reads: the expression, the slider names and values."""
        return [self.expression, self.names, *self.sliders]

    @property
    def recompose_inputs(self) -> list[Any]:
        """What `on_release` reads: the whole of what the screen shows, mode, merge and compare included."""
        return [self.expression, self.mode, self.merge, self.density, self.names, self.compare, *self.sliders]

    @property
    def screen(self) -> list[Any]:
        """Everything the Compose tab shows about the session, in `on_render`'s order."""
        return [self.expression, self.mode, self.merge, self.density, self.names, *self.sliders, *self.outputs,
                self.guide]  # fmt: skip

    def render(self, event: Any) -> Any:
        """After `event` changed the session (a preset, a restore, a base, a module), draw the
        whole tab from the session's state: one render, not a patch per event. The curve
        then fills in the background."""
        drawn = event.success(self.on_render, [self.compare, self.preset], self.screen, **MODEL_CALL)
        drawn.success(self.on_fill, None, [self.plot], **CURVE)
        return drawn


def build(controller: Controller, default_expression: str, default_preset: str = "") -> ComposeView:
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            preset = gr.Dropdown([""] + list(PRESETS), value=default_preset, elem_id="preset",
                                 label="preset (the paper's settings; LoRA, (IA)³, RED, LoTA)")  # fmt: skip
            guide = gr.Markdown(PRESETS[default_preset].guide if default_preset in PRESETS else "",
                                elem_id="preset-guide")  # fmt: skip
            expression = gr.Textbox(value=default_expression, label="expression (empty: the base model)",
                                    elem_id="expression", placeholder="lam*sentiment + (1-lam)*topic")  # fmt: skip
            with gr.Accordion("How to write an expression, and what λ does", open=False, elem_id="grammar-help"):
                gr.Markdown(GRAMMAR_HELP)
            mode = gr.Radio([("exact", "exact"), ("paper", "paper"), ("naive (ablation)", "naive")], value="exact",
                            label="mode", elem_id="mode",
                            info="paper: the paper's parameter arithmetic; it differs from exact only for two or "
                                 "more LoRAs. naive (ablation, paper Table 11): every parameter scaled, so "
                                 "-1·LoRA = (-B)(-A) changes nothing and -1·(IA)³ flips the activations")  # fmt: skip
            with gr.Accordion("merge: KnOTS, TSV-M, Iso-C for LoRAs; TIES, DARE for sparse vectors", open=False,
                              elem_id="merge-options"):  # fmt: skip
                merge = gr.Dropdown(list(MERGE_METHODS), value="linear", label="merge", elem_id="merge",
                                    info="linear: the exact sum; the others merge the modules' ΔW "
                                         "(docs/zoo-studies.md compares them)")  # fmt: skip
                density = gr.Number(1.0, minimum=0, maximum=1, step=0.05, label="density", elem_id="density",
                                    info="share kept: TIES/DARE/magnitude and KnOTS entries, TSV-M's 1/n "
                                         "of each rank; Iso-C and linear have none")  # fmt: skip
            sliders = [
                gr.Slider(
                    -2, 2, value=0.5, step=0.05, label=f"parameter {i + 1}", visible=False, elem_id=f"slider-{i}"
                )  # fmt: skip
                for i in range(MAX_PARAMETERS)
            ]
            with gr.Row():
                choose = gr.Button("Choose λ on validation", elem_id="choose-lambda", size="sm")
                compare = gr.Checkbox(label="compare to base", value=False, elem_id="compare")
            chosen = gr.Markdown(elem_id="chosen-lambda")
            canonical = gr.Textbox(label="canonical form", interactive=False, elem_id="canonical")
            coefficients = gr.Dataframe(label="coefficients", interactive=False, elem_id="coefficients")
        with gr.Column(scale=7, min_width=320):
            plot = gr.Plot(label="live curve: the preset's measures against λ", elem_id="live-curve")
            readout = gr.Textbox(label="readout at the sliders' λ (± half the 95% interval)", interactive=False,
                                 elem_id="readout", lines=2)  # fmt: skip
            with gr.Accordion("detail: the next token", open=False):
                detail = gr.Textbox(show_label=False, interactive=False, elem_id="detail", lines=2)
                base_readout = gr.Textbox(label="the base model's", interactive=False, visible=False, lines=2,
                                          elem_id="base-readout")  # fmt: skip
    names = gr.State([])

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

    def shown(session: str, composed: dict, show_base: bool) -> list[Any]:
        base_text = controller.readout(session, use_base=True) if show_base else ""
        return [composed["canonical"], composed["coefficients"], composed["readout"], composed["detail"],
                gr.update(value=base_text, visible=show_base), composed["figure"]]  # fmt: skip

    @guarded
    def on_release(text: str, chosen_mode: str, merge_method: str, merge_density: float, params: list[str],
                   show_base: bool, v0: float, v1: float, v2: float, v3: float, request: gr.Request):  # fmt: skip
        values = (v0, v1, v2, v3)
        session = session_of(request)
        composed = controller.recompose(session, text, dict(zip(params, values, strict=False)), chosen_mode,
                                        merge_method, merge_density)  # fmt: skip
        return shown(session, composed, show_base)

    @guarded
    def on_render(show_base: bool, preset_name: str, request: gr.Request):
        session = session_of(request)
        state = controller.manager.state(session)
        params = controller.parameters(session, state.expression)
        values = {name: state.values.get(name, 0.5) for name in params}
        composed = controller.recompose(session, state.expression, values, state.mode, state.merge.method,
                                        state.merge.density)  # fmt: skip
        sliders = [gr.update(visible=True, label=name, value=values[name]) for name in params]
        sliders += [gr.update(visible=False)] * (MAX_PARAMETERS - len(params))
        preset_now = PRESETS.get(preset_name)
        guide_text = preset_now.guide if preset_now and preset_now.expression == state.expression else ""
        merge_menu = gr.update(choices=controller.merge_choices(session), value=state.merge.method)
        return [state.expression, state.mode, merge_menu, state.merge.density, params, *sliders,
                *shown(session, composed, show_base), guide_text]  # fmt: skip

    @guarded
    def on_fill(request: gr.Request):
        yield from controller.fill_curve(session_of(request))

    @guarded
    def on_choose(show_base: bool, request: gr.Request):
        session = session_of(request)
        gr.Info("Measuring the grid on validation, then the chosen λ on test: seconds to a minute.")
        values, text = controller.choose_lambda(session)
        state = controller.manager.state(session)
        composed = controller.recompose(session, state.expression, {**state.values, **values}, state.mode,
                                        state.merge.method, state.merge.density)  # fmt: skip
        params = controller.parameters(session, state.expression)
        sliders = [gr.update(value=values.get(name, state.values.get(name))) for name in params]
        sliders += [gr.update()] * (MAX_PARAMETERS - len(params))
        return [*sliders, *shown(session, composed, show_base), text]

    outputs = [canonical, coefficients, readout, detail, base_readout, plot]
    view = ComposeView(expression, preset, mode, compare, names, sliders, outputs, guide, plot, on_expression,
                       on_release, on_render, on_fill, merge, density)  # fmt: skip
    expression.submit(on_expression, view.slider_inputs, [names, *sliders], **KEEP).success(
        on_release, view.recompose_inputs, view.outputs, **MODEL_CALL
    ).success(on_fill, None, [plot], **CURVE)
    for slider in sliders:
        slider.release(on_release, view.recompose_inputs, view.outputs, **MODEL_CALL)
        # the keyboard (arrow keys on a focused slider) changes the value without a release
        slider.input(on_release, view.recompose_inputs, view.outputs, **MODEL_CALL,
                     trigger_mode="always_last")  # fmt: skip
    mode.input(on_release, view.recompose_inputs, view.outputs, **MODEL_CALL).success(on_fill, None, [plot], **CURVE)
    for merge_control in (merge, density):
        merge_control.input(on_release, view.recompose_inputs, view.outputs, **MODEL_CALL).success(
            on_fill, None, [plot], **CURVE
        )
    compare.input(on_release, view.recompose_inputs, view.outputs, **MODEL_CALL)
    choose.click(on_choose, [compare], [*sliders, *outputs, chosen], **LONG_RUN)
    return view
