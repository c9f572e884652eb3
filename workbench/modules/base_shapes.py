"""The parameter shapes of a base model, read without loading its weights.

Compose-time checks only need names and shapes: a local folder's safetensors headers
give them in milliseconds, and a hub id (when the user asks for one) gives them through
the hub's metadata API. Names are matched up to a leading prefix, because a PEFT
adapter for `BertForSequenceClassification` says `bert.encoder...` where a checkpoint
saved from `BertModel` says `encoder...`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

from workbench.errors import IncompatibleError, ModuleFormatError, WorkbenchError

Shape = tuple[int, ...]


@dataclass(frozen=True)
class BaseShapes:
    """Names and shapes of a base model's parameters, plus what its config says."""

    name: str
    shapes: Mapping[str, Shape]
    model_type: str | None = None

    def resolve(self, parameter: str) -> str | None:
        """The base's own name for `parameter`: itself, or the one key equal up to a leading prefix."""
        if parameter in self.shapes:
            return parameter
        matches = [key for key in self.shapes if parameter.endswith("." + key) or key.endswith("." + parameter)]
        return matches[0] if len(matches) == 1 else None

    def lookup(self, parameter: str) -> Shape | None:
        key = self.resolve(parameter)
        return None if key is None else self.shapes[key]

    @staticmethod
    def from_folder(folder: str | Path) -> BaseShapes:
        folder = Path(folder)
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise ModuleFormatError(f"{folder} holds no *.safetensors weights; is it a model folder?")
        shapes: dict[str, Shape] = {}
        for path in files:
            try:
                with safe_open(str(path), framework="pt") as handle:
                    for key in handle.keys():
                        shapes[key] = tuple(handle.get_slice(key).get_shape())
            except Exception as exc:  # safetensors raises several types for a bad header
                raise ModuleFormatError(f"{path} is not a readable safetensors file ({exc})") from None
        model_type = None
        config = folder / "config.json"
        if config.is_file():
            try:
                model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                raise ModuleFormatError(f"{config} is not valid JSON") from None
        return BaseShapes(name=str(folder), shapes=shapes, model_type=model_type)

    @staticmethod
    def from_hub(repo_id: str) -> BaseShapes:
        """Shapes of a hub model from its safetensors metadata: network, only on request."""
        try:
            from huggingface_hub import get_safetensors_metadata

            metadata = get_safetensors_metadata(repo_id)
        except Exception as exc:  # offline, unknown repo, no safetensors: all one message
            raise WorkbenchError(
                f"could not read the hub model {repo_id!r} ({type(exc).__name__}); "
                "offline or unknown id? Pass a local model folder instead"
            ) from None
        shapes = {
            name: tuple(info.shape)
            for file_metadata in metadata.files_metadata.values()
            for name, info in file_metadata.tensors.items()
        }
        return BaseShapes(name=repo_id, shapes=shapes)

    @staticmethod
    def from_named_shapes(name: str, shapes: Mapping[str, Shape], model_type: str | None = None) -> BaseShapes:
        return BaseShapes(name=name, shapes=dict(shapes), model_type=model_type)


def check_shape(base: BaseShapes, parameter: str, expected: tuple[int | None, ...], module: str) -> None:
    """Refuse a module whose tensor for `parameter` cannot fit the base (None = any size)."""
    actual = base.lookup(parameter)
    if actual is None:
        raise IncompatibleError(f"module {module} targets {parameter}, which base {base.name} does not have")
    if len(actual) != len(expected) or any(e is not None and e != a for e, a in zip(expected, actual, strict=False)):
        shown = tuple("?" if e is None else e for e in expected)
        raise IncompatibleError(
            f"module {module} does not fit base {base.name}: {parameter} is {actual} there, the module needs {shown}"
        )
