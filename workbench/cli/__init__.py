"""The CLI: one file per subcommand, and one place that turns errors into one line.

Bad input (a WorkbenchError, or an argument the parser refuses) exits 2 with one line
on stderr, and so does a filesystem that refuses a read or write (OSError: a full disk,
no permission), since the user fixes those, not the code. Ctrl-C exits 130. Anything
else is a bug: it exits 1 with one line, and the traceback only when WORKBENCH_DEBUG=1.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Sequence

from workbench.cli import compose_command, generate_command, sweep_command, zoo_command
from workbench.errors import WorkbenchError, single_line

SUBCOMMANDS = (compose_command, generate_command, sweep_command, zoo_command)


class UsageError(WorkbenchError):
    """An argument the parser refused."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m workbench",
        description="PEM Workbench: compose parameter-efficient modules (LoRA, (IA)³, RED, sparse) by arithmetic.",
    )
    subcommands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for subcommand in SUBCOMMANDS:
        subcommand.register(subcommands)
    return parser


def attach_dash_values(argv: Sequence[str], options: Sequence[str] = ("--expr", "--prompt")) -> list[str]:
    """Let `--expr -a` mean `--expr=-a`: argparse would read `-a` as an option."""
    result: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if token in options and index + 1 < len(argv):
            result.append(f"{token}={argv[index + 1]}")
            index += 2
        else:
            result.append(token)
            index += 1
    return result


def os_error_line(exc: OSError) -> str:
    """What the filesystem refused, on one line: the reason, the path, what to check."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = f": {exc.filename}" if exc.filename else ""
    return single_line(f"{reason}{where} (check the path, its permissions and the free disk space)")


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # also silences transformers' loading bars
    debug = os.environ.get("WORKBENCH_DEBUG") == "1"
    argv = attach_dash_values(list(sys.argv[1:] if argv is None else argv))
    try:
        with warnings.catch_warnings():
            if not debug:  # libraries' warnings are for us, not the user: an error is one line
                warnings.simplefilter("ignore")
            args = build_parser().parse_args(argv)
            return args.run(args)
    except WorkbenchError as exc:
        print(f"error: {single_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line, keep the traceback for debugging
        if debug:
            traceback.print_exc()
        detail = single_line(f"{type(exc).__name__}: {exc}")
        print(f"internal error: {detail} (set WORKBENCH_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
