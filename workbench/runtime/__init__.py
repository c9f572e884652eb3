"""Models in memory: loading bases, swapping patched tensors in and out, sessions and cache."""

from workbench.runtime.cache import CacheStats, PatchCache
from workbench.runtime.loading import LoadedBase, base_shapes_for, load_base_model
from workbench.runtime.patching import activate, base_lookup, deactivate
from workbench.runtime.session import SessionManager, SessionState

__all__ = [
    "CacheStats",
    "LoadedBase",
    "PatchCache",
    "SessionManager",
    "SessionState",
    "activate",
    "base_lookup",
    "base_shapes_for",
    "deactivate",
    "load_base_model",
]
