"""Handlers in progress, so that a process about to exit can wait for them.

The interpreter must not shut down while a Gradio worker thread is inside torch (running
a model, or freeing a scratch session's tensors): the process aborts with "terminate called
without an active exception" (status 134). `Controller.close` stops the background runs,
waits here until every handler has returned, then holds the models.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class InFlight:
    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    @contextmanager
    def running(self) -> Iterator[None]:
        with self._idle:
            self._count += 1
        try:
            yield
        finally:
            with self._idle:
                self._count -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)


HANDLERS = InFlight()
