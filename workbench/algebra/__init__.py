"""The verbs: parse an expression over PEMs and compose them (exact or paper mode).

Knows torch and safetensors only; never Gradio, never transformers model classes.
"""

from workbench.algebra.compose import Composition, compose, load_composition, save_composition
from workbench.algebra.expression import LinearCombination, parse
from workbench.algebra.merging import MERGE_METHODS, MergeOptions

__all__ = [
    "MERGE_METHODS",
    "Composition",
    "LinearCombination",
    "MergeOptions",
    "compose",
    "load_composition",
    "parse",
    "save_composition",
]
