"""`python -m workbench compose`: load PEMs, compose them by an expression, write the result."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.algebra import MERGE_METHODS, MergeOptions, compose, save_composition
from workbench.cli.arguments import add_composition_arguments, parse_pairs, parse_values, require_empty_folder
from workbench.errors import WorkbenchError
from workbench.files import staged_folder
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
    add_composition_arguments(parser, 'the expression, e.g. "lam*a + (1-lam)*b" or --expr=-a')
    parser.add_argument("--merge", choices=MERGE_METHODS, default="linear", help="merge method for sparse task vectors")
    parser.add_argument("--density", type=float, default=1.0, help="share of entries TIES/DARE/magnitude keep (0-1]")
    parser.add_argument("--seed", type=int, default=0, help="seed for DARE's random drop")
    parser.add_argument("--out", required=True, type=Path, help="output folder (must not exist or be empty)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    require_empty_folder(out)
    if not args.adapter or not args.expr:
        raise WorkbenchError("compose needs at least one --adapter and an --expr")
    values = parse_values(args.set)
    merge = MergeOptions(args.merge, args.density, args.seed)
    paths = parse_pairs(args.adapter, "--adapter")
    with staged_folder(out) as staging:  # made now, so an --out that cannot be written fails before loading
        base = base_shapes_for(args.base)
        modules = {name: load_module(path, base) for name, path in paths.items()}
        composition = compose(modules, args.expr, values, args.mode, merge)
        written = save_composition(composition, modules, staging)
    coefficients = ", ".join(f"{name}: {value:g}" for name, value in composition.coefficients.items())
    print(f"{composition.combination.canonical}  [{args.mode}]  ->  {written} at {out}  ({coefficients})")
    return 0
