"""The protocol every PEM type implements, so the algebra can treat them alike.

A type lives in one file (`lora.py`, `ia3.py`, `red.py`, `sparse.py`) and is listed in
`registry.py`. It reads and writes its own format, says which base parameters it needs
and at what shapes, combines a weighted list of its own kind (the algebra's two modes),
and describes its effect as `Edits`, which fold exactly into the base weights.

Everything the other layers need to know about a type is on its class (its names, its
files, the merge methods it takes), so that no layer keeps a table of types of its own.
"""

from __future__ import annotations

import functools
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

import torch

from workbench.errors import IncompatibleError
from workbench.modules.base_shapes import BaseShapes, check_shape
from workbench.modules.edits import Edits, Layout
from workbench.modules.heads import OUR_PREFIX, PEFT_PREFIX, Head, head_tensors, write_head_config
from workbench.modules.tensor_io import read_json, write_json, write_safetensors

Mode = Literal["exact", "paper", "naive"]
MODES: tuple[Mode, ...] = ("exact", "paper", "naive")
# "naive" is an ablation (the paper's Table 11): every stored parameter scaled by its
# coefficient, as if a module were a plain vector of weights. It is what ⊖ is built to
# avoid: -1·LoRA gives (-B)(-A) = BA, the module unchanged; -1·(IA)³ gives -l.


Part = TypeVar("Part")  # what a type holds per target: LoRA's factors, (IA)³'s vector, ...


class PEM(ABC, Generic[Part]):
    """A loaded parameter-efficient module; immutable once built."""

    pem_type: ClassVar[str]  # the name in pem_config.json, the registry and the exports
    display_name: ClassVar[str]  # how people write it, for labels and tables
    description: ClassVar[str]  # what it edits, in one line
    config_file: ClassVar[str]  # the file `detect` reads, which names the type
    weights_file: ClassVar[str]
    peft_type: ClassVar[str | None] = None  # PEFT's name for the type; None: the workbench's own format
    config_keys: ClassVar[tuple[str, ...] | None] = None  # the config fields it keeps; None: all (PEFT's)
    # The merge methods beyond linear that a composition of this type alone takes; their
    # names and code are the algebra's (`workbench.algebra.merging`).
    merge_methods: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, parts: Mapping[str, Part], config: dict[str, Any], source: str = "", head: Head | None = None
    ) -> None:
        self.parts = dict(sorted(parts.items()))
        self.config = config if self.config_keys is None else {k: config.get(k) for k in self.config_keys}
        self.base_model: str | None = config.get("base_model_name_or_path")
        self.source = source
        self.head = head  # a classification module's task head (see heads.py)

    @classmethod
    def detect(cls, folder: Path) -> bool:
        """Whether `folder` holds a module of this type: its config file names the type."""
        config = folder / cls.config_file
        if not config.is_file():
            return False
        data = read_json(config)
        if cls.peft_type is not None:
            return str(data.get("peft_type", "")).upper() == cls.peft_type
        return data.get("pem_type") == cls.pem_type

    @property
    def layout(self) -> Layout:
        """How the base stores the target weights: (in, out) for GPT-2's Conv1D (PEFT's fan_in_fan_out)."""
        return "in_out" if self.config.get("fan_in_fan_out") else "out_in"

    @property
    def targets(self) -> list[str]:
        """The module paths (or parameters, for sparse vectors) the module touches."""
        return list(self.parts)

    @classmethod
    def head_prefix(cls) -> str:
        """Where a task head's tensors sit in the weights file (see heads.py)."""
        return PEFT_PREFIX if cls.peft_type is not None else OUR_PREFIX

    @classmethod
    @abstractmethod
    def load(cls, folder: Path) -> Self:
        """Read a module, raising ModuleFormatError that names any missing or bad part."""

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write the module in its own format (PEFT's where one exists)."""

    @abstractmethod
    def expected_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """Base parameter name -> the shape this module needs there (None: any size)."""

    @abstractmethod
    def edits(self) -> Edits:
        """The module's effect on the base model, foldable into its weights."""

    @abstractmethod
    def delta_tensors(self) -> list[torch.Tensor]:
        """The module's delta form (what it changes, relative to no change), for norms and counts."""

    def write_files(self, folder: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """`save`'s last step, the same for every type: the config, the tensors with the task
        head beside them, and the head's labels."""
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / self.config_file, config)
        write_safetensors(folder / self.weights_file, tensors | head_tensors(self.head, self.head_prefix()))
        write_head_config(folder, self.head)

    @classmethod
    def check_combinable(cls, terms: Sequence[tuple[float, Self]], mode: Mode) -> None:
        """Raise IncompatibleError if `combine` would refuse these terms; cheap, no tensors built.
        The default checks only that the modules agree on the weight layout (sparse vectors:
        shapes are checked by `compose`)."""
        if len({module.layout for _, module in terms}) > 1:
            raise IncompatibleError(f"these {cls.display_name} modules disagree on fan_in_fan_out, so they target "
                                    "different weight layouts; use modules made for one base")  # fmt: skip

    @staticmethod
    def by_target(terms: Sequence[tuple[float, PEM[Part]]]) -> dict[str, list[tuple[float, Part]]]:
        """Per target, in sorted order, the (coefficient, part) of each term that has it, in
        the terms' order: a module without a target adds nothing there."""
        grouped: dict[str, list[tuple[float, Part]]] = {}
        for coefficient, module in terms:
            for target, part in module.parts.items():
                grouped.setdefault(target, []).append((coefficient, part))
        return dict(sorted(grouped.items()))

    @classmethod
    @abstractmethod
    def combine(cls, terms: Sequence[tuple[float, Self]], mode: Mode) -> Self:
        """Σ cᵢ·moduleᵢ for modules of this type, in `mode` (docs/architecture.md, the algebra)."""

    @property
    @abstractmethod
    def num_parameters(self) -> int:
        """How many numbers the module stores."""

    @property
    def delta_norm(self) -> float:
        return float(sum(float(t.float().pow(2).sum()) for t in self.delta_tensors()) ** 0.5)

    @functools.cached_property
    def needed_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """`expected_shapes()`, computed once: modules are immutable."""
        return self.expected_shapes()

    @functools.cached_property
    def fingerprint(self) -> str:
        """A digest of what the module does, so caches never confuse two modules that
        share a name in different sessions."""
        digest = hashlib.sha256(self.pem_type.encode())
        edits = self.edits()
        for name, deltas in sorted(edits.deltas.items()):
            digest.update(name.encode())
            for delta in deltas:
                for value in vars(delta).values():
                    _update(digest, value)
        for path, scaling in sorted(edits.scalings.items()):
            digest.update(path.encode())
            for value in vars(scaling).values():
                _update(digest, value)
        for name, tensor in sorted((self.head.tensors if self.head else {}).items()):
            digest.update(name.encode())
            _update(digest, tensor)
        return digest.hexdigest()[:16]

    def check_fits(self, base: BaseShapes, name: str) -> None:
        """Raise IncompatibleError if any target is missing from `base` or has the wrong shape."""
        for parameter, shape in self.needed_shapes.items():
            check_shape(base, parameter, shape, name)


def _update(digest: Any, value: object) -> None:
    if isinstance(value, torch.Tensor):
        digest.update(str((value.dtype, tuple(value.shape))).encode())
        digest.update(value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    else:
        digest.update(repr(value).encode())


def strip_prefix(key: str, prefix: str = "base_model.model.") -> str:
    return key[len(prefix) :] if key.startswith(prefix) else key
