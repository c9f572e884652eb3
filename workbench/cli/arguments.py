"""Arguments the subcommands share, parsed one way: a composition, its pieces, counts and
output paths, all checked before any model loads or any work starts."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.eval.measures import check_count
from workbench.modules.pem import MODES


def add_composition_arguments(parser: argparse.ArgumentParser, expr_help: str, base_required: bool = True) -> None:
    """--base, --adapter NAME=PATH, --expr, --set PARAM=VALUE and --mode."""
    parser.add_argument("--base", required=base_required, help="base model: a zoo name, a local folder or a hub id")
    parser.add_argument(
        "--adapter", action="append", default=[], metavar="NAME=PATH",
        help="a module to bind to NAME: a PEFT LoRA/(IA)³ folder, a RED or sparse folder, or a RED delta_vector.pth",
    )  # fmt: skip
    parser.add_argument("--expr", default="", help=expr_help)
    parser.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE", help="a parameter's value")
    parser.add_argument("--mode", choices=MODES, default="exact",
                        help="composition mode (default exact; naive is the negation ablation)")


def count(limit: int) -> Callable[[str], int]:
    """An argparse type for a count: a whole number from 1 to `limit`, refused while parsing
    (a zero or negative count would silently measure less, a huge one would never end)."""

    def parse(text: str) -> int:
        try:
            return check_count("the count", int(text), limit)
        except (ValueError, WorkbenchError):  # not a whole number, or out of range
            raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {limit}, got {text!r}") from None

    return parse


def require_creatable(out: Path) -> None:
    """`out` can be made: the nearest existing path above it is a folder this process may
    write in. Checked before the work, so a bad --out never wastes a run."""
    ancestor = out.absolute().parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise WorkbenchError(f"--out {out}: {ancestor} is not a folder; choose another --out")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise WorkbenchError(f"--out {out}: this user cannot write in {ancestor}; choose another --out")


def require_empty_folder(out: Path) -> None:
    """--out for a folder: new, or an empty folder (never a link), in a place that can be written."""
    out = Path(os.path.abspath(out))  # `..` read as written: out/new/../run is out/run
    if out.is_symlink():
        raise WorkbenchError(f"--out {out} is a symbolic link; give a new folder, or the folder it points to")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WorkbenchError(f"--out {out} already exists and is not empty; choose a new folder")
    require_creatable(out)


def require_file_target(out: Path) -> None:
    """--out for a file: not a folder, in a place that can be written (an existing file is replaced)."""
    if out.is_dir():
        raise WorkbenchError(f"--out {out} is a folder; give a file name, e.g. {out / 'report.md'}")
    require_creatable(out)


def parse_pairs(items: list[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name or not value:
            raise WorkbenchError(f"{what} must look like NAME=VALUE, got {item!r}")
        if name in pairs:
            raise WorkbenchError(f"{what} {name} is given twice")
        pairs[name] = value
    return pairs


def parse_values(items: list[str]) -> dict[str, float]:
    values = {}
    for name, text in parse_pairs(items, "--set").items():
        try:
            value = float(text)
        except ValueError:
            raise WorkbenchError(f"--set {name}={text}: the value must be a number") from None
        if not math.isfinite(value):
            raise WorkbenchError(f"--set {name}={text}: the value must be finite")
        values[name] = value
    return values
