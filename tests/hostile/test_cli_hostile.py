"""The CLI under hostile input, one table row per case (cli_cases.py).

Each case runs `workbench.cli.main` in-process on its own copy of the inputs, with the
case's tmp_path as the working directory, and checks three things: the exit code; that
stderr (captured at the file-descriptor level, so a progress bar counts) is one line that
starts as the convention says; and that nothing under tmp_path changed, the --out target
included (a success may only add --out). A few real `python -m workbench` processes prove
the same of the process's own stderr, warnings and all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import main

from .cli_cases import CLI_CASES, SETUPS, CliCase
from .conftest import diff, snapshot

PREFIX = {2: "error: ", 1: "internal error", 130: "interrupted"}


def one_line(err: str, prefix: str) -> bool:
    lines = err.splitlines()  # splits on \r too, so a redrawn progress bar counts as lines
    return len(lines) == 1 and lines[0].startswith(prefix) and (prefix != "error: " or lines[0] != prefix)


def without(tree: dict[str, str], top: str) -> dict[str, str]:
    return {k: v for k, v in tree.items() if k != top and not k.startswith(top + os.sep)}


@pytest.mark.parametrize("case", CLI_CASES, ids=[case.id for case in CLI_CASES])
def test_cli_case(case: CliCase, world, monkeypatch, capfd) -> None:
    if case.setup:
        SETUPS[case.setup](world, monkeypatch)
    argv = [world.fill(part) for part in case.argv]
    out = Path(world.paths["out"])
    out_existed = os.path.lexists(out)
    out_inside = world.root in (out.absolute(), *out.absolute().parents)
    out_rel = os.path.relpath(out.absolute(), world.root) if out_inside else None
    before = snapshot(world.root)
    capfd.readouterr()

    code = main(argv)
    captured = capfd.readouterr()
    after = snapshot(world.root)

    assert code == case.code, f"exit {code}, stderr {captured.err!r}"
    if case.code == 0:
        assert not any(line.lstrip().startswith(("error", "internal error", "Traceback"))
                       for line in captured.err.splitlines()), captured.err  # fmt: skip
        if argv[0] != "generate":
            assert out.is_dir() and any(out.iterdir())
            assert without(after, out_rel) == without(before, out_rel), diff(before, after)
        else:
            assert after == before, diff(before, after)
        return
    assert one_line(captured.err, PREFIX[case.code]), f"stderr {captured.err!r}"
    if case.match:
        import re

        assert re.search(case.match, captured.err, re.IGNORECASE), captured.err
    assert after == before, diff(before, after)  # inputs untouched, --out not made (or as it was), no leftovers
    assert os.path.lexists(out) == out_existed
    assert not os.path.lexists(world.paths["marker"]), "a pickle ran code"


# --- the real process: its stderr is one line too (warnings, logging and all) ------------------

PROCESS_CASES = ["expr_module_product", "pth_pickle_opens_a_file", "grid_two_big", "base_nan_generate",
                 "ppl_not_utf8"]  # fmt: skip


@pytest.mark.parametrize("case_id", PROCESS_CASES)
def test_real_process_stderr_is_one_line(case_id: str, world, monkeypatch) -> None:
    case = next(case for case in CLI_CASES if case.id == case_id)
    if case.setup:
        SETUPS[case.setup](world, monkeypatch)
    argv = [world.fill(part) for part in case.argv]
    before = snapshot(world.root)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("WORKBENCH_DEBUG", None)
    repo = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "workbench", *argv], capture_output=True, text=True,
                          timeout=300, env=env, cwd=world.root)  # fmt: skip
    assert done.returncode == case.code, done.stderr
    assert one_line(done.stderr, PREFIX[case.code]), done.stderr
    assert snapshot(world.root) == before
    assert not os.path.lexists(world.paths["marker"])
