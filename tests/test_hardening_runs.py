"""Runs that validate before working, keep what finished, and never leave half-written outputs."""

import errno
import os
import pathlib
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager

import pandas as pd
import plotly.graph_objects as go
import pytest

from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.eval import PerplexityMeasure

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune."
RECIPE = "minilm-sentiment-s0-lora"
HINT = "(check the path, its permissions and the free disk space)"


@contextmanager
def deadline(seconds: float):
    """Fail, rather than hang, when the block runs longer than `seconds`."""

    def expire(*_):
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def disk_full(path="") -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def run(capsys, args):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> bool:
    lines = err.splitlines()  # splits on \r too, so a progress bar counts as a line
    return len(lines) == 1 and lines[0].startswith("error: ")


def leftovers(folder: pathlib.Path, expected: set[str]) -> set[str]:
    return {p.name for p in folder.iterdir()} - expected


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "austen.txt"
    path.write_text(TEXT)
    return path


@pytest.fixture
def no_models(monkeypatch):
    """Any attempt to load a model in a sweep fails the test: validation must come first."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("a model was loaded before the inputs were checked")

    monkeypatch.setattr("workbench.cli.sweep_runners.SessionManager", refuse)
    monkeypatch.setattr("workbench.cli.sweep_runners.base_shapes_for", refuse)


def sweep_args(base_dirs, adapters, out, *extra):
    return [
        "sweep", "--base", str(base_dirs["llama"]), "--adapter", f"a={adapters['llama']['lora_a']}",
        "--adapter", f"b={adapters['llama']['lora_b']}", "--out", str(out), *extra,
    ]  # fmt: skip


def compose_args(base_dirs, adapters, out, expr="lora_a", names=("lora_a",)):
    args = ["compose", "--base", str(base_dirs["llama"]), "--out", str(out), "--expr", expr]
    for name in names:
        args += ["--adapter", f"{name}={adapters['llama'][name]}"]
    return args


# item 4: grids --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", ["lam=0:1:1e-7", "lam=0:1e9:1e-9", "lam=0:inf:1", "lam=-inf:0:1", "lam=0:1:inf", "lam=nan:1:0.1"]
)
def test_grid_points_are_counted_before_any_is_built(spec) -> None:
    from workbench.eval.sweep import parse_grid

    with deadline(1.0), pytest.raises(WorkbenchError):
        parse_grid(spec)


def test_two_grids_are_bounded_by_their_product() -> None:
    from workbench.eval.sweep import MAX_POINTS, parse_grids

    axes = parse_grids(["a=0:20:1", "b=0:20:1"])
    assert [len(axis.values) for axis in axes] == [21, 21] and MAX_POINTS == 441
    with deadline(1.0), pytest.raises(WorkbenchError, match="462 points in all") as raised:
        parse_grids(["a=0:21:1", "b=0:20:1"])
    assert "\n" not in str(raised.value)
    with pytest.raises(WorkbenchError, match="twice"):
        parse_grids(["a=0,1", "a=0,0.5"])


def test_sweep_refuses_two_big_grids_before_loading(base_dirs, adapters, text_file, tmp_path, capsys,
                                                    no_models) -> None:  # fmt: skip
    args = sweep_args(base_dirs, adapters, tmp_path / "o", "--expr", "x*a + y*b", "--grid", "x=0:440:1",
                      "--grid", "y=0:440:1", "--task", f"ppl:{text_file}")  # fmt: skip
    with deadline(5.0):
        code, _, err = run(capsys, args)
    assert code == 2 and one_error_line(err) and "in all" in err


# item 4: validate before the work -------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [["--n", "-5"], ["--n", "0"], ["--n", "9999999"], ["--samples", "0"], ["--samples", "-1"], ["--samples", "99999"]],
)
def test_sweep_counts_are_checked_before_loading(base_dirs, adapters, text_file, tmp_path, capsys, no_models,
                                                 extra) -> None:  # fmt: skip
    pd.DataFrame({"text": ["good", "bad"] * 10, "label": ["pos", "neg"] * 10}).to_csv(tmp_path / "v.csv", index=False)
    args = sweep_args(base_dirs, adapters, tmp_path / "o", "--expr", "lam*a", "--grid", "lam=0,1",
                      "--task", str(tmp_path / "v.csv"), "--task", "toxicity", *extra)  # fmt: skip
    code, _, err = run(capsys, args)
    assert code == 2 and one_error_line(err) and extra[0] in err
    assert not (tmp_path / "o").exists()


def test_zoo_train_checks_samples_before_training(monkeypatch, capsys) -> None:
    called = []
    monkeypatch.setattr("workbench.studio.training.train", lambda *a, **k: called.append(a))
    code, _, err = run(capsys, ["zoo", "train", RECIPE, "--samples", "-1"])
    assert code == 2 and one_error_line(err) and "--samples" in err and not called


def test_zoo_study_checks_out_before_the_study(monkeypatch, tmp_path, capsys) -> None:
    called = []
    monkeypatch.setattr("workbench.studio.studies.run_studies", lambda *a, **k: called.append(a) or "report")
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file" / "x.md", tmp_path):
        code, _, err = run(capsys, ["zoo", "study", "--out", str(out)])
        assert code == 2 and one_error_line(err), err
    assert not called


@pytest.mark.parametrize("command", ["compose", "sweep"])
@pytest.mark.parametrize("where", ["under a file", "dangling symlink"])
def test_bad_out_is_one_line_before_loading(base_dirs, adapters, text_file, tmp_path, capsys, no_models,
                                            command, where) -> None:  # fmt: skip
    (tmp_path / "file").write_text("x")
    if where == "under a file":
        out = tmp_path / "file" / "out"
    else:
        out = tmp_path / "link"
        out.symlink_to(tmp_path / "nowhere")
    if command == "compose":
        args = compose_args(base_dirs, adapters, out)
    else:
        args = sweep_args(base_dirs, adapters, out, "--expr", "lam*a", "--grid", "lam=0,1", "--task",
                          f"ppl:{text_file}")  # fmt: skip
    code, _, err = run(capsys, args)
    assert code == 2 and one_error_line(err), err
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("code_", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_out_that_cannot_be_created_fails_before_loading(base_dirs, adapters, text_file, tmp_path, capsys,
                                                         monkeypatch, no_models, code_) -> None:  # fmt: skip
    disk = tmp_path / "disk"
    disk.mkdir()
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.parent == disk:
            raise OSError(code_, os.strerror(code_), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    args = sweep_args(base_dirs, adapters, disk / "out", "--expr", "lam*a", "--grid", "lam=0,1",
                      "--task", f"ppl:{text_file}")  # fmt: skip
    code, _, err = run(capsys, args)
    assert code == 2 and one_error_line(err) and os.strerror(code_) in err
    assert list(disk.iterdir()) == []


def test_ppl_task_that_is_not_utf8(base_dirs, adapters, tmp_path, capsys, no_models) -> None:
    (tmp_path / "latin1.txt").write_bytes("café \xff".encode("latin-1"))
    args = sweep_args(base_dirs, adapters, tmp_path / "o", "--expr", "lam*a", "--grid", "lam=0,1",
                      "--task", f"ppl:{tmp_path / 'latin1.txt'}")  # fmt: skip
    code, _, err = run(capsys, args)
    assert code == 2 and one_error_line(err) and "UTF-8" in err


# item 5: nothing lost on interruption, nothing half-written -----------------------------


def test_ctrl_c_keeps_the_finished_points(base_dirs, adapters, text_file, tmp_path, capsys, monkeypatch) -> None:
    real_run = PerplexityMeasure.run
    calls = []

    def interrupted_run(self, base):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_run(self, base)

    monkeypatch.setattr(PerplexityMeasure, "run", interrupted_run)
    out = tmp_path / "out"
    args = sweep_args(base_dirs, adapters, out, "--expr", "lam*a", "--grid", "lam=0.1:0.5:0.1",
                      "--task", f"ppl:{text_file}")  # fmt: skip
    code, _, err = run(capsys, args)
    assert code == 130
    frame = pd.read_csv(out / "results.csv")
    assert list(frame["label"].fillna("")) == ["base", "a", "", ""] and list(frame["lam"].dropna()) == [0.1, 0.2]
    assert "plotly" in (out / "plot.html").read_text()[:5000].lower()
    lines = err.splitlines()
    assert lines[-1].startswith("interrupted") and "kept 4 of 7 points" in lines[-1]
    assert leftovers(tmp_path, {"out", "austen.txt"}) == set()


def test_ctrl_c_before_any_point_writes_nothing(base_dirs, adapters, text_file, tmp_path, capsys, monkeypatch) -> None:
    def interrupted_run(self, base):
        raise KeyboardInterrupt

    monkeypatch.setattr(PerplexityMeasure, "run", interrupted_run)
    args = sweep_args(base_dirs, adapters, tmp_path / "out", "--expr", "lam*a", "--grid", "lam=0,1",
                      "--task", f"ppl:{text_file}")  # fmt: skip
    code, _, err = run(capsys, args)
    assert code == 130 and err.splitlines()[-1].startswith("interrupted")
    assert leftovers(tmp_path, {"austen.txt"}) == set()


def test_sweep_disk_full_leaves_no_plot(base_dirs, adapters, text_file, tmp_path, capsys, monkeypatch) -> None:
    def write_html(self, path, **kwargs):
        pathlib.Path(path).write_text("<html><head>trunc")
        raise disk_full(path)

    monkeypatch.setattr(go.Figure, "write_html", write_html)
    args = sweep_args(base_dirs, adapters, tmp_path / "out", "--expr", "lam*a", "--grid", "lam=0,1",
                      "--task", f"ppl:{text_file}")  # fmt: skip
    code, _, err = run(capsys, args)
    assert code == 2 and err.count("error: ") == 1  # the progress bar of the work done may come first
    assert err.splitlines()[-1] == f"error: No space left on device: {tmp_path / 'out' / 'plot.html'} " + HINT
    assert leftovers(tmp_path, {"austen.txt"}) == set()


def test_compose_disk_full_leaves_nothing(base_dirs, adapters, tmp_path, capsys, monkeypatch) -> None:
    def write_safetensors(path, tensors):
        raise disk_full(path)

    monkeypatch.setattr("workbench.modules.pem.write_safetensors", write_safetensors)  # every type saves through PEM
    code, _, err = run(capsys, compose_args(base_dirs, adapters, tmp_path / "out"))
    assert code == 2 and one_error_line(err) and "No space left" in err
    assert list(tmp_path.iterdir()) == []


def test_mixed_composition_disk_full_leaves_nothing(base_dirs, adapters, tmp_path, capsys, monkeypatch) -> None:
    real_write_text = pathlib.Path.write_text
    writes = []

    def write_text(self, *args, **kwargs):
        writes.append(self)
        if len(writes) == 2:
            raise disk_full(self)
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    (tmp_path / "out").mkdir()  # an empty folder is a valid --out, and stays as it was
    code, _, err = run(capsys, compose_args(base_dirs, adapters, tmp_path / "out", "lora_a - 0.5*ia3_a",
                                            ("lora_a", "ia3_a")))  # fmt: skip
    assert code == 2 and one_error_line(err)
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and list((tmp_path / "out").iterdir()) == []


@pytest.fixture
def fake_zoo(tmp_path, monkeypatch):
    """Adapters in tmp_path, the recipe's base never loaded; returns the adapters folder."""
    adapters = tmp_path / "adapters"
    (adapters / RECIPE).mkdir(parents=True)
    (adapters / RECIPE / "adapter_config.json").write_text("old")
    monkeypatch.setattr("workbench.cli.zoo_command.ADAPTERS", adapters)
    monkeypatch.setattr("workbench.catalog.bases.zoo_base_folder", lambda name: tmp_path)
    return adapters


def test_zoo_train_disk_full_keeps_the_old_adapter(fake_zoo, monkeypatch, capsys) -> None:
    def train(pem_type, base, texts, settings, out, exclude=None, labels=None):
        out.mkdir(parents=True, exist_ok=True)
        (out / "adapter_config.json").write_text("half")
        raise disk_full(out / "adapter_model.safetensors")

    monkeypatch.setattr("workbench.studio.training.train", train)
    code, _, err = run(capsys, ["zoo", "train", RECIPE, "--no-card"])
    assert code == 2 and one_error_line(err)
    assert [p.name for p in fake_zoo.iterdir()] == [RECIPE]
    assert (fake_zoo / RECIPE / "adapter_config.json").read_text() == "old"


def test_zoo_train_replaces_the_old_adapter_whole(fake_zoo, monkeypatch, capsys) -> None:
    def train(pem_type, base, texts, settings, out, exclude=None, labels=None):
        out.mkdir(parents=True, exist_ok=True)
        (out / "adapter_config.json").write_text('{"base_model_name_or_path": "/cache/x"}')
        return None, 0.5

    monkeypatch.setattr("workbench.studio.training.train", train)
    code, out, err = run(capsys, ["zoo", "train", RECIPE, "--no-card"])
    assert code == 0, err
    assert [p.name for p in fake_zoo.iterdir()] == [RECIPE]
    assert '"minilm-l6"' in (fake_zoo / RECIPE / "adapter_config.json").read_text()


def test_zoo_study_disk_full_keeps_the_old_report(tmp_path, monkeypatch, capsys) -> None:
    report = tmp_path / "studies.md"
    report.write_text("old report")
    monkeypatch.setattr("workbench.studio.studies.run_studies", lambda *a, **k: "new report " * 1000)
    real_write_text = pathlib.Path.write_text

    def write_text(self, data, *args, **kwargs):
        real_write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise disk_full(self)

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    code, _, err = run(capsys, ["zoo", "study", "--out", str(report)])
    assert code == 2 and one_error_line(err)
    assert report.read_text() == "old report" and [p.name for p in tmp_path.iterdir()] == ["studies.md"]


# the staging helpers --------------------------------------------------------------------


def test_staged_folder_moves_into_place_or_leaves_nothing(tmp_path) -> None:
    from workbench.files import staged_folder

    target = tmp_path / "new" / "out"
    with staged_folder(target) as staging:
        (staging / "a.txt").write_text("a")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "a" and [p.name for p in target.parent.iterdir()] == ["out"]
    with pytest.raises(FileExistsError, match="results are kept in") as refused, staged_folder(target) as staging:
        (staging / "b.txt").write_text("b")  # a folder with content is never replaced unless asked
    assert [p.name for p in target.iterdir()] == ["a.txt"]
    assert (staging / "b.txt").read_text() == "b" and str(staging) in str(refused.value)  # finished work is kept
    shutil.rmtree(staging)
    assert [p.name for p in target.parent.iterdir()] == ["out"]
    with pytest.raises(KeyboardInterrupt), staged_folder(target, replace=True) as staging:
        (staging / "c.txt").write_text("c")
        raise KeyboardInterrupt
    assert [p.name for p in target.iterdir()] == ["a.txt"] and [p.name for p in target.parent.iterdir()] == ["out"]
    with staged_folder(target, replace=True) as staging:
        (staging / "c.txt").write_text("c")
    assert [p.name for p in target.iterdir()] == ["c.txt"] and [p.name for p in target.parent.iterdir()] == ["out"]


def test_staged_file_replaces_whole_or_not_at_all(tmp_path) -> None:
    from workbench.files import staged_file

    target = tmp_path / "report.md"
    target.write_text("old")
    with pytest.raises(OSError), staged_file(target) as partial:
        partial.write_text("ne")
        raise disk_full(partial)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.md"]
    with staged_file(target) as partial:
        partial.write_text("new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["report.md"]


# item 6: one line on stderr, from a real process ----------------------------------------


def test_real_process_errors_are_one_line(base_dirs, adapters, text_file, tmp_path) -> None:
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9 \xff")
    cases = {
        "a grid missing (after the progress bar started)": ["--expr", "lam*a + mu*b", "--grid", "lam=0,1",
                                                            "--task", f"ppl:{text_file}"],
        "a missing adapter (after the scorer banner)": ["--expr", "lam*a", "--grid", "lam=0,1", "--task", "toxicity",
                                                        "--adapter", f"c={tmp_path / 'nope'}"],
        "a text that is not UTF-8": ["--expr", "lam*a", "--grid", "lam=0,1", "--task",
                                     f"ppl:{tmp_path / 'latin1.txt'}"],
    }  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for name, extra in cases.items():
        args = sweep_args(base_dirs, adapters, tmp_path / "out", *extra)
        done = subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                              timeout=300, env=env)  # fmt: skip
        assert done.returncode == 2 and one_error_line(done.stderr), (name, done.stderr)
        assert not (tmp_path / "out").exists()
