"""The nouns: one file per PEM type, the I/O they share, and the registry.

Knows torch and safetensors (and PEFT's target matching, imported when a config is read);
never Gradio, never transformers model classes.
"""

from workbench.modules.base_shapes import BaseShapes
from workbench.modules.edits import Edits, fold
from workbench.modules.ia3 import IA3Module
from workbench.modules.lora import LoraModule
from workbench.modules.pem import MODES, PEM, Mode
from workbench.modules.red import RedModule
from workbench.modules.registry import PEM_TYPES, load_module, pem_type_names
from workbench.modules.sparse import SparseModule

__all__ = [
    "MODES",
    "PEM",
    "PEM_TYPES",
    "BaseShapes",
    "Edits",
    "IA3Module",
    "LoraModule",
    "Mode",
    "RedModule",
    "SparseModule",
    "fold",
    "load_module",
    "pem_type_names",
]
