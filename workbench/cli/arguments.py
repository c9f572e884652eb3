"""Arguments the subcommands share, parsed one way: a composition, and its pieces."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from workbench.errors import WorkbenchError


def add_composition_arguments(parser: argparse.ArgumentParser, expr_help: str, base_required: bool = True) -> None:
    """--base, --adapter NAME=PATH, --expr, --set PARAM=VALUE and --mode."""
    parser.add_argument("--base", required=base_required, help="base model: a zoo name, a local folder or a hub id")
    parser.add_argument(
        "--adapter", action="append", default=[], metavar="NAME=PATH",
        help="a module to bind to NAME: a PEFT LoRA/(IA)³ folder, a RED or sparse folder, or a RED delta_vector.pth",
    )  # fmt: skip
    parser.add_argument("--expr", default="", help=expr_help)
    parser.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE", help="a parameter's value")
    parser.add_argument("--mode", choices=("exact", "paper"), default="exact", help="composition mode (default exact)")


def require_empty_folder(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WorkbenchError(f"--out {out} already exists and is not empty; choose a new folder")


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
