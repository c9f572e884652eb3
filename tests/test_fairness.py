"""One model, many users: the base's lock serves callers in order, and a long job steps
aside between tokens, so a slider release waits one token, not a whole reply."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from workbench.runtime.fairness import FairLock, between_batches
from workbench.ui.controller import Controller


def test_the_lock_serves_waiters_in_arrival_order_and_re_enters() -> None:
    lock, order = FairLock(), []
    lock.acquire()
    lock.acquire()  # re-entrant
    threads = []
    for index in range(4):
        thread = threading.Thread(target=lambda i=index: (lock.acquire(), order.append(i), lock.release()))
        thread.start()
        threads.append(thread)
        while lock.waiting < index + 1:
            time.sleep(0.001)
    lock.release()
    assert order == []  # still held once
    lock.release()
    for thread in threads:
        thread.join(timeout=5)
    assert order == [0, 1, 2, 3]
    with pytest.raises(RuntimeError):
        lock.release()


def test_stepping_aside_lets_the_waiters_in_and_takes_the_lock_back() -> None:
    lock, ran = FairLock(), []
    with lock:
        assert lock.step_aside() is False  # nobody waits: nothing happens
        waiter = threading.Thread(target=lambda: (lock.acquire(), ran.append("waiter"), lock.release()))
        waiter.start()
        while not lock.waiting:
            time.sleep(0.001)
        assert lock.step_aside() is True and ran == ["waiter"]
    waiter.join(timeout=5)


@pytest.fixture
def controller(base_dirs, adapters, monkeypatch):
    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", str(base_dirs["llama"].parent.parent))
    # a release's live readout samples toxicity: each token is a turn at the lock; keep it short
    monkeypatch.setattr("workbench.ui.controller.LIVE_SAMPLES", 1)
    monkeypatch.setattr("workbench.ui.controller.LIVE_TOKENS", 2)
    controller = Controller()
    for session in ("chatty", "slider"):
        controller.start(session, base=str(base_dirs["llama"]))
        controller.add_adapter(session, "a", str(adapters["llama"]["lora_a"]))
        controller.add_adapter(session, "toxic", str(adapters["llama"]["lora_b"]))
    controller.recompose("chatty", "-lam*toxic", {"lam": 0.7})
    return controller


def test_a_slider_release_runs_between_two_batches_of_a_long_job(controller) -> None:
    """A long job (200 batches) on one session; a slider release on another runs in a gap,
    and the long job finds its own composition live again after every gap."""
    manager = controller.manager
    progress: dict[str, object] = {"batches": 0, "own": True}

    def long_job() -> None:
        with manager.model_for("chatty") as base:
            for _ in range(200):
                between_batches()
                mine = manager._live[base.key].key == manager.cache_key(manager.state("chatty"))
                progress["own"] = progress["own"] and mine
                time.sleep(0.005)  # a forward batch
                progress["batches"] = int(progress["batches"]) + 1

    with ThreadPoolExecutor(max_workers=2) as pool:
        job = pool.submit(long_job)
        while not progress["batches"]:
            time.sleep(0.001)
        shown = pool.submit(controller.recompose, "slider", "lam*a", {"lam": 0.4}).result(timeout=60)
        at = int(progress["batches"])
        job.result(timeout=60)
    assert shown["detail"].startswith("next token")
    assert at < 150, f"the slider release waited for {at} of 200 batches"
    assert progress["own"], "the long job ran a batch on another session's composition"


def test_replies_stepping_aside_are_the_replies_alone(controller) -> None:
    alone = list(controller.chat("chatty", "tell me a story", max_new_tokens=60, seed=3))[-1]
    with ThreadPoolExecutor(max_workers=3) as pool:
        replies = [pool.submit(lambda: list(controller.chat("chatty", "tell me a story", max_new_tokens=60,
                                                            seed=3))[-1]) for _ in range(2)]  # fmt: skip
        moves = [pool.submit(controller.recompose, "slider", "lam*a", {"lam": lam}) for lam in (0.1, 0.6, 0.9)]
        assert [reply.result(timeout=120) for reply in replies] == [alone, alone]
        assert all(move.result(timeout=120)["readout"] for move in moves)


def test_a_long_job_keeps_its_own_composition_when_its_session_moves_on(controller) -> None:
    """The same user moves the slider while their own long job runs: the job finishes on the
    composition it started with; the new λ is what the session runs next."""
    manager = controller.manager
    seen: list[object] = []
    started = threading.Event()

    def long_job() -> None:
        with manager.model_for("chatty") as base:
            started.set()
            for _ in range(100):
                between_batches()
                seen.append(manager._live[base.key].key)
                time.sleep(0.005)

    with ThreadPoolExecutor(max_workers=2) as pool:
        job = pool.submit(long_job)
        started.wait(timeout=30)
        first_key = manager._live[manager.base(manager.state("chatty").base).key].key
        pool.submit(controller.recompose, "chatty", "-lam*toxic", {"lam": 0.2}).result(timeout=60)
        job.result(timeout=60)
    assert set(seen) == {first_key}
    assert manager.state("chatty").values == {"lam": 0.2}


def test_a_timed_acquire_gives_up_and_leaves_the_queue_as_it_was() -> None:
    lock, order = FairLock(), []
    lock.acquire()
    got = []
    thread = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.05)))
    thread.start()
    thread.join()
    assert got == [False] and lock.waiting == 0
    waiter = threading.Thread(target=lambda: (lock.acquire(), order.append("next"), lock.release()))
    waiter.start()
    lock.release()
    waiter.join(timeout=5)
    assert order == ["next"]  # the one that gave up did not block the line


def test_at_exit_a_model_call_stops_at_its_next_step_and_waits(controller) -> None:
    """`close` holds the models: a long generation stops between two tokens and waits in
    Python, so the interpreter never exits with a thread inside torch (status 134)."""
    replies = controller.chat("chatty", "hello", max_new_tokens=200)
    next(replies)
    worker = threading.Thread(target=lambda: list(replies), daemon=True)
    worker.start()
    controller.close(timeout=10)
    base = controller.manager.base(controller.manager.state("chatty").base)
    assert base.lock._owner == threading.get_ident()  # this thread holds it for good
    # the generation either saw the Stop that close sets and ended, or waits between two tokens
    deadline = time.monotonic() + 10
    while worker.is_alive() and base.lock.waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.is_alive() or base.lock.waiting == 1
    base.lock.release()  # this process goes on with other tests: let the generation end
    worker.join(timeout=30)
    assert not worker.is_alive()
