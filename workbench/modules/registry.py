"""The PEM types the workbench knows, and the one loader that picks the right one.

Adding a type means adding its file and its class to `PEM_TYPES`: everything else about
it (names, files, merge methods) is on the class, and the other layers read it there.
"""

from __future__ import annotations

from pathlib import Path

from workbench.errors import ModuleFormatError
from workbench.modules.base_shapes import BaseShapes
from workbench.modules.ia3 import IA3Module
from workbench.modules.lora import LoraModule
from workbench.modules.pem import PEM
from workbench.modules.red import OFFICIAL as RED_OFFICIAL
from workbench.modules.red import RedModule
from workbench.modules.sparse import SparseModule
from workbench.modules.tensor_io import read_json

# In stacking order (additive before multiplicative, see edits.py): a mixed composition
# combines its types in this order.
PEM_TYPES: dict[str, type[PEM]] = {cls.pem_type: cls for cls in (LoraModule, SparseModule, IA3Module, RedModule)}


def pem_type_names() -> dict[str, str]:
    """Each type's display name by its pem_type ("ia3" -> "(IA)³"), for the faces' labels
    and tables; each type's one-line `description` is on its class, `PEM_TYPES[t]`."""
    return {pem_type: cls.display_name for pem_type, cls in PEM_TYPES.items()}


def load_module(path: str | Path, base: BaseShapes | None = None) -> PEM:
    """Load the PEM at `path` (a folder, or RED's official `delta_vector.pth`).

    With `base`, the module is checked to fit it, and a RED import learns its layout
    from the base's model type.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".pth":
        model_type = base.model_type if base else None
        module: PEM = RedModule.from_official(path, base.name if base else None, model_type)
    elif not path.exists():
        raise ModuleFormatError(f"module path {path} does not exist")
    elif not path.is_dir():
        raise ModuleFormatError(f"{path} is a file; give the module's folder (or a RED delta_vector.pth)")
    else:
        module = _load_folder(path)
    if base is not None:
        module.check_fits(base, str(path))
    return module


def _load_folder(folder: Path) -> PEM:
    for pem_type in PEM_TYPES.values():
        if pem_type.detect(folder):
            return pem_type.load(folder)
    peft = {cls.peft_type: cls.config_file for cls in PEM_TYPES.values() if cls.peft_type is not None}
    for peft_config in {folder / name for name in peft.values()}:
        if peft_config.is_file():
            peft_type = read_json(peft_config).get("peft_type")
            raise ModuleFormatError(f"{folder}: PEFT type {peft_type!r} is not supported; "
                                    f"supported are {' and '.join(peft)}")  # fmt: skip
    files: dict[str, list[str]] = {}
    for cls in PEM_TYPES.values():
        files.setdefault(cls.config_file, []).append(cls.display_name)
    expected = ", ".join(f"{name} ({' or '.join(names)})" for name, names in files.items())
    raise ModuleFormatError(f"{folder} is not a PEM folder: expected {expected}, or {RED_OFFICIAL} (RED)")
