"""The Ray backend: the same rows as the local one, a real two-node cluster on this machine,
a worker killed mid-sweep, and the one-line refusals. Ray starts once for the module."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from workbench.algebra import MergeOptions, parse
from workbench.cli import main
from workbench.distributed import tune
from workbench.distributed.cluster import ray_runtime
from workbench.distributed.pool import PointFailed, WorkerPool
from workbench.errors import WorkbenchError
from workbench.eval import PerplexityMeasure, ResultCache, ToxicityMeasure, default_scorer, parse_grids, sweep
from workbench.eval.sweep import plan_jobs
from workbench.modules import load_module
from workbench.runtime import SessionManager

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune."
RAY = Path(sys.executable).parent / "ray"


@pytest.fixture(scope="module")
def local_ray():
    with ray_runtime(None):
        yield


@pytest.fixture
def composition(base_dirs, adapters):
    modules = {name: load_module(adapters["llama"][name]) for name in ("lora_a", "lora_b")}
    measures = [PerplexityMeasure(TEXT, name="perplexity"), ToxicityMeasure(default_scorer(), n=3, seed=1)]
    return str(base_dirs["llama"]), modules, measures


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_index(axis=1).select_dtypes("number")


def test_ray_rows_equal_the_local_rows(local_ray, composition) -> None:
    base, modules, measures = composition
    expression, axes = "lam*lora_a + (1-lam)*lora_b", parse_grids(["lam=0:1:0.25"])
    manager = SessionManager()
    manager.rebuild("s", base, modules)
    local = list(sweep(manager, "s", expression, axes, measures, ResultCache()))[-1].frame
    jobs = plan_jobs(parse(expression, modules), expression, axes, {})
    with WorkerPool(base, modules, "exact", MergeOptions(), {"validation": measures}, workers=2) as pool:
        updates = list(pool.sweep(jobs))
        assert pool.size == 2 and sum(pool.nodes.values()) == len(jobs)
    assert [u.done for u in updates] == list(range(1, len(jobs) + 1))  # streamed point by point
    remote = updates[-1].frame
    assert list(remote["label"].fillna("")) == list(local["label"].fillna(""))  # rows in plan order
    pd.testing.assert_frame_equal(_numbers(remote), _numbers(local), rtol=1e-5)


def test_a_worker_killed_mid_sweep_ends_with_one_line_and_keeps_the_finished_points(local_ray, composition) -> None:
    base, modules, measures = composition
    expression = "lam*lora_a + (1-lam)*lora_b"
    jobs = plan_jobs(parse(expression, modules), expression, parse_grids(["lam=0:1:0.1"]), {})
    with WorkerPool(base, modules, "exact", MergeOptions(), {"validation": measures[:1]}, workers=2) as pool:
        import ray

        victim = ray.get(pool.actors[0].pid.remote())
        updates = pool.sweep(jobs)
        first = next(updates)
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(PointFailed, match=r"died while measuring (lam=|base|lora_)") as failed:
            for _ in updates:
                pass
    assert failed.value.total == len(jobs) and 1 <= failed.value.done < len(jobs)
    assert len(failed.value.frame) == failed.value.done >= first.done


def test_stop_cancels_the_points_not_yet_run(local_ray, composition) -> None:
    base, modules, measures = composition
    expression = "lam*lora_a"
    jobs = plan_jobs(parse(expression, modules), expression, parse_grids(["lam=0:1:0.05"]), {})
    stop = threading.Event()
    with WorkerPool(base, modules, "exact", MergeOptions(), {"validation": measures[:1]}, workers=2) as pool:
        done = []
        for update in pool.sweep(jobs, stop):
            done.append(update.done)
            stop.set()
    assert done == [1]


def test_a_base_a_worker_cannot_load_is_one_line(local_ray, composition, tmp_path) -> None:
    _, modules, measures = composition
    with pytest.raises(WorkbenchError, match="worker on node .* cannot load the base or modules") as refused:
        WorkerPool(str(tmp_path / "no-such-base"), modules, "exact", MergeOptions(), {"validation": measures})
    assert "\n" not in str(refused.value)


def test_auto_with_two_parameters_searches_on_ray_tune(local_ray, base_dirs, adapters, tmp_path, capsys,
                                                       monkeypatch) -> None:  # fmt: skip
    monkeypatch.setattr(tune, "TRIALS", 4)
    pd.DataFrame({"text": ["good", "bad", "fine film", "awful"], "label": ["pos", "neg"] * 2}).to_csv(
        tmp_path / "val.csv", index=False
    )
    code = main([
        "sweep", "--base", str(base_dirs["llama"]), "--adapter", f"a={adapters['llama']['lora_a']}",
        "--adapter", f"b={adapters['llama']['lora_b']}", "--expr", "x*a + y*b", "--grid", "x=0,1", "--grid", "y=0,1",
        "--task", str(tmp_path / "val.csv"), "--test-task", str(tmp_path / "val.csv"), "--auto",
        "--backend", "ray", "--out", str(tmp_path / "out"),
    ])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "auto (Ray Tune with Optuna TPE, 4 trials, seed 0): x=" in out and "test:       val=" in out
    assert "on Ray: 2 workers" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backend", "ray", "--address", "127.0.0.1:{port}"], "cannot reach a Ray cluster at 127.0.0.1:"),
        (["--backend", "ray", "--address", "nowhere"], "--address 'nowhere': give HOST:PORT"),
        (["--backend", "ray", "--workers", "0"], "--workers must be from 1 to"),
        (["--address", "127.0.0.1:1"], "--address and --workers go with --backend ray"),
    ],
)
def test_bad_ray_options_are_one_line(base_dirs, adapters, tmp_path, capsys, extra, message) -> None:
    extra = [part.format(port=_free_port()) for part in extra]
    code = main([
        "sweep", "--base", str(base_dirs["llama"]), "--adapter", f"a={adapters['llama']['lora_a']}",
        "--expr", "lam*a", "--grid", "lam=0,1", "--task", "ppl:" + str(_text(tmp_path)), "--out", str(tmp_path / "o"),
        *extra,
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def _text(folder: Path) -> Path:
    (folder / "austen.txt").write_text(TEXT)
    return folder / "austen.txt"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Node:
    """`ray start --block` in its own process group and temp dir; stopped with its group."""

    def __init__(self, args: list[str]) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix="wb-ray-", dir="/tmp"))  # Ray's socket paths must stay short
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        self.process = subprocess.Popen(
            [str(RAY), "start", "--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
             "--temp-dir", str(self.temp), "--disable-usage-stats", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
        )  # fmt: skip
        self.output: list[str] = []

    def wait_started(self, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        for line in self.process.stdout:
            self.output.append(line)
            if "Ray runtime started" in line:
                return
            if time.monotonic() > deadline:
                break
        raise AssertionError("ray start did not come up:\n" + "".join(self.output[-20:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        shutil.rmtree(self.temp, ignore_errors=True)


def test_a_sweep_runs_across_a_two_node_cluster(base_dirs, adapters, tmp_path) -> None:
    port = _free_port()
    nodes = []
    try:
        nodes.append(_Node(["--head", "--port", str(port), "--include-dashboard", "false"]))
        nodes[0].wait_started()
        nodes.append(_Node(["--address", f"127.0.0.1:{port}"]))
        nodes[1].wait_started()
        args = [
            sys.executable, "-m", "workbench", "sweep", "--base", str(base_dirs["llama"]),
            "--adapter", f"a={adapters['llama']['lora_a']}", "--adapter", f"b={adapters['llama']['lora_b']}",
            "--expr", "lam*a + (1-lam)*b", "--grid", "lam=0:1:0.1", "--task", "ppl:" + str(_text(tmp_path)),
        ]  # fmt: skip
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        ray_run = subprocess.run([*args, "--backend", "ray", "--address", f"127.0.0.1:{port}", "--workers", "2",
                                  "--out", str(tmp_path / "ray")], capture_output=True, text=True, env=env,
                                 timeout=300)  # fmt: skip
        assert ray_run.returncode == 0, ray_run.stderr
        assert "on Ray: 2 workers, 2 node(s)" in ray_run.stdout, ray_run.stdout
        local_run = subprocess.run([*args, "--out", str(tmp_path / "local")], capture_output=True, text=True,
                                   env=env, timeout=300)  # fmt: skip
        assert local_run.returncode == 0, local_run.stderr
    finally:
        for node in reversed(nodes):
            node.stop()
    pd.testing.assert_frame_equal(_numbers(pd.read_csv(tmp_path / "ray" / "results.csv")),
                                  _numbers(pd.read_csv(tmp_path / "local" / "results.csv")), rtol=1e-5)  # fmt: skip
    assert all(node.process.poll() is not None for node in nodes)


def test_the_cli_keeps_the_finished_points_when_a_worker_dies(local_ray, base_dirs, adapters, tmp_path, capsys,
                                                              monkeypatch) -> None:  # fmt: skip
    import ray

    original = WorkerPool.run

    def run_then_kill_a_worker(self, jobs, which="validation", stop=None):
        victim = ray.get(self.actors[0].pid.remote())
        for count, item in enumerate(original(self, jobs, which, stop)):
            yield item
            if count == 2:
                os.kill(victim, signal.SIGKILL)

    monkeypatch.setattr(WorkerPool, "run", run_then_kill_a_worker)
    code = main([
        "sweep", "--base", str(base_dirs["llama"]), "--adapter", f"a={adapters['llama']['lora_a']}",
        "--expr", "lam*a", "--grid", "lam=0:1:0.1", "--task", "ppl:" + str(_text(tmp_path)),
        "--backend", "ray", "--out", str(tmp_path / "out"),
    ])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "died while measuring" in err and f"in {tmp_path / 'out'}" in err, err
    kept = pd.read_csv(tmp_path / "out" / "results.csv")
    assert 3 <= len(kept) < 13 and f"kept the {len(kept)} finished of 13 rows" in err
    assert (tmp_path / "out" / "plot.html").is_file()


def test_the_sweep_tab_runs_on_the_cluster_named_by_the_environment(local_ray, tiny_controller, monkeypatch) -> None:
    import ray

    controller = tiny_controller()
    grid, tasks = {"lam": "0:1:0.5"}, ["austen-perplexity", "toxicity"]
    local = list(controller.sweep("s", "-lam*toxic", grid, tasks, samples=3))[-1]
    monkeypatch.setenv("WORKBENCH_RAY_ADDRESS", ray.get_runtime_context().gcs_address)
    remote = list(controller.sweep("s", "-lam*toxic", grid, tasks, samples=3))[-1]
    assert "on Ray at" in remote[2] and "on Ray" not in local[2]
    pd.testing.assert_frame_equal(_numbers(remote[1]), _numbers(local[1]), rtol=1e-5)
    assert controller.sweep_record("s", "-lam*toxic", grid, tasks)["backend"].startswith("ray at ")


def test_workers_take_one_gpu_each_where_the_cluster_has_gpus_else_one_cpu() -> None:
    from workbench.distributed.cluster import worker_shape

    assert worker_shape({"CPU": 2.0}, None) == (2, {"num_cpus": 1})
    assert worker_shape({"CPU": 2.0}, 8) == (2, {"num_cpus": 1})  # more than the cluster holds would never start
    assert worker_shape({"CPU": 64.0, "GPU": 8.0}, None) == (8, {"num_cpus": 1, "num_gpus": 1})
    assert worker_shape({"CPU": 64.0, "GPU": 8.0}, 3) == (3, {"num_cpus": 1, "num_gpus": 1})
