"""PEM Workbench: compose parameter-efficient modules by arithmetic and see what they do.

The notebook surface is this module: load PEMs, compose them, fold the result into a
model's weights.

    from workbench import load_module, compose, save_composition
    mods = {"a": load_module("adapters/a"), "b": load_module("adapters/b")}
    comp = compose(mods, "lam*a + (1-lam)*b", {"lam": 0.3})
"""

from workbench.algebra import Composition, MergeOptions, compose, load_composition, parse, save_composition
from workbench.errors import WorkbenchError
from workbench.modules import PEM, BaseShapes, fold, load_module

__all__ = [
    "PEM",
    "BaseShapes",
    "Composition",
    "MergeOptions",
    "WorkbenchError",
    "compose",
    "fold",
    "load_composition",
    "load_module",
    "parse",
    "save_composition",
]
