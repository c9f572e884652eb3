"""Swap patched tensors into a live model, and swap the base tensors back exactly.

Activation replaces each parameter's storage (`param.data = patched`) and keeps the
original storage aside, so deactivation restores bit-identical base weights with no
copy of the model. A bias the base lacks (RED on LLaMA's down_proj) is added, then
removed again.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from workbench.errors import IncompatibleError


@dataclass
class Saved:
    """What `deactivate` needs: the original storages, and the biases that were added."""

    originals: dict[str, torch.Tensor]
    added: list[str]


def base_lookup(model: nn.Module) -> Callable[[str], torch.Tensor | None]:
    """`fold`'s view of the base: parameter name -> its current tensor (or None)."""
    parameters = dict(model.named_parameters(remove_duplicate=False))

    def lookup(name: str) -> torch.Tensor | None:
        parameter = parameters.get(name)
        return None if parameter is None else parameter.data

    return lookup


_MODULES: weakref.WeakKeyDictionary[nn.Module, dict[str, nn.Module]] = weakref.WeakKeyDictionary()


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The module holding parameter `name`, from a path index built once per model."""
    modules = _MODULES.get(model)
    if modules is None:
        modules = _MODULES[model] = dict(model.named_modules(remove_duplicate=False))
    path, _, attribute = name.rpartition(".")
    module = modules.get(path)
    if module is None:
        raise IncompatibleError(f"the model has no module {path!r} for parameter {name}")
    return module, attribute


def activate(model: nn.Module, patched: Mapping[str, torch.Tensor]) -> Saved:
    """Put `patched` into `model` and return what restores it."""
    saved = Saved({}, [])
    for name, tensor in patched.items():
        module, attribute = _owner(model, name)
        current = getattr(module, attribute, None)
        if current is None:
            if attribute != "bias":
                raise IncompatibleError(f"the model has no parameter {name}")
            module.bias = nn.Parameter(tensor, requires_grad=False)
            saved.added.append(name)
            continue
        if current.shape != tensor.shape:
            raise IncompatibleError(
                f"{name} is {tuple(current.shape)} in the model, {tuple(tensor.shape)} in the patch"
            )
        saved.originals[name] = current.data
        current.data = tensor
    return saved


def deactivate(model: nn.Module, saved: Saved) -> None:
    """Restore the exact base tensors that `activate` replaced."""
    for name, original in saved.originals.items():
        module, attribute = _owner(model, name)
        getattr(module, attribute).data = original
    for name in saved.added:
        module, _ = _owner(model, name)
        module.bias = None
