"""`python -m workbench compose` end to end on real folders: outputs load, errors are one line."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import load_base, outputs
from peft import PeftModel

from workbench.cli import main


def compose_args(base_dirs, adapters, out, *extra, kind="llama", names=("lora_a", "lora_b")):
    args = ["compose", "--base", str(base_dirs[kind]), "--out", str(out)]
    for name in names:
        args += ["--adapter", f"{name}={adapters[kind][name]}"]
    return args + list(extra)


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_exact_lora_output_loads_in_peft(base_dirs, adapters, tmp_path, capsys) -> None:
    args = compose_args(
        base_dirs, adapters, tmp_path / "out", "--expr", "lam*lora_a + (1-lam)*lora_b", "--set", "lam=0.3"
    )
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "lam*lora_a + (1 - lam)*lora_b" in out and "lora_a: 0.3" in out
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8
    model = PeftModel.from_pretrained(load_base(base_dirs, "llama"), str(tmp_path / "out"))
    assert outputs(model, "llama").isfinite().all()


def test_paper_mode_keeps_input_rank(base_dirs, adapters, tmp_path, capsys) -> None:
    args = compose_args(base_dirs, adapters, tmp_path / "out", "--expr", "0.5*lora_a + 0.5*lora_b", "--mode", "paper")
    assert run_cli(args, capsys)[0] == 0
    assert json.loads((tmp_path / "out" / "adapter_config.json").read_text())["r"] == 4


def test_mixed_types_write_a_composition_folder(base_dirs, adapters, tmp_path, capsys) -> None:
    args = compose_args(
        base_dirs, adapters, tmp_path / "out", "--expr", "lora_a - 0.5*ia3_a", names=("lora_a", "ia3_a")
    )
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and "composition at" in out
    assert (tmp_path / "out" / "composition.json").is_file()
    assert (tmp_path / "out" / "modules" / "ia3_a" / "adapter_config.json").is_file()


def test_sparse_ties_writes_sparse_format(base_dirs, adapters, tmp_path, capsys) -> None:
    args = compose_args(
        base_dirs,
        adapters,
        tmp_path / "out",
        "--expr",
        "sparse_a + sparse_b",
        "--merge",
        "ties",
        "--density",
        "0.5",
        names=("sparse_a", "sparse_b"),
    )
    assert run_cli(args, capsys)[0] == 0
    config = json.loads((tmp_path / "out" / "pem_config.json").read_text())
    assert config["pem_type"] == "sparse" and config["method"] == "ties"


@pytest.mark.parametrize("form", ["separate", "joined"])
def test_expression_with_leading_minus(base_dirs, adapters, tmp_path, capsys, form) -> None:
    expr = ["--expr", "-lora_a"] if form == "separate" else ["--expr=-lora_a"]
    code, out, err = run_cli(compose_args(base_dirs, adapters, tmp_path / "out", *expr, names=("lora_a",)), capsys)
    assert code == 0, err
    assert out.startswith("-lora_a")
    base = dict(load_base(base_dirs, "llama").named_parameters())
    negated = PeftModel.from_pretrained(load_base(base_dirs, "llama"), str(tmp_path / "out")).merge_and_unload()
    original = PeftModel.from_pretrained(load_base(base_dirs, "llama"), str(adapters["llama"]["lora_a"]))
    original = original.merge_and_unload()
    changed = 0
    for (name, neg), (_, orig) in zip(negated.named_parameters(), original.named_parameters(), strict=True):
        torch.testing.assert_close(neg - base[name], -(orig - base[name]), atol=1e-6, rtol=1e-5)
        changed += int(not torch.equal(orig, base[name]))
    assert changed == 6  # q, v, down on 2 layers


@pytest.mark.parametrize(
    ("extra", "names", "fragment"),
    [
        (["--expr", "lora_a*lora_b"], ("lora_a", "lora_b"), "cannot multiply two modules"),
        (["--expr", "lam*lora_a"], ("lora_a",), "lam have no value"),
        (["--expr", "lora_a", "--set", "lam=abc"], ("lora_a",), "must be a number"),
        (["--expr", "lora_a", "--set", "lam=nan"], ("lora_a",), "must be finite"),
        (["--expr", "lora_a", "--set", "mu=1"], ("lora_a",), "mu are not in the expression"),
        (["--expr", "lora_a + ia3_a", "--mode", "paper"], ("lora_a", "ia3_a"), "paper mode needs modules of one type"),
        (["--expr", "lora_a + lora_c", "--mode", "paper"], ("lora_a", "lora_c"), "use exact mode"),
        (["--expr", "lora_a", "--merge", "ties"], ("lora_a",), "sparse task vectors only"),
        (["--expr", "x"], ("lora_a",), "names no loaded module"),
        (["--expr", "lora_a", "--mode", "fancy"], ("lora_a",), "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(base_dirs, adapters, tmp_path, capsys, extra, names, fragment) -> None:
    code, out, err = run_cli(compose_args(base_dirs, adapters, tmp_path / "out", *extra, names=names), capsys)
    assert code == 2
    assert fragment in err and err.count("\n") == 1 and err.startswith("error: ")
    assert not (tmp_path / "out").exists()


def test_bad_paths_and_bases(base_dirs, adapters, tmp_path, capsys) -> None:
    args = [
        "compose",
        "--base",
        str(base_dirs["llama"]),
        "--adapter",
        f"a={tmp_path / 'nope'}",
        "--expr",
        "a",
        "--out",
        str(tmp_path / "o"),
    ]
    assert run_cli(args, capsys)[0] == 2
    args = compose_args(base_dirs, adapters, tmp_path / "o", "--expr", "lora_a", names=("lora_a",), kind="llama")
    args[2] = str(base_dirs["gpt2"])
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "does not have" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("precious")
    code, _, err = run_cli(
        compose_args(base_dirs, adapters, tmp_path / "full", "--expr", "lora_a", names=("lora_a",)), capsys
    )
    assert code == 2 and "not empty" in err and (tmp_path / "full" / "keep.txt").read_text() == "precious"
    code, _, err = run_cli(
        ["compose", "--base", "./no/such/folder", "--adapter", "a=b", "--expr", "a", "--out", "o"], capsys
    )
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli(
        ["compose", "--base", "x", "--adapter", "a", "--expr", "a", "--out", str(tmp_path / "o2")], capsys
    )
    assert code == 2 and "NAME=VALUE" in err


def test_real_process_help_and_errors(base_dirs, adapters, tmp_path) -> None:
    def run(*args):
        return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=120)

    helped = run("compose", "--help")
    assert helped.returncode == 0
    for word in ("exact", "paper", "--adapter", "--set", "--mode", "composition folder", "Exit status"):
        assert word in helped.stdout
    failed = run(*compose_args(base_dirs, adapters, tmp_path / "o", "--expr", "-(lora_a", names=("lora_a",)))
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().count("\n") == 0 and "never closed" in failed.stderr
    bare = run()
    assert bare.returncode == 2 and "Traceback" not in bare.stderr
