"""Running model calls on a Hugging Face ZeroGPU Space, and the same calls everywhere else.

On ZeroGPU, a call decorated with `spaces.GPU` runs in a forked worker that holds the GPU
for `duration` seconds; whatever the call changes in Python objects stays in that worker.
So only calls that read the session and return what they computed are sent there
(readouts, replies, sweep points, toxicity samples); every change to a session happens in
the server process, before or after. A composition folded in the worker is not kept
(the cache is best-effort), so every call stays correct when it must fold again.

A `GpuRunner` takes a function and the seconds it may need and returns what to call
instead: `on_gpu` on a Space, the function itself elsewhere (`here`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
GpuRunner = Callable[[F, float], F]
ZERO_GPU_LONGEST = 300.0  # seconds; a longer request would be refused by the Space


def here(fn: F, seconds: float) -> F:
    return fn


def on_gpu(fn: F, seconds: float) -> F:
    """`spaces.GPU(duration=seconds)(fn)` on a ZeroGPU Space, `fn` itself elsewhere."""
    if not os.environ.get("SPACES_ZERO_GPU"):
        return fn
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=int(min(max(seconds, 1.0), ZERO_GPU_LONGEST)))(fn)
