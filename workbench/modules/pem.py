"""The protocol every PEM type implements, so the algebra can treat them alike.

A type lives in one file (`lora.py`, `ia3.py`, `red.py`, `sparse.py`) and is listed in
`registry.py`. It reads and writes its own format, says which base parameters it needs
and at what shapes, combines a weighted list of its own kind (the algebra's two modes),
and describes its effect as `Edits`, which fold exactly into the base weights.
"""

from __future__ import annotations

import functools
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import torch

from workbench.modules.base_shapes import BaseShapes, check_shape
from workbench.modules.edits import Edits
from workbench.modules.heads import Head

Mode = Literal["exact", "paper", "naive"]
MODES: tuple[Mode, ...] = ("exact", "paper", "naive")
# "naive" is an ablation (the paper's Table 11): every stored parameter scaled by its
# coefficient, as if a module were a plain vector of weights. It is what ⊖ is built to
# avoid: -1·LoRA gives (-B)(-A) = BA, the module unchanged; -1·(IA)³ gives -l.


class PEM(ABC):
    """A loaded parameter-efficient module; immutable once built."""

    pem_type: ClassVar[str]
    base_model: str | None
    source: str
    head: Head | None = None  # a classification module's task head (see heads.py)

    @classmethod
    @abstractmethod
    def detect(cls, folder: Path) -> bool:
        """Whether `folder` holds a module of this type."""

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

    @classmethod
    def check_combinable(cls, terms: Sequence[tuple[float, Self]], mode: Mode) -> None:
        """Raise IncompatibleError if `combine` would refuse these terms; cheap, no tensors built.
        The default accepts any terms (sparse vectors: shapes are checked by `compose`)."""
        return None

    @classmethod
    @abstractmethod
    def combine(cls, terms: Sequence[tuple[float, Self]], mode: Mode) -> Self:
        """Σ cᵢ·moduleᵢ for modules of this type, in `mode` (DESIGN.md, the algebra)."""

    @property
    @abstractmethod
    def targets(self) -> list[str]:
        """The module paths (or parameters, for sparse vectors) the module touches."""

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
