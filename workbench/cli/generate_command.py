"""`python -m workbench generate`: complete a prompt with the base or a composition of it."""

from __future__ import annotations

import argparse

from workbench.cli.arguments import add_composition_arguments, parse_pairs, parse_values
from workbench.runtime import SessionManager
from workbench.runtime.generation import generate_text

DESCRIPTION = """\
Generate text with a base model, or with a composition of modules on it.

Without --expr the base model answers. With --expr the composition is folded into the
weights first (exactly, as `compose` defines it). Sampling uses top-k 50 and
temperature 1 unless --greedy. --chat applies the tokenizer's chat template.

Examples:
  python -m workbench generate --base smollm2-135m-instruct --chat --prompt "Hello!"
  python -m workbench generate --base smollm2-135m-instruct --adapter toxic=PATH \\
      --expr "-lam*toxic" --set lam=0.6 --chat --prompt "Tell me about your neighbours"

Exit status: 0 on success, 2 on bad input (one line on stderr)."""


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "generate",
        help="generate text with a base model or a composition",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_composition_arguments(parser, "the composition; without it the base model answers")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling")
    parser.add_argument("--chat", action="store_true", help="apply the tokenizer's chat template")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    parser.add_argument("--dtype", default="auto", help="auto (float32), or bfloat16/float16 on a GPU")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    values = parse_values(args.set)
    paths = parse_pairs(args.adapter, "--adapter")
    manager = SessionManager(cache_bytes=0, dtype=args.dtype, device=args.device)
    manager.rebuild("cli", args.base, paths, args.expr, values, args.mode)
    with manager.model_for("cli") as base:
        text = generate_text(base, args.prompt, args.max_new_tokens, args.greedy, args.seed, args.chat)
    print(text)
    return 0
