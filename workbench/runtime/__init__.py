"""Models in memory: swapping patched tensors in and out of a loaded model."""

from workbench.runtime.patching import activate, base_lookup, deactivate

__all__ = ["activate", "base_lookup", "deactivate"]
