"""`python -m workbench compose`: load PEMs, compose them by an expression, write the result."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from workbench.algebra import MERGE_METHODS, MergeOptions, compose, save_composition
from workbench.errors import WorkbenchError
from workbench.modules import load_module
from workbench.runtime.loading import base_shapes_for

DESCRIPTION = """\
Compose PEMs by an arithmetic expression and write the result.

Expression: + - * / and parentheses (also ⊕ ⊖ × ·). A name bound by --adapter is a
module; any other name is a parameter, given a value with --set. Examples:
  "lam*a + (1-lam)*b"     interpolate two modules      --set lam=0.3
  "-0.6*toxic"            negate a module (unlearning)
  "base + lam*(base - toxic)"                          --set lam=0.5

Modes:
  exact (default)  combine the modules' delta forms (function space). LoRA sums
                   become one LoRA of rank Σrᵢ with ΔW = Σ cᵢsᵢBᵢAᵢ exactly.
  paper            parameter space, as the paper's code: LoRA A = Σ|cᵢ|Aᵢ, B = Σ cᵢBᵢ;
                   needs one type with equal targets and shapes.
  (IA)³, RED and sparse vectors combine their delta forms in both modes.

Output (--out):
  one LoRA or one (IA)³      a PEFT adapter folder (PeftModel.from_pretrained loads it)
  one RED or sparse          the workbench's own format for that type
  mixed types                a composition folder (expression, values, mode, modules)

Exit status: 0 on success, 2 on bad input (one line on stderr)."""


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "compose",
        help="compose PEMs by an expression and write the result",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--base", required=True, help="base model: a zoo name, a local folder or a hub id (checks shapes)"
    )
    parser.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="NAME=PATH",
        required=True,
        help="a module to bind to NAME: a PEFT LoRA/(IA)³ folder, a RED or sparse folder, or a RED delta_vector.pth",
    )
    parser.add_argument("--expr", required=True, help='the expression, e.g. "lam*a + (1-lam)*b" or --expr=-a')
    parser.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE", help="a parameter's value")
    parser.add_argument("--mode", choices=("exact", "paper"), default="exact", help="composition mode (default exact)")
    parser.add_argument("--merge", choices=MERGE_METHODS, default="linear", help="merge method for sparse task vectors")
    parser.add_argument("--density", type=float, default=1.0, help="share of entries TIES/DARE/magnitude keep (0-1]")
    parser.add_argument("--seed", type=int, default=0, help="seed for DARE's random drop")
    parser.add_argument("--out", required=True, type=Path, help="output folder (must not exist or be empty)")
    parser.set_defaults(run=run)


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


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WorkbenchError(f"--out {out} already exists and is not empty; choose a new folder")
    values = parse_values(args.set)
    merge = MergeOptions(args.merge, args.density, args.seed)
    paths = parse_pairs(args.adapter, "--adapter")
    base = base_shapes_for(args.base)
    modules = {name: load_module(path, base) for name, path in paths.items()}
    composition = compose(modules, args.expr, values, args.mode, merge)
    written = save_composition(composition, modules, out)
    coefficients = ", ".join(f"{name}: {value:g}" for name, value in composition.coefficients.items())
    print(f"{composition.combination.canonical}  [{args.mode}]  ->  {written} at {out}  ({coefficients})")
    return 0
