"""Modules travel to workers as their own files, so a worker on another machine loads
exactly what the caller loaded (its fingerprint is checked there), uploads included."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.modules import PEM


@dataclass(frozen=True)
class PackedModule:
    name: str
    entry: str  # the path load_module opens, relative to the unpacked folder
    files: tuple[tuple[str, bytes], ...]
    fingerprint: str


def pack(name: str, module: PEM) -> PackedModule:
    """`module`'s source files: its folder (every plain file in it), or RED's one .pth."""
    source = Path(module.source)
    if source.is_file():
        return PackedModule(name, source.name, ((source.name, source.read_bytes()),), module.fingerprint)
    if not source.is_dir():
        raise WorkbenchError(f"module {name}: its files at {source} are gone; load it again to run it on Ray")
    files = []
    for root, _, names in os.walk(source):
        for file in sorted(names):
            path = Path(root) / file
            if path.is_file() and not path.is_symlink():
                files.append((path.relative_to(source).as_posix(), path.read_bytes()))
    return PackedModule(name, ".", tuple(files), module.fingerprint)


def unpack(packed: PackedModule, folder: Path) -> Path:
    """Write the files under `folder/name` and return the path to load."""
    home = folder / packed.name
    for relative, data in packed.files:
        target = (home / relative).resolve()
        if not target.is_relative_to(home.resolve()):
            raise WorkbenchError(f"module {packed.name}: file {relative!r} leaves its folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return home / packed.entry
