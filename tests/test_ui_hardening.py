"""The UI's controller under attack: hostile upload names, and streamed chats stepped from
many threads at once, as Gradio steps generators."""

from __future__ import annotations

import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError
from workbench.ui.controller import MAX_CHAT_CHARACTERS, Controller


@pytest.fixture
def controller(base_dirs, adapters, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", str(base_dirs["llama"].parent.parent))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "server-tmp"))
    (tmp_path / "server-tmp").mkdir()
    controller = Controller()
    controller.start("s", base=str(base_dirs["llama"]))
    controller.add_adapter("s", "a", str(adapters["llama"]["lora_a"]))
    controller.add_adapter("s", "toxic", str(adapters["llama"]["lora_b"]))
    return controller


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for folders)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


HOSTILE_NAMES = [
    "../victim",
    "../../victim",
    "../../../../../../victim",
    "{victim}",  # an absolute path, filled in below
    "..",
    ".",
    "a/b",
    "a\\b",
    "victim/../../victim",
    "~",
    "/",
    "lora a",
    "x" * 500,
    "a\x00b",
    "1abc",
]


@pytest.mark.parametrize("hostile", HOSTILE_NAMES)
def test_upload_names_never_touch_files_outside_the_session(controller, adapters, tmp_path, hostile) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    (victim / "sub").mkdir()
    (victim / "sub" / "more.json").write_text("{}")
    before = tree(tmp_path)
    folder = adapters["llama"]["lora_a"]
    files = [str(folder / "adapter_config.json"), str(folder / "adapter_model.safetensors")]
    with pytest.raises(WorkbenchError, match="plain identifier"):
        controller.add_upload("s", hostile.format(victim=victim), files)
    assert tree(tmp_path) == before  # nothing written, nothing deleted, not even a session temp dir
    assert list(controller.modules_table("s")["name"]) == ["a", "toxic"]


def test_uploads_live_in_the_sessions_own_temp_dir_and_go_with_it(controller, adapters, tmp_path) -> None:
    folder = adapters["llama"]["lora_a"]
    files = [str(folder / "adapter_config.json"), str(folder / "adapter_model.safetensors")]
    controller.add_upload("s", "up", files)
    controller.add_upload("s", "up2", files)
    upload_dir = controller.session_folder("s")
    assert upload_dir.parent == tmp_path / "server-tmp"
    assert len(list(upload_dir.iterdir())) == 2  # one fresh folder per upload, never reused or deleted
    with pytest.raises(WorkbenchError, match="only .safetensors"):
        controller.add_upload("s", "bad", [*files, str(tmp_path / "x.py")])
    assert len(list(upload_dir.iterdir())) == 2
    controller.release("s")
    assert not upload_dir.exists()


def test_an_upload_that_fails_to_load_leaves_no_folder(controller, tmp_path) -> None:
    broken = tmp_path / "adapter_config.json"
    broken.write_text("{not json")
    with pytest.raises(WorkbenchError):
        controller.add_upload("s", "broken", [str(broken)])
    assert list(controller.session_folder("s").iterdir()) == []


def drive_from_any_thread(pool: ThreadPoolExecutor, generator) -> threading.Event:
    """Step `generator` once per pool task, as Gradio does: each step may land on another thread."""
    finished = threading.Event()
    result: dict[str, object] = {}

    def step() -> None:
        try:
            result["last"] = next(generator)
        except StopIteration:
            finished.set()
            return
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            result["error"] = exc
            finished.set()
            return
        pool.submit(step)

    finished.result = result  # type: ignore[attr-defined]
    pool.submit(step)
    return finished


COMPOSITIONS = [("-lam*toxic", {"lam": 0.5}), ("lam*a + (1-lam)*toxic", {"lam": 0.3}), ("a", {}), ("", {})]


def test_concurrent_streamed_chats_and_slider_moves_neither_deadlock_nor_mix(controller, adapters) -> None:
    sessions = []
    for index, (expression, values) in enumerate(COMPOSITIONS):
        session = f"chat{index}"
        controller.start(session, base=str(controller.manager.state("s").base))
        controller.add_adapter(session, "a", str(adapters["llama"]["lora_a"]))
        controller.add_adapter(session, "toxic", str(adapters["llama"]["lora_b"]))
        controller.recompose(session, expression, values)
        sessions.append(session)
    alone = {s: list(controller.chat(s, "hello there", max_new_tokens=24, seed=7))[-1] for s in sessions}

    with ThreadPoolExecutor(max_workers=6) as pool:
        chats = {s: drive_from_any_thread(pool, controller.chat(s, "hello there", max_new_tokens=24, seed=7))
                 for s in sessions}  # fmt: skip
        moves = [pool.submit(controller.recompose, "s", "lam*a", {"lam": lam}) for lam in (0.1, 0.5, 0.9, -0.4)]
        for session, finished in chats.items():
            assert finished.wait(timeout=120), f"chat of {session} never finished: a deadlock"
        for move in moves:
            assert move.result(timeout=120)["readout"]
    for session, finished in chats.items():
        result = finished.result  # type: ignore[attr-defined]
        assert "error" not in result, result.get("error")
        assert result["last"] == alone[session]
    # the server still answers afterwards, from any thread
    assert controller.recompose("s", "-toxic", {})["detail"].startswith("next token")


def test_a_closed_chat_frees_the_model(controller) -> None:
    stream = controller.chat("s", "hello", max_new_tokens=1000)
    next(stream)
    stream.close()  # the user left mid-reply
    with ThreadPoolExecutor(max_workers=1) as pool:
        readout = pool.submit(controller.recompose, "s", "a", {})
        assert readout.result(timeout=60)["readout"]


def test_chat_messages_are_bounded(controller) -> None:
    with pytest.raises(WorkbenchError, match="characters long"):
        next(controller.chat("s", "x" * (MAX_CHAT_CHARACTERS + 1)))
    assert next(controller.chat("s", "x" * 10, max_new_tokens=2))


def test_uploads_are_bounded_in_total_size(controller, tmp_path, monkeypatch) -> None:
    import workbench.ui.controller as controller_module

    monkeypatch.setattr(controller_module, "UPLOAD_LIMIT_BYTES", 1000)
    big = tmp_path / "adapter_model.safetensors"
    big.write_bytes(os.urandom(600))
    config = tmp_path / "adapter_config.json"
    config.write_bytes(b"{" + b" " * 598 + b"}")
    with pytest.raises(WorkbenchError, match="the limit is"):
        controller.add_upload("s", "big", [str(big), str(config)])


def test_result_cache_and_history_are_bounded(controller, monkeypatch) -> None:
    from workbench.eval import ResultCache
    from workbench.ui import controller as controller_module

    cache = ResultCache(max_entries=3)
    for key in range(5):
        cache.put(key, {"x": float(key)})
    assert len(cache) == 3 and cache.get(0) is None and cache.get(4) == {"x": 4.0}
    monkeypatch.setattr(controller_module, "MAX_HISTORY", 4)
    for lam in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6):
        controller.recompose("s", "lam*a", {"lam": lam})
    assert list(controller.history("s")["values"]) == ["lam=0.3", "lam=0.4", "lam=0.5", "lam=0.6"]


def test_abandoned_sessions_end_when_another_starts(controller, base_dirs) -> None:
    folder = controller.session_folder("s")
    controller.ui("s").seen -= 10 * 3600  # silent for ten hours: its browser vanished without an unload
    controller.start("newcomer", base=str(base_dirs["llama"]))
    assert "s" not in controller.manager.sessions and not folder.exists()
    assert "newcomer" in controller.manager.sessions


def test_an_overflowing_composition_is_refused_and_the_session_keeps_its_own(controller) -> None:
    before = controller.recompose("s", "-lam*toxic", {"lam": 0.5})["detail"]
    with pytest.raises(WorkbenchError, match="overflows"):
        controller.recompose("s", "1e30*toxic", {})
    state = controller.manager.state("s")
    assert (state.expression, state.values) == ("-lam*toxic", {"lam": 0.5})
    assert controller.readout("s") == before
    with pytest.raises(WorkbenchError, match="out of range"):
        controller.recompose("s", "-lam*toxic", {"lam": float("nan")})
    with pytest.raises(WorkbenchError, match="out of range"):
        controller.toxicity("s", "toxic", ["hi"], 2, [1e30])
    assert len(controller.history("s")) == 1


def test_a_slider_moved_during_a_sweep_is_what_the_session_runs_after_it(controller) -> None:
    controller.recompose("s", "lam*a", {"lam": 0.2})
    stream = controller.sweep("s", "lam*a", {"lam": "0:1:0.5"}, ["austen-perplexity"])
    next(stream)
    controller.recompose("s", "lam*a", {"lam": 0.9})  # the user moves the slider meanwhile
    assert len(list(stream)[-1][1]) == 5  # base, a, and three points
    state = controller.manager.state("s")
    assert state.values == {"lam": 0.9} and controller.manager.sessions == ["s"]  # the scratch copy is gone
    with controller.manager.model_for("s") as base:
        assert controller.manager._live[base.key].key == controller.manager.cache_key(state)
    assert state.composition.coefficients == {"a": 0.9}  # what Export writes and Chat runs


def test_each_sweep_measure_has_its_own_size(controller) -> None:
    short = list(controller.sweep("s", "lam*a", {"lam": "0,1"}, ["austen-perplexity"], ppl_characters=300))[-1][1]
    long = list(controller.sweep("s", "lam*a", {"lam": "0,1"}, ["austen-perplexity"], ppl_characters=1200))[-1][1]
    # the perplexity size is used, not ignored, and the column says which part was measured
    short_ppl, long_ppl = short["perplexity:austen-perplexity[:300]"], long["perplexity:austen-perplexity[:1200]"]
    assert list(short_ppl) != list(long_ppl)
    measures = controller.measures(["toxicity", "austen-perplexity"], n=10, samples=3, ppl_characters=500)
    assert measures[0].n == 3 and len(measures[1].text) == 500
    with pytest.raises(WorkbenchError, match="toxicity samples"):
        controller.measures(["toxicity"], n=10, samples=0)


def test_a_restore_that_fails_halfway_leaves_the_session_as_it_was(controller, adapters, tmp_path,
                                                                    monkeypatch) -> None:  # fmt: skip
    import shutil as sh

    from safetensors.torch import load_file, save_file

    allowed = [os.environ["WORKBENCH_ALLOWED_PATHS"], str(tmp_path)]
    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", os.pathsep.join(allowed))
    copy = tmp_path / "a-copy"
    sh.copytree(adapters["llama"]["lora_a"], copy)
    controller.add_adapter("s", "c", str(copy))
    controller.recompose("s", "lam*c", {"lam": 0.5})  # row 0 ran on c as it was
    controller.add_adapter("s", "b", str(adapters["llama"]["lora_c"]))
    controller.recompose("s", "-toxic", {})
    weights = copy / "adapter_model.safetensors"
    save_file({k: v * 1.5 for k, v in load_file(str(weights)).items()}, str(weights))  # c changes on disk
    with pytest.raises(WorkbenchError, match="changed on disk"):
        controller.restore("s", 0)
    state = controller.manager.state("s")
    assert sorted(state.modules) == ["a", "b", "c", "toxic"] and state.expression == "-toxic"


def test_a_replacement_that_would_overflow_is_refused_before_anything_changes(controller, adapters, tmp_path,
                                                                               monkeypatch) -> None:  # fmt: skip
    import shutil as sh

    from safetensors.torch import load_file, save_file

    allowed = [os.environ["WORKBENCH_ALLOWED_PATHS"], str(tmp_path)]
    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", os.pathsep.join(allowed))
    huge = tmp_path / "huge"
    sh.copytree(adapters["llama"]["lora_a"], huge)
    weights = huge / "adapter_model.safetensors"
    save_file({k: v * 1e21 for k, v in load_file(str(weights)).items()}, str(weights))
    shown = controller.recompose("s", "lam*a", {"lam": 0.5})
    with pytest.raises(WorkbenchError, match="overflows"):
        controller.add_adapter("s", "a", str(huge), replace=True)
    assert controller.recompose("s", "lam*a", {"lam": 0.5})["readout"] == shown["readout"]


@pytest.mark.parametrize("path", ["~nosuchuser-xyz/x", "a\x00b", "~nosuchuser-xyz"])
def test_unusable_paths_are_one_line(controller, path) -> None:
    with pytest.raises(WorkbenchError):
        controller.add_adapter("s", "x", path)
    with pytest.raises(WorkbenchError):
        controller.load_base("s", path)
    assert controller.manager.state("s").modules.keys() == {"a", "toxic"}


def test_chatting_keeps_a_session_alive(controller) -> None:
    controller.ui("s").seen -= 10 * 3600
    list(controller.chat("s", "hi", max_new_tokens=2))
    assert controller.end_idle_sessions() == []


def test_a_row_made_on_another_base_reloads_its_base_and_modules(controller, base_dirs) -> None:
    first = controller.recompose("s", "lam*a", {"lam": 0.4})["readout"]
    controller.load_base("s", str(base_dirs["gpt2"]))  # the session moves on: another base, no modules
    assert controller.manager.state("s").modules == {}
    entry = controller.restore("s", 0)
    state = controller.manager.state("s")
    assert state.base == entry.base and sorted(state.modules) == ["a", "toxic"]
    assert controller.recompose("s", entry.expression, entry.values)["readout"] == first


def test_a_swept_point_stays_cached_for_its_session(controller) -> None:
    list(controller.sweep("s", "lam*a", {"lam": "0,0.5,1"}, ["austen-perplexity"]))
    misses = controller.manager.stats().misses
    controller.recompose("s", "lam*a", {"lam": 0.5})  # a λ the sweep folded: a pointer swap, no fold
    assert controller.manager.stats().misses == misses
    controller.release("s")
    assert controller.manager.stats().entries == 0
