"""Random sequences of what a user does, at the controller: after every step, what the
Compose tab would show is what the model runs, and a restored History row reads out
exactly as it did. Most UI bugs live between two events, so the events come in any order."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from workbench.algebra import compose
from workbench.errors import WorkbenchError
from workbench.ui.controller import Controller

EXPRESSIONS = ["lam*a + (1-lam)*toxic", "-lam*toxic", "a", "", "lam*a - mu*toxic", "lam^2*a"]
BAD_EXPRESSIONS = ["a*toxic", "(a", "lam*nothing", "1e39*a", "a/0"]
INPUT = torch.tensor([[5, 17, 33, 60, 91, 2]])
LAMBDAS = st.sampled_from([-2.0, -1.0, -0.35, 0.0, 0.2, 0.5, 1.0, 1.7, 2.0])


class UserSession(RuleBasedStateMachine):
    paths: dict[str, str] = {}

    @initialize()
    def open(self) -> None:
        self.controller = Controller()
        self.controller.start("s", base=self.paths["base"])
        self.controller.add_adapter("s", "a", self.paths["lora_a"])
        self.controller.add_adapter("s", "toxic", self.paths["lora_b"])
        self.screen = self.controller.recompose("s", "-lam*toxic", {"lam": 0.5}) | {
            "expression": "-lam*toxic", "values": {"lam": 0.5}, "mode": "exact"}  # fmt: skip
        self.sweep = None
        self.logits: list[torch.Tensor] = [self.run_logits()]  # per History row: what the model computed

    def run_logits(self) -> torch.Tensor:
        """The live model's logits on a fixed input: finer than the readout's rounded top 5."""
        with torch.inference_mode(), self.controller.manager.model_for("s") as base:
            return base.model(input_ids=INPUT).logits.clone()

    def record(self) -> None:
        rows = len(self.controller.ui("s").history)
        if rows > len(self.logits):
            self.logits.append(self.run_logits())

    def show(self, expression: str, values: dict[str, float], mode: str) -> None:
        """What the Compose tab does; a refusal (e.g. paper mode over LoRAs of other ranks)
        leaves the screen as it was, and the invariant checks the session did not move either."""
        try:
            shown = self.controller.recompose("s", expression, values, mode)
        except WorkbenchError:
            return
        self.screen = shown | {"expression": expression, "values": dict(values), "mode": mode}
        self.record()

    @rule(expression=st.sampled_from(EXPRESSIONS), lam=LAMBDAS, mu=LAMBDAS)
    def write_expression(self, expression: str, lam: float, mu: float) -> None:
        names = self.controller.parameters("s", expression)
        values = {"lam": lam, "mu": mu}
        self.show(expression, {name: values[name] for name in names}, self.screen["mode"])

    @rule(lam=LAMBDAS)
    def move_slider(self, lam: float) -> None:
        names = self.controller.parameters("s", self.screen["expression"])
        self.show(self.screen["expression"], {name: lam for name in names}, self.screen["mode"])

    @rule(mode=st.sampled_from(["exact", "paper"]))
    def switch_mode(self, mode: str) -> None:
        self.show(self.screen["expression"], self.screen["values"], mode)

    @rule(bad=st.sampled_from(BAD_EXPRESSIONS), value=st.sampled_from([math.nan, math.inf, 7.0, None, "x"]))
    def bad_input(self, bad: str, value: object) -> None:
        with pytest.raises(WorkbenchError):
            self.controller.recompose("s", bad, {"lam": 0.5})
        with pytest.raises(WorkbenchError):
            self.controller.recompose("s", "lam*a", {"lam": value})  # type: ignore[dict-item]

    @rule(which=st.sampled_from(["lora_a", "lora_b", "lora_c"]), replace=st.booleans())
    def add_module_named_a(self, which: str, replace: bool) -> None:
        if not replace:
            with pytest.raises(WorkbenchError, match="already loaded"):
                self.controller.add_adapter("s", "a", self.paths[which])
            return
        before = self.controller.manager.state("s").modules["a"]
        try:
            self.controller.add_adapter("s", "a", self.paths[which], replace=True)
        except WorkbenchError:  # e.g. paper mode needs equal ranks: the session keeps its module
            assert self.controller.manager.state("s").modules["a"] is before
            return
        self.check_composition_is_current()  # before the UI recomposes: the manager already did
        self.show(self.screen["expression"], self.screen["values"], self.screen["mode"])  # the UI recomposes

    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        rows = self.controller.history("s")
        index = data.draw(st.integers(0, len(rows) - 1))
        entry = self.controller.ui("s").history[index]
        self.controller.restore("s", index)
        self.screen = self.controller.recompose("s", entry.expression, entry.values, entry.mode) | {
            "expression": entry.expression, "values": dict(entry.values), "mode": entry.mode}  # fmt: skip
        assert self.screen["readout"] == entry.readout  # the row reproduces its readout exactly
        torch.testing.assert_close(self.run_logits(), self.logits[index], rtol=0, atol=1e-6)  # and its model
        self.record()

    @precondition(lambda self: self.sweep is None)
    @rule()
    def start_sweep(self) -> None:
        self.sweep = self.controller.sweep("s", "lam*a", {"lam": "0:1:0.5"}, ["austen-perplexity"])
        next(self.sweep)

    @precondition(lambda self: self.sweep is not None)
    @rule(stop=st.booleans())
    def continue_or_stop_sweep(self, stop: bool) -> None:
        if stop:
            self.controller.stop("s")
        for _ in self.sweep:
            pass
        self.sweep = None

    def check_composition_is_current(self) -> None:
        state = self.controller.manager.state("s")
        if state.expression:
            expected = compose(state.modules, state.expression, state.values, state.mode)
            assert [p.fingerprint for p in state.composition.parts] == [p.fingerprint for p in expected.parts]

    @invariant()
    def screen_is_what_runs(self) -> None:
        self.check_composition_is_current()
        manager = self.controller.manager
        state = manager.state("s")
        assert (state.expression, state.values, state.mode) == (
            self.screen["expression"], self.screen["values"], self.screen["mode"])  # fmt: skip
        expected = compose(state.modules, state.expression, state.values, state.mode) if state.expression else None
        canonical = expected.combination.canonical if expected else "(base model)"
        assert self.screen["canonical"] == canonical
        shown = dict(zip(self.screen["coefficients"].get("module", []), self.screen["coefficients"].get(
            "coefficient", []), strict=True))  # fmt: skip
        assert shown == ({n: round(c, 6) for n, c in expected.coefficients.items()} if expected else {})
        with manager.model_for("s") as base:
            live = manager._live[base.key].key
        assert live == manager.cache_key(state)
        assert self.controller.readout("s") == self.screen["detail"]  # the next token of what runs
        assert self.controller.point_readout("s") == self.screen["readout"]  # the measures at what runs

    def teardown(self) -> None:
        if self.sweep is not None:
            self.sweep.close()
        self.controller.release("s")


def test_what_compose_shows_is_what_runs(base_dirs, adapters, monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", str(base_dirs["llama"].parent.parent))
    UserSession.paths = {"base": str(base_dirs["llama"]), **{k: str(adapters["llama"][k])
                                                              for k in ("lora_a", "lora_b", "lora_c")}}  # fmt: skip
    machine = UserSession.TestCase
    machine.settings = settings(
        max_examples=40, stateful_step_count=15, deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a failure prints its steps; shrinking takes minutes
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    machine().runTest()
