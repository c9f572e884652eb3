"""The Chat tab's controller functions on the tiny LLaMA (and once on the zoo's SmolLM2): the
composed model and the base answer at the same time, Stop stops both, a conversation is
remembered through the chat template, and bad settings or a base that cannot chat are
refused in one line."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import torch

import workbench.ui.controller as controller_module
from workbench.errors import WorkbenchError
from workbench.runtime.generation import MAX_TEMPERATURE, MIN_TEMPERATURE, encode_prompt, generation_settings
from workbench.ui.controller import (
    CHAT_MAX_MESSAGES,
    CHAT_MAX_NEW_TOKENS,
    MAX_CHAT_CHARACTERS,
    ChatReplies,
    Controller,
    chat_turns,
)


@pytest.fixture
def controller(tiny_controller):
    controller = tiny_controller("s")
    controller.recompose("s", "-lam*toxic", {"lam": 0.5})
    return controller


def slow_down(controller: Controller, monkeypatch, seconds: float) -> None:
    """Make each forward pass take at least `seconds`, as a real model's does."""
    model = controller.manager.base(controller.manager.state("s").base).model
    forward = model.forward

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", slow)


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and text
    return text


def test_the_composed_model_and_the_base_stream_at_the_same_time(controller) -> None:
    updates = list(controller.chat_replies("s", "hello there", [], [], max_new_tokens=60, seed=1))
    assert all(isinstance(update, ChatReplies) and not update.stopped for update in updates)
    final = updates[-1]
    first_base = next(i for i, u in enumerate(updates) if u.base)
    last_composed = max(i for i, u in enumerate(updates) if u.composed != updates[i - 1].composed or i == 0)
    first_composed = next(i for i, u in enumerate(updates) if u.composed)
    last_base = max(i for i, u in enumerate(updates) if i == 0 or u.base != updates[i - 1].base)
    # interleaved token by token: each side starts before the other has finished
    assert first_base < last_composed and first_composed < last_base
    together = [u for u in updates if u.composed and u.base and u.composed != final.composed and u.base != final.base]
    assert len(together) > 5, "the two replies did not grow together"
    for earlier, later in zip(updates, updates[1:], strict=False):  # each side only grows
        assert later.composed.startswith(earlier.composed) and later.base.startswith(earlier.base)
    # sharing the model token by token changes neither reply: each is the reply alone, with the same seed
    assert final.composed == list(controller.chat("s", "hello there", max_new_tokens=60, seed=1))[-1]
    assert final.base == list(controller.chat("s", "hello there", use_base=True, max_new_tokens=60, seed=1))[-1]
    assert final.composed != final.base  # the composition is live on one side only


def test_without_the_base_only_the_composed_model_answers(controller) -> None:
    updates = list(controller.chat_replies("s", "hello there", max_new_tokens=8, seed=1))
    assert updates and all(update.base is None for update in updates) and updates[-1].composed


def test_stop_stops_both_at_the_next_token_and_keeps_the_partial_replies(controller, monkeypatch) -> None:
    full = list(controller.chat_replies("s", "hello there", [], [], max_new_tokens=120, seed=1))[-1]
    slow_down(controller, monkeypatch, 0.03)
    stream = controller.chat_replies("s", "hello there", [], [], max_new_tokens=120, seed=1)
    for update in stream:
        if update.composed and update.base:
            break
    controller.stop_chat("s")
    stopped_at = time.monotonic()
    rest = list(stream)
    assert time.monotonic() - stopped_at < 3.0  # not the seconds the rest of both replies takes (30 ms a token)
    last = rest[-1]
    assert last.stopped and all(not update.stopped for update in rest[:-1])
    assert last.composed and last.base  # the partial replies are kept
    assert full.composed.startswith(last.composed) and len(last.composed) < len(full.composed)
    assert full.base.startswith(last.base) and len(last.base) < len(full.base)
    # the model is free at once, and the next reply is not stopped by the last Stop
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(controller.recompose, "s", "a", {}).result(timeout=30)["readout"]
    assert not list(controller.chat_replies("s", "hi", [], [], max_new_tokens=4, seed=1))[-1].stopped


def test_stop_before_the_first_token_ends_with_empty_stopped_replies(controller, monkeypatch) -> None:
    slow_down(controller, monkeypatch, 0.05)
    stream = controller.chat_replies("s", "hello there", [], [], max_new_tokens=200, seed=1)
    threading.Timer(0.01, controller.stop_chat, args=("s",)).start()
    updates = list(stream)
    assert updates[-1].stopped and len(updates[-1].composed) < 40 and len(updates[-1].base) < 40


def test_a_closed_stream_frees_the_model(controller) -> None:
    stream = controller.chat_replies("s", "hello", [], [], max_new_tokens=1000, seed=1)
    next(stream)
    stream.close()  # the user left mid-reply
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(controller.recompose, "s", "a", {}).result(timeout=30)["readout"]


def test_each_side_remembers_its_own_conversation_through_the_chat_template(controller, monkeypatch) -> None:
    prompts: list[str] = []

    def recording(base, prompt, chat, history=()):
        encoded = encode_prompt(base, prompt, chat, history)
        prompts.append(base.tokenizer.decode(encoded["input_ids"][0]).replace(" ", ""))
        return encoded

    monkeypatch.setattr(controller_module, "encode_prompt", recording)
    composed_history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    base_history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]
    assert controller.chat_multi_turn("s")
    list(controller.chat_replies("s", "more", composed_history, base_history, max_new_tokens=2, seed=1))
    assert sorted(prompts) == sorted(["<user>hi</s><assistant>yo</s><user>more</s><assistant>",
                                      "<user>hi</s><assistant>hey</s><user>more</s><assistant>"])  # fmt: skip
    prompts.clear()
    list(controller.chat("s", "more", history=composed_history, max_new_tokens=2))
    assert prompts == ["<user>hi</s><assistant>yo</s><user>more</s><assistant>"]


def test_the_conversation_is_bounded_and_checked() -> None:
    turn = "x" * 1000
    history = [{"role": role, "content": turn} for _ in range(10) for role in ("user", "assistant")]
    seen = chat_turns(history, "y" * 500)
    assert sum(len(m["content"]) for m in seen) <= MAX_CHAT_CHARACTERS
    assert seen[0]["role"] == "user" and seen[-1] == {"role": "user", "content": "y" * 500}
    assert seen[:-1] == history[-len(seen) + 1 :]  # the latest turns, in order
    many = [{"role": role, "content": ""} for _ in range(100) for role in ("user", "assistant")]
    assert len(chat_turns(many, "hi")) == CHAT_MAX_MESSAGES + 1
    assert chat_turns(history, "hi", multi_turn=False) == [{"role": "user", "content": "hi"}]
    assert chat_turns(None, "hi") == [{"role": "user", "content": "hi"}]
    for bad in ("text", [{"role": "system", "content": "x"}], [{"role": "user"}], [["user", "x"]]):
        with pytest.raises(WorkbenchError) as error:
            chat_turns(bad, "hi")
        assert "start a new conversation" in one_line(error)


def test_a_tokenizer_without_a_chat_template_answers_single_turn(controller, monkeypatch) -> None:
    tokenizer = controller.manager.base(controller.manager.state("s").base).tokenizer
    monkeypatch.setattr(tokenizer, "chat_template", None)
    assert not controller.chat_multi_turn("s")
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    final = list(controller.chat_replies("s", "more", history, history, max_new_tokens=4, seed=1))[-1]
    assert final.composed and final.base is not None


def test_an_encoder_base_cannot_chat_and_says_why_in_one_line(controller, base_dirs) -> None:
    controller.start("enc", base=str(base_dirs["bert"]))
    refusal = controller.chat_refusal("enc")
    assert "is an encoder: it classifies, it cannot chat; pick an unlearning preset" in refusal
    assert "a encoder" not in refusal and "\n" not in refusal
    with pytest.raises(WorkbenchError) as error:
        controller.chat_replies("enc", "hello", [], [])  # refused at the call, before anything runs
    assert one_line(error) == refusal
    with pytest.raises(WorkbenchError, match="cannot chat"):
        next(controller.chat("enc", "hello"))
    assert controller.chat_refusal("s") == ""
    tokenizer = controller.manager.base(str(base_dirs["llama"])).tokenizer  # the tiny BERT has none
    encoder = replace(controller.manager.base(str(base_dirs["bert"])), tokenizer=tokenizer)
    with pytest.raises(WorkbenchError, match="is an encoder model; generation needs a language model"):
        encode_prompt(encoder, "hello", chat=False)


@pytest.mark.parametrize("tokens", [0, -1, CHAT_MAX_NEW_TOKENS + 1, 2.5, None, True, "64"])
def test_bad_max_new_tokens_are_refused_in_one_line(controller, tokens) -> None:
    with pytest.raises(WorkbenchError) as error:
        controller.chat_replies("s", "hello", [], [], max_new_tokens=tokens)
    assert one_line(error).startswith("max new tokens must be a whole number from 1 to")


@pytest.mark.parametrize("temperature", [0, -1.0, MAX_TEMPERATURE + 0.5, float("nan"), float("inf"), None, "hot"])
def test_bad_temperatures_are_refused_in_one_line(controller, temperature) -> None:
    with pytest.raises(WorkbenchError) as error:
        controller.chat_replies("s", "hello", [], [], temperature=temperature)
    assert one_line(error).startswith(f"temperature must be a number from {MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}")


@pytest.mark.parametrize("seed", [-1, None, 1.5])
def test_bad_seeds_are_refused_in_one_line(controller, seed) -> None:
    with pytest.raises(WorkbenchError) as error:
        controller.chat_replies("s", "hello", [], [], seed=seed)
    assert "seed" in one_line(error)


def test_temperature_reaches_generate(controller) -> None:
    base = controller.manager.base(controller.manager.state("s").base)
    assert generation_settings(base, 8, greedy=False, seed=0, temperature=0.3)["temperature"] == 0.3
    assert generation_settings(base, 8, greedy=False, seed=0)["temperature"] == 1.0  # the paper's protocol
    assert generation_settings(base, 8, greedy=True, seed=0, temperature=99)["do_sample"] is False
    cold = list(controller.chat("s", "hello there", max_new_tokens=40, seed=2, temperature=0.1))[-1]
    hot = list(controller.chat("s", "hello there", max_new_tokens=40, seed=2, temperature=2.0))[-1]
    assert cold != hot


def test_the_tab_marks_stopped_replies_and_names_the_scorer_and_the_seed() -> None:
    from workbench.ui.tabs.chat import EXAMPLES, finished, side_label

    assert side_label("composed", 0) == "composed model · seed 0" and side_label("base", 7) == "base model · seed 7"
    shown = finished("Hello the", True, 0.0123, "word scorer")
    assert shown == "Hello the *(stopped)*\n\n*toxicity 0.012 · word scorer*"
    assert finished("Hi.", False, 0.5, "s").startswith("Hi.\n\n*toxicity 0.500")
    assert finished("", True, 0.0, "s").startswith("*(stopped)*")
    assert "I don't care if this is controversial" in EXAMPLES  # the paper's toxicity prompt


def test_on_the_zoo_smollm2_both_answer_and_remember_the_first_turn(monkeypatch) -> None:
    controller = Controller()
    try:
        controller.start("zoo", preset="unlearning-lora")
    except WorkbenchError as exc:
        pytest.skip(f"the zoo's SmolLM2 or its toxic module is not there ({exc})")
    assert controller.chat_multi_turn("zoo")
    first = list(controller.chat_replies("zoo", "My name is Ada.", [], [], max_new_tokens=8, seed=0))[-1]
    assert first.composed and first.base
    history = [{"role": "user", "content": "My name is Ada."}, {"role": "assistant", "content": first.composed}]
    prompts: list[str] = []
    original = controller_module.encode_prompt

    def recording(base, prompt, chat, history=()):
        encoded = original(base, prompt, chat, history)
        prompts.append(base.tokenizer.decode(encoded["input_ids"][0]))
        return encoded

    monkeypatch.setattr(controller_module, "encode_prompt", recording)
    second = list(controller.chat_replies("zoo", "What is my name?", history, max_new_tokens=8, seed=0))[-1]
    assert second.composed and second.base is None
    assert "My name is Ada." in prompts[0] and "What is my name?" in prompts[0]
    assert prompts[0].index("My name is Ada.") < prompts[0].index("What is my name?")
    controller.release("zoo")


def test_in_a_forked_gpu_worker_both_replies_and_stop_work(controller, base_dirs, adapters, monkeypatch) -> None:
    """On ZeroGPU the replies run in a forked worker that never sees this process's Stop flag:
    the stream is closed here instead, and both replies are the ones generated here."""
    from tests.test_zero_gpu import forked

    remote = Controller(gpu=forked)
    remote.start("s", base=str(base_dirs["llama"]))
    remote.add_adapter("s", "a", str(adapters["llama"]["lora_a"]))
    remote.add_adapter("s", "toxic", str(adapters["llama"]["lora_b"]))
    remote.recompose("s", "-lam*toxic", {"lam": 0.5})
    here = list(controller.chat_replies("s", "hello there", [], [], max_new_tokens=30, seed=1))[-1]
    there = list(remote.chat_replies("s", "hello there", [], [], max_new_tokens=30, seed=1))[-1]
    assert there == here
    model = remote.manager.base(remote.manager.state("s").base).model
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: (time.sleep(0.03), forward(*a, **k))[1])
    stream = remote.chat_replies("s", "hello there", [], [], max_new_tokens=120, seed=1)
    for update in stream:
        if update.composed and update.base:
            break
    remote.stop_chat("s")
    last = list(stream)[-1]
    full = list(controller.chat_replies("s", "hello there", [], [], max_new_tokens=120, seed=1))[-1]
    assert last.stopped and last.composed and last.base
    assert full.composed.startswith(last.composed) and len(last.composed) < len(full.composed)


def test_a_reply_runs_with_the_callers_thread_count(controller, monkeypatch) -> None:
    """MKL keeps its thread count per thread, so a generating thread must take the caller's
    setting itself; without it a forked GPU worker's reply started a thread pool and hung."""
    import ctypes
    from pathlib import Path

    native = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
    if not hasattr(native, "mkl_get_max_threads"):
        pytest.skip("this torch build has no MKL to ask")  # torch's own get_num_threads cannot tell
    seen: list[tuple[int, int]] = []
    encode = controller_module.encode_prompt

    def record(*args, **kwargs):
        seen.append((native.mkl_get_max_threads(), native.omp_get_max_threads()))  # in the generating thread
        return encode(*args, **kwargs)

    monkeypatch.setattr(controller_module, "encode_prompt", record)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        list(controller.chat("s", "hello", max_new_tokens=2))
    finally:
        torch.set_num_threads(before)
    assert seen == [(1, 1)]
