"""Reading and writing PEM files safely: safetensors and JSON, `.pth` only as weights.

Every reader turns a missing file, a malformed file, or a NaN/Inf value into a
ModuleFormatError that names the file (and the tensor), so a user knows what to fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from workbench.errors import ModuleFormatError


def require_file(folder: Path, name: str, what: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise ModuleFormatError(f"{folder} has no {name}; a {what} folder needs it")
    return path


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModuleFormatError(f"{path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModuleFormatError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModuleFormatError(f"{path} must hold a JSON object")
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def check_finite(tensors: dict[str, torch.Tensor], source: Path | str) -> None:
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModuleFormatError(f"{source}: tensor {name} holds NaN or Inf values; the module is broken")


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of `path` on the CPU, floats as float32, after checking they are finite."""
    if not path.is_file():
        raise ModuleFormatError(f"{path} does not exist")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModuleFormatError(f"{path} is not a readable safetensors file ({exc})") from None
    check_finite(tensors, path)
    return {name: t.float() if t.is_floating_point() else t for name, t in tensors.items()}


def read_torch_weights(path: Path) -> dict[str, torch.Tensor]:
    """A `.pth` state dict, loaded with weights_only=True so no code in it can run."""
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModuleFormatError(f"{path} does not exist") from None
    except Exception as exc:  # torch raises many types for a bad or unsafe pickle
        raise ModuleFormatError(f"{path} is not a weights-only torch state dict ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModuleFormatError(f"{path} must hold a dict of tensors")
    check_finite(data, path)
    return {name: t.float() if t.is_floating_point() else t for name, t in data.items()}


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file({name: t.detach().contiguous().cpu() for name, t in tensors.items()}, str(path))
