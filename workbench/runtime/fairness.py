"""Sharing one model between users: a lock that serves callers in arrival order, and a way
for a long job to step aside between forward batches.

One base model runs one composition at a time, so its calls are serialised. A chat reply
or a toxicity run takes seconds to minutes; without stepping aside, every slider release
of every other user waits for all of it. With `between_batches()` called between forward
passes (generation steps, sampled batches), a waiting call runs in the gap, and the long
job then takes the lock back with its own composition put back live: a slider release
waits at most one batch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch


class FairLock:
    """A re-entrant lock granted in arrival order, with `step_aside` for long holders.

    Python's locks wake an arbitrary waiter (often the releasing thread itself, which
    re-acquires at once), so a loop that releases and re-acquires never lets anyone in.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._queue: deque[object] = deque()

    def _wait_for_turn(self, timeout: float | None = None) -> bool:
        ticket = object()
        self._queue.append(ticket)
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._owner is not None or self._queue[0] is not ticket:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self._queue.remove(ticket)
                self._condition.notify_all()  # the next in line may be free to go now
                return False
            self._condition.wait(remaining)
        self._queue.popleft()
        return True

    def acquire(self, timeout: float | None = None) -> bool:
        me = threading.get_ident()
        with self._condition:
            if self._owner == me:
                self._depth += 1
                return True
            if not self._wait_for_turn(timeout):
                return False
            self._owner, self._depth = me, 1
            return True

    def release(self) -> None:
        with self._condition:
            if self._owner != threading.get_ident():
                raise RuntimeError("cannot release a lock this thread does not hold")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._condition.notify_all()

    def step_aside(self) -> bool:
        """If others wait, let those already queued run, then take the lock back at the same
        depth. Returns whether anyone ran in between (the caller must then restore its state)."""
        me = threading.get_ident()
        with self._condition:
            if self._owner != me:
                raise RuntimeError("cannot step aside from a lock this thread does not hold")
            if not self._queue:
                return False
            depth = self._depth
            self._owner, self._depth = None, 0
            self._condition.notify_all()
            self._wait_for_turn()
            self._owner, self._depth = me, depth
            return True

    @property
    def waiting(self) -> int:
        with self._condition:
            return len(self._queue)

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_local = threading.local()


@contextmanager
def stepping_aside_with(restore: Callable[[], None], lock: FairLock) -> Iterator[None]:
    """Inside a model call: make `between_batches()` step aside from `lock` and then call
    `restore` (put this caller's composition back live). Nests: the innermost call wins."""
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append((lock, restore))
    try:
        yield
    finally:
        stack.pop()


def between_batches() -> None:
    """Call between two forward passes of a long job: waiting model calls run now.

    The RNG state is kept across the gap, so a sampled reply is the same whether or not
    others ran in between."""
    stack = getattr(_local, "stack", None)
    if not stack:
        return
    lock, restore = stack[-1]
    if not lock.waiting:
        return
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    if lock.step_aside():
        restore()
    torch.set_rng_state(rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state_all(cuda_rng)


class StepAsideEachToken:
    """A `generate` stopping criterion that never stops: it calls `between_batches()`
    after every generated token."""

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        between_batches()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
