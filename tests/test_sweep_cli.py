"""`python -m workbench sweep` end to end on the tiny LLaMA."""

import pandas as pd
import pytest

from workbench.cli import main

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune."


@pytest.fixture
def files(tmp_path):
    pd.DataFrame({"text": ["good", "bad", "fine film", "awful", "great", "poor"], "label": ["pos", "neg"] * 3}).to_csv(
        tmp_path / "val.csv", index=False
    )
    pd.DataFrame({"text": ["nice", "terrible"], "label": ["pos", "neg"]}).to_csv(tmp_path / "test.csv", index=False)
    (tmp_path / "austen.txt").write_text(TEXT)
    return tmp_path


def base_args(base_dirs, adapters, out):
    return [
        "sweep", "--base", str(base_dirs["llama"]), "--adapter", f"a={adapters['llama']['lora_a']}",
        "--adapter", f"b={adapters['llama']['lora_b']}", "--out", str(out),
    ]  # fmt: skip


def run(capsys, args):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sweep_writes_results_and_plot_and_chooses_lambda(base_dirs, adapters, files, capsys) -> None:
    args = base_args(base_dirs, adapters, files / "out") + [
        "--expr", "lam*a + (1-lam)*b", "--grid", "lam=0:1:0.5", "--task", str(files / "val.csv"),
        "--task", f"ppl:{files / 'austen.txt'}", "--test-task", str(files / "test.csv"), "--auto",
    ]  # fmt: skip
    code, out, err = run(capsys, args)
    assert code == 0, err
    frame = pd.read_csv(files / "out" / "results.csv")
    assert list(frame["label"].fillna("")[:3]) == ["base", "a", "b"] and len(frame) == 6
    assert {"val", "perplexity:austen", "lam"} <= set(frame.columns)
    assert "plotly" in (files / "out" / "plot.html").read_text()[:5000].lower()
    assert "auto (grid of 3 refined 2×): lam=" in out and "validation: val=" in out and "test:       test=" in out


def test_toxicity_sweep_names_its_scorer(base_dirs, adapters, files, capsys) -> None:
    args = base_args(base_dirs, adapters, files / "tox") + [
        "--expr", "-lam*a", "--grid", "lam=0,1", "--task", "toxicity", "--samples", "3",
        "--task", f"ppl:{files / 'austen.txt'}", "--auto",
    ]  # fmt: skip
    code, out, err = run(capsys, args)
    assert code == 0, err
    assert "toxicity scorer: alt-profanity-check (offline, word-based)" in err
    assert "lowest toxicity with PPL" in out
    assert {"toxicity", "toxic_rate"} <= set(pd.read_csv(files / "tox" / "results.csv").columns)


def test_two_grids_give_a_heatmap(base_dirs, adapters, files, capsys) -> None:
    args = base_args(base_dirs, adapters, files / "2d") + [
        "--expr", "x*a + y*b", "--grid", "x=0,1", "--grid", "y=0,1", "--task", f"ppl:{files / 'austen.txt'}",
    ]  # fmt: skip
    assert run(capsys, args)[0] == 0
    assert "heatmap" in (files / "2d" / "plot.html").read_text()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--expr", "lam*a", "--grid", "lam=0,1"], "at least one --task"),
        (["--expr", "lam*a", "--grid", "lam=0:1", "--task", "toxicity"], "use START:STOP:STEP"),
        (["--expr", "lam*a", "--grid", "lam=0,1", "--task", "nowhere.csv"], "no such file or zoo task"),
        (["--expr", "lam*a*b", "--grid", "lam=0,1", "--task", "toxicity"], "cannot multiply two modules"),
        (["--expr", "lam*a", "--grid", "lam=0,1", "--task", "toxicity", "--auto"], "--auto needs"),
    ],
)
def test_bad_sweeps_exit_2(base_dirs, adapters, files, capsys, extra, fragment) -> None:
    code, _, err = run(capsys, base_args(base_dirs, adapters, files / "bad") + extra)
    assert code == 2 and fragment in err and err.count("\n") == 1


def test_presets_listed_and_missing_zoo_adapters_named(capsys, tmp_path) -> None:
    code, out, _ = run(capsys, ["sweep", "--list-presets"])
    assert code == 0 and "unlearning-lora" in out and "-lam*toxic" in out and "distribution-generalization-lora" in out
    code, _, err = run(capsys, ["sweep", "--preset", "no-such", "--out", str(tmp_path / "o")])
    assert code == 2 and "unknown preset" in err
