"""`python -m workbench generate` on a tiny LLaMA with a character tokenizer and chat template."""

import pytest
import torch

from workbench.cli import main


def run(capsys, *args):
    code = main(["generate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_base_and_composition_generate(base_dirs, adapters, capsys) -> None:
    base = str(base_dirs["llama"])
    code, plain, err = run(capsys, "--base", base, "--prompt", "hello", "--greedy", "--max-new-tokens", "8")
    assert code == 0, err
    assert plain.strip()
    code, composed, err = run(
        capsys, "--base", base, "--adapter", f"a={adapters['llama']['lora_a']}", "--expr", "-lam*a", "--set", "lam=3",
        "--prompt", "hello", "--greedy", "--max-new-tokens", "8",
    )  # fmt: skip
    assert code == 0, err
    assert composed != plain
    code, chat, err = run(capsys, "--base", base, "--prompt", "-hi", "--chat", "--max-new-tokens", "4", "--seed", "3")
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--prompt", "x", "--max-new-tokens", "0"], "max new tokens must be between"),
        (["--prompt", "x", "--expr", "nope"], "names no loaded module"),
        (["--prompt", "x", "--dtype", "float16"], "is for GPUs"),
        (["--prompt", "x", "--device", "cuda"], "no CUDA GPU is available"),
    ],
)
def test_generate_bad_input(base_dirs, capsys, args, fragment) -> None:
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = run(capsys, "--base", str(base_dirs["llama"]), *args)
    assert code == 2 and fragment in err and err.count("\n") == 1


def test_generate_needs_a_language_model_with_a_tokenizer(base_dirs, capsys) -> None:
    code, _, err = run(capsys, "--base", str(base_dirs["bert"]), "--prompt", "x")
    assert code == 2 and "has no tokenizer" in err
