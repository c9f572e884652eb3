"""Composition: an expression, parameter values and a mode, applied to loaded PEMs.

`compose` groups the expression's terms by PEM type and lets each type combine its own
terms (exact or paper mode). One type gives one composed PEM, exportable in that type's
format. Several types stack in exact mode (additive before multiplicative, see
`workbench.modules.edits`) and export as a composition folder that reloads to the same
composition. Paper mode refuses mixed types, as the reference implementation would.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from pydantic import BaseModel, FiniteFloat, ValidationError

from workbench.algebra.expression import LinearCombination, parse
from workbench.algebra.merging import MergeFields, MergeOptions, check_merge, merge_terms
from workbench.errors import ExpressionError, IncompatibleError, WorkbenchError, validation_line
from workbench.modules.edits import Edits
from workbench.modules.heads import Head, combine_heads
from workbench.modules.pem import MODES, PEM, Mode
from workbench.modules.registry import PEM_TYPES, load_module
from workbench.modules.tensor_io import read_json, require_file, write_json

COMPOSITION_FILE = "composition.json"

CompositionKey = tuple[str, tuple[tuple[str, float], ...], str, MergeOptions]


@dataclass(frozen=True)
class Composition:
    """The result of composing: one combined PEM per type present, in stacking order.

    Everything that can be wrong is checked when it is built; the combined tensors
    (`parts`) are computed on first use, so a cache keyed by `key` can skip them.
    """

    combination: LinearCombination
    values: tuple[tuple[str, float], ...]
    mode: Mode
    merge: MergeOptions
    coefficients: Mapping[str, float]
    groups: tuple[tuple[str, tuple[tuple[float, PEM], ...]], ...] = field(compare=False, repr=False)

    @property
    def key(self) -> CompositionKey:
        """Canonical expression, values, mode and merge options: what keys every cache."""
        return (self.combination.canonical, self.values, self.mode, self.merge)

    @property
    def pem_types(self) -> tuple[str, ...]:
        return tuple(pem_type for pem_type, _ in self.groups)

    @functools.cached_property
    def parts(self) -> tuple[PEM, ...]:
        if self.merge.method != "linear":  # `compose` let it through: one type, which takes it
            return tuple(merge_terms(terms, self.merge) for _, terms in self.groups)
        return tuple(PEM_TYPES[pem_type].combine(terms, self.mode) for pem_type, terms in self.groups)

    @functools.cached_property
    def heads(self) -> dict[tuple[str, ...], Head]:
        """The task heads the modules carry, one per task (see `combine_heads`)."""
        return combine_heads([(c, m.head) for _, terms in self.groups for c, m in terms if m.head is not None])

    def edits(self) -> Edits:
        edits = Edits()
        for part in self.parts:
            edits = edits.then(part.edits())
        return edits

    def check_finite(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Refuse `tensors` (folded weights, or the combined parts') that overflowed.

        A coefficient such as 1e39 is a finite float64 but not a finite float32, and 1e30
        gives weights whose float32 norm is inf, so the model computes NaN. A tensor passes
        when its sum of squares, in float32 at least, is finite: that needs every entry
        finite, too.
        """
        bad = _first_overflowing(tensors)
        if bad is None:
            return
        name, value = max(self.coefficients.items(), key=lambda item: abs(item[1]))
        raise ExpressionError(
            f"the composition overflows (in {bad}): coefficient of {name} is {value:g}; "
            "use coefficients of a sensible size"
        )

    def combined_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors of the combined parts and heads: what an export would write."""
        tensors: dict[str, torch.Tensor] = {}
        for part in self.parts:
            tensors |= part.edits().tensors()
        for head in self.heads.values():
            tensors |= {f"head {name}": tensor for name, tensor in head.tensors.items()}
        return tensors


def compose(
    modules: Mapping[str, PEM],
    expression: str | LinearCombination,
    values: Mapping[str, float] | None = None,
    mode: Mode = "exact",
    merge: MergeOptions | None = None,
) -> Composition:
    """Evaluate `expression` over `modules` at `values`. Raises WorkbenchError subclasses,
    each one line naming what is wrong, for anything a user can get wrong."""
    if mode not in MODES:
        raise WorkbenchError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    merge = merge or MergeOptions()
    combination = parse(expression, modules) if isinstance(expression, str) else expression
    values = dict(values or {})
    unused = sorted(set(values) - set(combination.parameters))
    if unused:
        have = ", ".join(combination.parameters) or "none"
        raise ExpressionError(f"parameter(s) {', '.join(unused)} are not in the expression (its parameters: {have})")
    coefficients = combination.coefficients(values)
    used = {name: modules[name] for name in combination.modules}
    _check_same_base(used)
    by_type: dict[str, list[tuple[float, PEM]]] = {}
    for name, module in used.items():
        by_type.setdefault(module.pem_type, []).append((coefficients[name], module))
    if mode != "exact" and len(by_type) > 1:
        kinds = "; ".join(f"{t}: {', '.join(n for n, m in used.items() if m.pem_type == t)}" for t in by_type)
        raise IncompatibleError(f"{mode} mode needs modules of one type, but this mixes {kinds}; use exact mode")
    check_merge(merge.method, by_type, mode)
    groups = tuple((t, tuple(by_type[t])) for t in PEM_TYPES if t in by_type)
    for pem_type, terms in groups:
        PEM_TYPES[pem_type].check_combinable(terms, mode)
    return Composition(
        combination=combination,
        values=tuple(sorted(values.items())),
        mode=mode,
        merge=merge,
        coefficients=coefficients,
        groups=groups,
    )


def _first_overflowing(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """The first floating tensor whose sum of squares (in float32 at least) is not finite,
    else None. One pass over memory per tensor and one device sync in all: it runs on
    every cold recompose, so it must cost little next to the fold."""
    names = [name for name, tensor in tensors.items() if tensor.is_floating_point()]
    if not names:
        return None
    squares = [_square_sum(tensors[name]) for name in names]
    finite = torch.isfinite(torch.stack([square.to(squares[0].device) for square in squares]))
    return None if bool(finite.all()) else names[int((~finite).nonzero()[0])]


def _square_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Σx²: a BLAS dot for float32/64 (about 3× faster than a norm on a CPU); half
    precision goes through a float32 norm, since its own Σx² would overflow at 65504."""
    flat = tensor.reshape(-1)
    if flat.dtype in (torch.float32, torch.float64):
        return torch.dot(flat, flat).float()
    return torch.linalg.vector_norm(flat, dtype=torch.float32)


def _check_same_base(modules: Mapping[str, PEM]) -> None:
    """Refuse modules recorded for different base models, or whose shapes disagree."""
    bases = {name: Path(m.base_model).name.lower() for name, m in modules.items() if m.base_model}
    if len(set(bases.values())) > 1:
        shown = ", ".join(f"{name} ({modules[name].base_model})" for name in bases)
        raise IncompatibleError(f"these modules were made for different base models: {shown}")
    seen: dict[str, tuple[str, tuple[int | None, ...]]] = {}
    for name, module in modules.items():
        for parameter, shape in module.needed_shapes.items():
            if parameter not in seen:
                seen[parameter] = (name, shape)
                continue
            other, other_shape = seen[parameter]
            if len(shape) != len(other_shape) or any(
                a is not None and b is not None and a != b for a, b in zip(shape, other_shape, strict=False)
            ):
                raise IncompatibleError(
                    f"{name} and {other} disagree on {parameter} ({_show(shape)} vs {_show(other_shape)}): "
                    "they were made for different base models"
                )


def _show(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if n is None else str(n) for n in shape) + ")"


def export_kind(composition: Composition) -> str:
    """What `save_composition` writes for `composition`, without writing it: the PEM type
    when it has one type and at most one task head, else "composition"."""
    return composition.pem_types[0] if len(composition.groups) == 1 and len(composition.heads) <= 1 else "composition"


def export_label(composition: Composition) -> str:
    """What `save_composition` writes, for a message: the PEM type (as the CLI prints it),
    or a composition folder with its types."""
    kind = export_kind(composition)
    return kind if kind != "composition" else f"a composition folder ({' + '.join(composition.pem_types)})"


def check_exportable(composition: Composition) -> None:
    """Refuse, before anything is written, a composition whose coefficients are all 0 (it
    is the base model: there is nothing to write, and such a folder would not load back)
    and one whose combined tensors overflow."""
    if not any(composition.coefficients.values()):
        raise ExpressionError(
            "the expression cancels to zero: every coefficient is 0; this is the base model, nothing to write"
        )
    composition.check_finite(composition.combined_tensors())


def export_part(composition: Composition) -> PEM | None:
    """The one PEM `save_composition` writes for `composition` (carrying its task head, if
    any), checked by `check_exportable`; None where it writes a composition folder."""
    check_exportable(composition)
    if export_kind(composition) == "composition":
        return None
    part = composition.parts[0]
    if composition.heads:
        part = copy.copy(part)
        part.head = next(iter(composition.heads.values()))
    return part


def save_composition(composition: Composition, modules: Mapping[str, PEM], folder: Path) -> str:
    """Write the composition: in its type's own format when it has one type (and at most
    one task head, which goes with it), else as a composition folder, whose modules keep
    their own heads. Returns what was written: the PEM type, or "composition".
    Refuses what `check_exportable` refuses, before writing anything."""
    folder = Path(folder)
    part = export_part(composition)
    if part is not None:
        part.save(folder)
        return part.pem_type
    folder.mkdir(parents=True, exist_ok=True)
    entries = {}
    for name in composition.combination.modules:
        modules[name].save(folder / "modules" / name)
        entries[name] = {"pem_type": modules[name].pem_type, "path": f"modules/{name}"}
    write_json(
        folder / COMPOSITION_FILE,
        {
            "expression": composition.combination.source or composition.combination.canonical,
            "canonical": composition.combination.canonical,
            "values": dict(composition.values),
            "mode": composition.mode,
            "merge": {
                "method": composition.merge.method,
                "density": composition.merge.density,
                "seed": composition.merge.seed,
            },
            "modules": entries,
        },
    )
    return "composition"


class ModuleEntry(BaseModel):
    path: str  # the module's folder, relative to the composition folder


class CompositionRecord(BaseModel):
    """What `load_composition` reads of composition.json; the other fields an export
    record writes there (card.py) are ignored."""

    expression: str
    values: dict[str, FiniteFloat] = {}
    mode: Mode = "exact"
    merge: MergeFields = MergeFields()
    modules: dict[str, ModuleEntry]


def load_composition(folder: Path) -> tuple[Composition, dict[str, PEM]]:
    """Reload a composition folder to the same composition, and the modules it holds."""
    path = require_file(Path(folder), COMPOSITION_FILE, "composition")
    try:
        record = CompositionRecord.model_validate(read_json(path))
    except ValidationError as exc:
        raise WorkbenchError(validation_line(exc, str(path))) from None
    modules = {name: load_module(path.parent / entry.path) for name, entry in record.modules.items()}
    options = MergeOptions(record.merge.method, record.merge.density, record.merge.seed)
    return compose(modules, record.expression, record.values, record.mode, options), modules
