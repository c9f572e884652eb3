"""Reading and writing PEM files safely: safetensors and JSON, `.pth` only as weights.

Every reader turns a missing file, a malformed file, or a NaN/Inf value into a
ModuleFormatError that names the file (and the tensor, or the config field), so a user
knows what to fix. `ConfigFields` is the one place a config's fields are type-checked.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

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
    except (ValueError, RecursionError):  # a number of thousands of digits, or nesting thousands deep
        raise ModuleFormatError(f"{path} holds a number too long or nesting too deep to read") from None
    except OSError as exc:
        raise ModuleFormatError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise ModuleFormatError(f"{path} must hold a JSON object")
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def first_non_finite(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """The name of the first floating tensor holding NaN or Inf, else None."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def check_finite(tensors: Mapping[str, torch.Tensor], source: Path | str) -> None:
    name = first_non_finite(tensors)
    if name is not None:
        raise ModuleFormatError(f"{source}: tensor {name} holds NaN or Inf values; the module is broken")


def read_safetensors(path: Path, integer_suffix: str | None = None) -> dict[str, torch.Tensor]:
    """All tensors of `path` on the CPU, floats as float32, after checking they are finite.
    Weights are floating point: an integer tensor is refused, except under a name ending in
    `integer_suffix` (a sparse vector's indices)."""
    if not path.is_file():
        raise ModuleFormatError(f"{path} does not exist")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModuleFormatError(f"{path} is not a readable safetensors file ({exc})") from None
    check_floating(tensors, path, integer_suffix)
    check_finite(tensors, path)
    return {name: t.float() if t.is_floating_point() else t for name, t in tensors.items()}


def check_floating(tensors: Mapping[str, torch.Tensor], source: Path | str, integer_suffix: str | None = None) -> None:
    for name, tensor in tensors.items():
        if not tensor.is_floating_point() and not (integer_suffix and name.endswith(integer_suffix)):
            raise ModuleFormatError(f"{source}: tensor {name} is {tensor.dtype}; weights must be floating point")


def read_torch_weights(path: Path) -> dict[str, torch.Tensor]:
    """A `.pth` state dict, loaded with weights_only=True so no code in it can run."""
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol; our line says what matters
            warnings.simplefilter("ignore")
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModuleFormatError(f"{path} does not exist") from None
    except Exception as exc:  # torch raises many types for a bad or unsafe pickle
        raise ModuleFormatError(f"{path} is not a weights-only torch state dict ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModuleFormatError(f"{path} must hold a dict of tensors")
    check_floating(data, path)
    check_finite(data, path)
    return {name: t.float() if t.is_floating_point() else t for name, t in data.items()}


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file({name: t.detach().contiguous().cpu() for name, t in tensors.items()}, str(path))


T = TypeVar("T")
_UNSET: Any = object()  # "read the field itself", as opposed to a value passed in


class ConfigFields:
    """A module config's JSON, read through typed accessors.

    A hand-edited or foreign config can say `"r": "four"`, `"lora_alpha": NaN` (Python's
    JSON reads NaN, Infinity and 1e999) or hold a broken regex; each accessor refuses such
    a value with one line naming the file and the field, so none reaches the arithmetic.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = read_json(path)

    def refuse(self, field: str, wanted: str, value: Any) -> ModuleFormatError:
        shown = json.dumps(value)[:60]
        return ModuleFormatError(f"{self.path}: field {field} must be {wanted}, not {shown}; fix the config")

    def flag(self, field: str) -> bool:
        """A true/false field; absent or null is false."""
        value = self.data.get(field)
        if value is not None and not isinstance(value, bool):
            raise self.refuse(field, "true or false", value)
        return bool(value)

    def text(self, field: str) -> str | None:
        """An optional string field, such as base_model_name_or_path."""
        value = self.data.get(field)
        if value is not None and not isinstance(value, str):
            raise self.refuse(field, "a string", value)
        return value

    def positive_int(self, field: str, default: int | None = None, value: Any = _UNSET) -> int:
        """A whole number ≥ 1 (a rank): `value` when given, else the field, else `default`."""
        value = self.data.get(field, default) if value is _UNSET else value
        number = _as_finite(value)
        if number is not None and number.is_integer() and number >= 1:
            return int(value)
        raise self.refuse(field, "a whole number of at least 1", value)

    def positive_number(self, field: str, default: float | None = None, value: Any = _UNSET) -> float:
        """A finite number > 0 (an alpha): `value` when given, else the field, else `default`."""
        value = self.data.get(field, default) if value is _UNSET else value
        number = _as_finite(value)
        if number is not None and number > 0:
            return number
        raise self.refuse(field, "a finite number above 0", value)

    def fraction(self, field: str) -> float | None:
        """An optional share in (0, 1], such as a density."""
        value = self.data.get(field)
        number = _as_finite(value)
        if value is None or (number is not None and 0 < number <= 1):
            return number
        raise self.refuse(field, "null or a number in (0, 1]", value)

    def targets(self, field: str) -> str | list[str] | None:
        """PEFT's target list: null, a list of module names, or one regular expression."""
        value = self.data.get(field)
        if value is None or (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            return value
        if isinstance(value, str):
            self._compile(field, value)
            return value
        raise self.refuse(field, "a list of module names or a regular expression", value)

    def name_list(self, field: str) -> list[str] | None:
        """null or a list of names (never one string, which would be read letter by letter)."""
        value = self.data.get(field)
        if value is None or (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            return value
        raise self.refuse(field, "a list of names", value)

    def patterns(self, field: str, read: Callable[[str, Any], T]) -> dict[str, T]:
        """PEFT's rank_pattern/alpha_pattern: {regex key: value}, each value checked by `read`."""
        value = self.data.get(field)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.refuse(field, "an object of {module pattern: value}", value)
        for key in value:
            self._compile(field, key)
        return {key: read(f"{field}[{json.dumps(key)}]", item) for key, item in value.items()}

    def shapes(self, field: str) -> dict[str, tuple[int, ...]]:
        """{tensor name: shape}, each shape a list of whole numbers ≥ 0; at least one entry."""
        value = self.data.get(field)
        if not isinstance(value, dict) or not value:
            raise self.refuse(field, "an object listing the tensors' shapes", value)
        shapes = {}
        for name, shape in value.items():
            if not isinstance(shape, list) or not all(_is_size(n) for n in shape):
                raise self.refuse(f"{field}[{json.dumps(name)}]", "a list of whole numbers ≥ 0", shape)
            shapes[name] = tuple(int(n) for n in shape)
        return shapes

    def _compile(self, field: str, pattern: str) -> None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise self.refuse(field, f"a valid regular expression ({exc})", pattern) from None


def _as_finite(value: Any) -> float | None:
    """`value` as a finite float, or None for anything else: text, JSON true (a bool, not a
    number), NaN, Infinity, 1e999 (which JSON reads as inf) or an integer too big for a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _is_size(value: Any) -> bool:
    number = _as_finite(value)
    return number is not None and number.is_integer() and number >= 0
