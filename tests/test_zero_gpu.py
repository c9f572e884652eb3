"""The Space path: model calls go through `spaces.GPU`, which on ZeroGPU runs them in a
forked worker whose changes to Python objects are lost. A stand-in `spaces` module does
exactly that here (fork, run, send the result back), and every result must equal the same
call run in the server process, with the session's own state kept in the server."""

from __future__ import annotations

import faulthandler
import inspect
import multiprocessing
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

import pytest
import torch

from workbench.ui.controller import Controller
from workbench.ui.gpu import here, on_gpu

DURATIONS: list[int] = []
ANSWER_SECONDS = 120


def forked(fn: Callable[..., Any], seconds: float) -> Callable[..., Any]:
    """Run `fn` in a forked child, as ZeroGPU does; stream a generator's items back."""
    DURATIONS.append(int(seconds))
    context = multiprocessing.get_context("fork")

    def start(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        receive, send = context.Pipe(duplex=False)

        def child() -> None:
            torch.set_num_threads(1)  # a forked child must not reuse the parent's thread pool
            faulthandler.dump_traceback_later(ANSWER_SECONDS - 10)  # where a stuck worker was, in the report
            try:
                result = fn(*args, **kwargs)
                if inspect.isgenerator(result):
                    for item in result:
                        send.send(("item", item))
                    send.send(("done", None))
                else:
                    send.send(("value", result))
            except BaseException as exc:  # noqa: BLE001 - sent back to the caller
                send.send(("error", exc))

        process = context.Process(target=child, daemon=True)
        process.start()
        send.close()
        return process, receive

    def answer(process: Any, receive: Any) -> tuple[str, Any]:
        if not receive.poll(ANSWER_SECONDS):
            process.kill()
            alive = ", ".join(thread.name for thread in threading.enumerate())
            raise TimeoutError(f"the forked call did not answer; threads in the parent at the time: {alive}")
        return receive.recv()

    if inspect.isgeneratorfunction(fn):

        def stream(*args: Any, **kwargs: Any) -> Any:
            process, receive = start(*args, **kwargs)
            try:
                while True:
                    kind, value = answer(process, receive)
                    if kind == "error":
                        raise value
                    if kind == "done":
                        return
                    yield value
            finally:
                process.kill()
                process.join()

        return stream

    def call(*args: Any, **kwargs: Any) -> Any:
        process, receive = start(*args, **kwargs)
        kind, value = answer(process, receive)
        process.join()
        if kind == "error":
            raise value
        return value

    return call


@pytest.fixture
def pair(base_dirs, adapters, monkeypatch):
    """The same session in two controllers: one runs model calls here, one in forked workers."""
    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", str(base_dirs["llama"].parent.parent))
    made = []
    for runner in (here, forked):
        controller = Controller(gpu=runner)
        controller.start("s", base=str(base_dirs["llama"]))
        controller.add_adapter("s", "a", str(adapters["llama"]["lora_a"]))
        controller.add_adapter("s", "toxic", str(adapters["llama"]["lora_b"]))
        made.append(controller)
    return made


def test_forked_model_calls_equal_calls_run_here(pair) -> None:
    local, remote = pair
    DURATIONS.clear()
    for controller in pair:
        shown = controller.recompose("s", "lam*a - toxic", {"lam": 0.3})
        controller.shown = shown  # type: ignore[attr-defined]
    assert remote.shown["readout"] == local.shown["readout"]  # type: ignore[attr-defined]
    state = remote.manager.state("s")  # the session changed in the server, not in the worker
    assert (state.expression, state.values) == ("lam*a - toxic", {"lam": 0.3})
    assert remote.readout("s", use_base=True) == local.readout("s", use_base=True)
    replies = [list(c.chat("s", "hello", max_new_tokens=12, seed=5))[-1] for c in pair]
    assert replies[0] == replies[1]
    sweeps = [list(c.sweep("s", "lam*a", {"lam": "0,0.5,1"}, ["austen-perplexity"]))[-1][1] for c in pair]
    assert sweeps[0].equals(sweeps[1])
    toxicity = [c.toxicity("s", "toxic", ["hi"], 2, [0.5])[2] for c in pair]
    assert toxicity[0].equals(toxicity[1])
    assert remote.manager.sessions == ["s"]  # scratch copies lived and died in the workers
    # the next-token detail, the live measures (the point and its references), the base readout,
    # the reply, the sweep, the toxicity samples: each asked for its time
    assert len(DURATIONS) == 6


def test_errors_from_a_worker_are_the_same_one_line(pair) -> None:
    from workbench.errors import WorkbenchError

    for controller in pair:
        with pytest.raises(WorkbenchError, match="overflows"):
            controller.recompose("s", "1e30*toxic", {})
        assert controller.manager.state("s").expression == ""  # refused: the session kept its own


def test_on_a_space_model_calls_go_through_spaces_gpu(monkeypatch) -> None:
    seen: list[int] = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda duration: (seen.append(duration), lambda fn: forked(fn, duration))[1]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spaces", fake)

    def square(x: int) -> int:
        return x * x

    assert on_gpu(square, 5000) is square  # not on a Space: the function itself
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    assert on_gpu(square, 5000)(7) == 49 and seen == [300]  # the Space's longest request


def test_a_worker_finds_the_composition_folded_in_the_server(pair, monkeypatch) -> None:
    """ZeroGPU keeps nothing a worker computes; the server folds the composition before the
    call, so the worker only activates it (a fold in the worker would raise here)."""
    import os

    import workbench.runtime.session as session_module

    server = os.getpid()
    real_fold = session_module.fold

    def fold_in_the_server_only(*args: Any, **kwargs: Any) -> Any:
        assert os.getpid() == server, "a worker folded: the server's cache was not used"
        return real_fold(*args, **kwargs)

    monkeypatch.setattr(session_module, "fold", fold_in_the_server_only)
    local, remote = pair
    for lam in (0.1, 0.7, 0.1):
        assert remote.recompose("s", "lam*a", {"lam": lam})["readout"] == local.recompose(
            "s", "lam*a", {"lam": lam})["readout"]  # fmt: skip
