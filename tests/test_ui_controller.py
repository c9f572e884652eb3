"""The UI's plain functions, called as the tabs call them, on the tiny LLaMA."""

import zipfile

import pytest

from workbench.errors import WorkbenchError


@pytest.fixture
def controller(tiny_controller):
    return tiny_controller("tab")


def test_models_table_describes_each_module(controller) -> None:
    table = controller.modules_table("tab")
    assert list(table["name"]) == ["a", "toxic"] and set(table["type"]) == {"lora"}
    assert (table["fits base"] == "yes").all() and (table["parameters"] > 0).all()


def test_paths_outside_allowed_folders_are_refused(controller, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", "")
    with pytest.raises(WorkbenchError, match="outside the allowed folders"):
        controller.add_adapter("tab", "x", str(tmp_path))


def test_recompose_gives_canonical_form_coefficients_and_a_readout(controller) -> None:
    assert controller.parameters("tab", "lam*a + (1-lam)*toxic") == ["lam"]
    shown = controller.recompose("tab", "lam*a + (1-lam)*toxic", {"lam": 0.25})
    assert shown["canonical"] == "lam*a + (1 - lam)*toxic"
    assert list(shown["coefficients"]["coefficient"]) == [0.25, 0.75]
    assert shown["detail"].startswith("next token after") and shown["detail"].count(",") >= 4
    # the live measures at λ, each beside the base and each module alone
    assert shown["readout"].startswith("toxicity ") and " (n=8) · base " in shown["readout"]
    assert "\nperplexity " in shown["readout"] and " · a " in shown["readout"] and " · toxic " in shown["readout"]
    other = controller.recompose("tab", "lam*a + (1-lam)*toxic", {"lam": 1.0})
    assert other["detail"] != shown["detail"] and other["readout"] != shown["readout"]
    assert controller.readout("tab", use_base=True) not in (other["detail"], shown["detail"])


def test_bad_input_keeps_the_session(controller) -> None:
    controller.recompose("tab", "-lam*toxic", {"lam": 0.5})
    for bad in ("toxic*a", "(a", "", "lam*nothing"):
        with pytest.raises(WorkbenchError):
            controller.parameters("tab", bad) if bad else controller.recompose("tab", "a*", {})
    with pytest.raises(WorkbenchError, match="out of range"):
        controller.recompose("tab", "-lam*toxic", {"lam": 7.0})
    state = controller.manager.state("tab")
    assert state.expression == "-lam*toxic" and state.values == {"lam": 0.5}
    assert len(controller.history("tab")) == 1


def test_history_restores_a_composition(controller) -> None:
    controller.recompose("tab", "lam*a", {"lam": 0.2})
    controller.recompose("tab", "-toxic", {})
    assert list(controller.history("tab")["expression"]) == ["lam*a", "-toxic"]
    entry = controller.restore("tab", 0)
    assert entry.expression == "lam*a" and controller.manager.state("tab").values == {"lam": 0.2}
    with pytest.raises(WorkbenchError, match="no entry 9"):
        controller.restore("tab", 9)


def test_sweep_streams_and_stops(controller) -> None:
    stream = controller.sweep("tab", "lam*a", {"lam": "0:1:0.25"}, ["austen-perplexity"])
    figure, frame, progress = next(stream)
    assert progress.startswith("1/7 points · about ") and len(frame) == 1 and figure.data is not None
    controller.stop("tab")
    rest = list(stream)
    assert len(rest) == 0 or len(rest[-1][1]) < 7


def test_toxicity_compares_settings_and_names_the_scorer(controller) -> None:
    boxes, curve, frame, note = controller.toxicity("tab", "toxic", ["hello there"], 3, [0.5, 1.0])
    assert list(frame["setting"].unique()) == ["base", "toxic", "-0.5·toxic", "-1·toxic"]
    assert len(boxes.data) == 4 and "word-based" in note
    assert {trace.name for trace in curve.data} >= {"mean toxicity", "perplexity", "base toxicity", "+toxic toxicity"}
    with pytest.raises(WorkbenchError, match="no module named"):
        controller.toxicity("tab", "missing", [], 2, [1.0])


def test_chat_streams_a_reply(controller) -> None:
    controller.recompose("tab", "-lam*toxic", {"lam": 0.5})
    pieces = list(controller.chat("tab", "hi", max_new_tokens=6))
    assert pieces and all(later.startswith(earlier) for earlier, later in zip(pieces, pieces[1:], strict=False))
    assert 0.0 <= controller.score(pieces[-1]) <= 1.0
    with pytest.raises(WorkbenchError, match="type a message"):
        list(controller.chat("tab", "  "))


def test_export_zips_a_peft_adapter(controller) -> None:
    with pytest.raises(WorkbenchError, match="no composition to export"):
        controller.export("tab")
    controller.recompose("tab", "lam*a + (1-lam)*toxic", {"lam": 0.5})
    archive = controller.export("tab")
    assert archive.name.startswith("lora-")
    assert set(zipfile.ZipFile(archive).namelist()) == {"adapter_config.json", "adapter_model.safetensors",
                                                        "README.md", "composition.json"}  # fmt: skip


def test_uploads_accept_only_safe_types(controller, adapters, tmp_path) -> None:
    folder = adapters["llama"]["lora_a"]
    files = [str(folder / "adapter_config.json"), str(folder / "adapter_model.safetensors")]
    table = controller.add_upload("tab", "uploaded", files)
    assert "uploaded" in list(table["name"])
    (tmp_path / "evil.py").write_text("print('no')")
    with pytest.raises(WorkbenchError, match="only .safetensors, .json, .pth"):
        controller.add_upload("tab", "bad", [str(tmp_path / "evil.py")])
    controller.release("tab")
    with pytest.raises(WorkbenchError, match="not open"):
        controller.manager.state("tab")
