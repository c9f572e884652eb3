"""The UI's Controller under hostile input, one table row per case (ui_cases.py).

Each case opens its own session on the tiny LLaMA (modules `a` and `toxic`, one
composition in the history), runs its setup hook, calls the method (a generator is
stepped a few times, as Gradio would), and checks: a WorkbenchError with a non-empty one-line
message; the session's base, expression, values, mode, modules and history length as
they were; no other session opened or closed; nothing under tmp_path changed (uploads
land in a per-case server temp dir; only its empty folders are ignored); no pickle ran.
"""

from __future__ import annotations

import inspect
import os
import re
import tempfile

import pytest

from workbench.errors import WorkbenchError
from workbench.ui.controller import Controller

from .conftest import diff, snapshot
from .ui_cases import UI_CASES, UI_SETUPS, UiCase, UiWorld

STEPS = 8  # a generator is stepped at most this often: enough to see its refusal, too few to do real work


@pytest.fixture(scope="module")
def controller() -> Controller:
    return Controller()


def session_state(controller: Controller, session: str) -> tuple:
    state = controller.manager.state(session)
    composition = state.composition.combination.canonical if state.composition is not None else None
    modules = tuple((name, module.fingerprint) for name, module in state.modules.items())
    history = len(controller.ui(session).history)
    return (state.base, state.expression, dict(state.values), state.mode, state.merge, modules, composition, history,
            sorted(controller.manager.sessions))  # fmt: skip


@pytest.fixture
def ui_world(controller, base_dirs, adapters, tmp_path, monkeypatch, request) -> UiWorld:
    allowed_root = str(base_dirs["llama"].parent.parent)
    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", allowed_root)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "server-tmp").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "server-tmp"))
    monkeypatch.chdir(tmp_path / "cwd")
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "keep.txt").write_text("precious")
    (victim / "sub" / "more.json").write_text("{}")
    llama = adapters["llama"]
    paths = {
        "tmp": str(tmp_path), "victim": str(victim), "marker": str(tmp_path / "PWNED"), "allowed_root": allowed_root,
        "llama": str(base_dirs["llama"]), "lora_a": str(llama["lora_a"]), "lora_b": str(llama["lora_b"]),
        "gpt2_lora": str(adapters["gpt2"]["lora_a"]), "cfg": str(llama["lora_a"] / "adapter_config.json"),
        "weights": str(llama["lora_a"] / "adapter_model.safetensors"),
    }  # fmt: skip
    session = f"hostile-{request.node.callspec.id}"
    controller.start(session, base=paths["llama"])
    controller.add_adapter(session, "a", paths["lora_a"])
    controller.add_adapter(session, "toxic", paths["lora_b"])
    controller.recompose(session, "lam*a + (1-lam)*toxic", {"lam": 0.3})
    yield UiWorld(controller, session, tmp_path, paths, monkeypatch)
    controller.release(session)


@pytest.mark.parametrize("case", UI_CASES, ids=[case.id for case in UI_CASES])
def test_ui_case(case: UiCase, ui_world: UiWorld) -> None:
    controller, session = ui_world.controller, ui_world.session
    if case.setup:
        UI_SETUPS[case.setup](ui_world)
    args, kwargs = ui_world.fill(case.args), ui_world.fill(case.kwargs)
    state = session_state(controller, session)
    server_tmp = ui_world.root / "server-tmp"
    before = snapshot(ui_world.root, skip_empty_dirs_under=server_tmp)

    with pytest.raises(Exception) as raised:  # noqa: B017 - the type is checked below, to report what it was
        result = getattr(controller, case.method)(session, *args, **kwargs)
        if inspect.isgenerator(result):
            try:
                for _ in range(STEPS):  # a chat reports a refusal of its worker thread after an empty first piece
                    next(result)
            finally:
                result.close()

    exc = raised.value
    assert isinstance(exc, WorkbenchError), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
    if case.match:
        assert re.search(case.match, message, re.IGNORECASE), message
    assert session_state(controller, session) == state, "the session changed"
    after = snapshot(ui_world.root, skip_empty_dirs_under=server_tmp)
    assert after == before, diff(before, after)
    assert not os.path.lexists(ui_world.paths["marker"]), "a pickle ran code"
