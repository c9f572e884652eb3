"""The PEM types the workbench knows, and the one loader that picks the right one.

Adding a type means adding its file and one line to `PEM_TYPES`.
"""

from __future__ import annotations

from pathlib import Path

from workbench.errors import ModuleFormatError
from workbench.modules.base_shapes import BaseShapes
from workbench.modules.ia3 import IA3Module
from workbench.modules.lora import LoraModule
from workbench.modules.pem import PEM
from workbench.modules.red import RedModule
from workbench.modules.sparse import SparseModule
from workbench.modules.tensor_io import read_json

PEM_TYPES: dict[str, type[PEM]] = {
    "lora": LoraModule,
    "sparse": SparseModule,
    "ia3": IA3Module,
    "red": RedModule,
}


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
    peft_config = folder / "adapter_config.json"
    if peft_config.is_file():
        peft_type = read_json(peft_config).get("peft_type")
        raise ModuleFormatError(f"{folder}: PEFT type {peft_type!r} is not supported; supported are LORA and IA3")
    raise ModuleFormatError(
        f"{folder} is not a PEM folder: expected adapter_config.json (PEFT LoRA or (IA)³), "
        "pem_config.json (RED or sparse) or delta_vector.pth (RED)"
    )
