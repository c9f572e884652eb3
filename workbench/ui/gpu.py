"""`spaces.GPU` on Hugging Face ZeroGPU Spaces, a no-op everywhere else.

ZeroGPU runs decorated calls in a forked worker, so the SessionManager's cache is
best-effort there; every call stays correct because a miss re-folds the composition.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def on_gpu(fn: F) -> F:
    if os.environ.get("SPACES_ZERO_GPU"):
        try:
            import spaces
        except ImportError:
            return fn
        return spaces.GPU(fn)
    return fn
