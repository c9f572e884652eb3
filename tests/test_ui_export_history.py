"""Export and History, as the tabs call them, on the tiny models: the preview before the
click, the zip's name and contents (card, composition.json, base hub id, task type), PEFT
loading what was exported, and a History that fills by itself, one row per composition,
with its base and preset."""

import json
import zipfile
from pathlib import Path

import pytest
import torch

from tests.conftest import load_base
from workbench.algebra import load_composition
from workbench.algebra.card import is_hub_id, task_type_for
from workbench.catalog.bases import ZOO_BASES, ZooBase
from workbench.catalog.presets import PRESETS, Preset
from workbench.errors import WorkbenchError
from workbench.ui import controller as controller_module
from workbench.ui.controller import Controller, export_file_name

INPUT = torch.tensor([[5, 17, 42, 99, 3, 64, 1]])


@pytest.fixture
def controller(tiny_controller):
    return tiny_controller("tab")


@pytest.fixture
def tiny_zoo(base_dirs, adapters, monkeypatch):
    """A zoo base (the tiny LLaMA under a hub id) and a preset on it, as the real zoo's are."""
    base = ZooBase("tiny-zoo-llama", "the tiny LLaMA", "workbench", "", "someone/tiny-llama",
                   lambda _: base_dirs["llama"], "random")  # fmt: skip
    monkeypatch.setitem(ZOO_BASES, base.name, base)
    preset = Preset("tiny-unlearning", "unlearning", base.name, {"toxic": "tiny-toxic"}, "-lam*toxic",
                    "lam=0:1:0.5", ("austen-perplexity",), {"lam": 0.3})  # fmt: skip
    monkeypatch.setitem(PRESETS, preset.name, preset)
    zoo = {"tiny-toxic": adapters["llama"]["lora_b"]}
    real = controller_module.zoo_adapter_path
    monkeypatch.setattr(controller_module, "zoo_adapter_path", lambda name: zoo.get(name) or real(name))
    return base


def unzip(archive: Path, into: Path) -> Path:
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(into)
    return into


def composed_logits(controller: Controller, session: str = "tab") -> torch.Tensor:
    with torch.inference_mode(), controller.manager.model_for(session) as base:
        return base.model(input_ids=INPUT).logits.clone()


# export ----------------------------------------------------------------------


def test_the_preview_says_what_the_zip_will_hold_and_follows_the_composition(controller) -> None:
    assert controller.export_preview("tab").startswith("**Nothing to export yet**")
    controller.recompose("tab", "lam*a + (1-lam)*toxic", {"lam": 0.25})
    preview = controller.export_preview("tab")
    state = controller.manager.state("tab")
    for shown in ("`lora-lam-a-plus-1-minus-lam-toxic__lam=0.25.zip`", "PEFT LoRA adapter", "`lam*a + (1-lam)*toxic`",
                  "lam=0.25", "| mode | exact |", "CAUSAL_LM", "README.md", "composition.json",
                  state.modules["a"].fingerprint, state.modules["toxic"].fingerprint, "| a | lora | 0.25 |",
                  "| toxic | lora | 0.75 |"):  # fmt: skip
        assert shown in preview, shown
    assert "lora_b" in preview  # the module's source
    controller.recompose("tab", "-lam*toxic", {"lam": 0.5}, "paper")
    after = controller.export_preview("tab")
    assert "`lora-minus-lam-toxic__lam=0.5__paper.zip`" in after and "| mode | paper |" in after
    assert "| a |" not in after  # only the modules the expression uses
    controller.recompose("tab", "lam*toxic", {"lam": 0.0})
    assert "every coefficient is 0" in controller.export_preview("tab")


def test_the_zip_is_named_by_its_expression_and_values(controller) -> None:
    controller.recompose("tab", "-lam*toxic", {"lam": 0.2})
    archive = controller.export("tab")
    assert archive.name == "lora-minus-lam-toxic__lam=0.2.zip"
    assert f"`{archive.name}`" in controller.export_preview("tab")
    two = export_file_name("ia3", "lam*a + mu*b", {"mu": -0.5, "lam": 1.0}, "exact")
    assert two == "ia3-lam-a-plus-mu-b__lam=1_mu=-0.5.zip"
    assert export_file_name("lora", "0.5*a", {}, "exact") == "lora-0.5-a.zip"
    assert export_file_name("red", "a/2 - b", {}, "paper") == "red-a-over-2-minus-b__paper.zip"


def test_the_zip_holds_a_model_card_and_composition_json(controller, base_dirs, tmp_path) -> None:
    shown = controller.recompose("tab", "lam*a + (1-lam)*toxic", {"lam": 0.25})
    folder = unzip(controller.export("tab"), tmp_path / "out")
    assert {p.name for p in folder.iterdir()} == {"adapter_config.json", "adapter_model.safetensors", "README.md",
                                                 "composition.json"}  # fmt: skip
    state = controller.manager.state("tab")
    fingerprints = {name: module.fingerprint for name, module in state.modules.items()}
    data = json.loads((folder / "composition.json").read_text())
    assert data["format"] == "lora" and data["expression"] == "lam*a + (1-lam)*toxic"
    assert data["canonical"] == "lam*a + (1 - lam)*toxic" and data["values"] == {"lam": 0.25}
    assert data["mode"] == "exact" and data["coefficients"] == {"a": 0.25, "toxic": 0.75}
    assert data["base"] == str(base_dirs["llama"]) and data["task_type"] == "CAUSAL_LM"
    assert data["workbench_version"] and data["readout"] == shown["readout"]  # measured at export: the row's
    assert data["modules"] == {name: {"source": str(state.modules[name].source), "fingerprint": fingerprints[name],
                                      "type": "lora"} for name in ("a", "toxic")}  # fmt: skip
    card = (folder / "README.md").read_text()
    for text in ("lam*a + (1-lam)*toxic", "lam=0.25", "| mode | exact |", *fingerprints.values(), shown["readout"],
                 "PeftModel.from_pretrained", "library_name: peft"):  # fmt: skip
        assert text in card, text
    assert "base_model:" not in card  # a local folder is no hub id: the Hub's metadata would reject it
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM" and config["base_model_name_or_path"] == str(base_dirs["llama"])


def test_the_readout_is_measured_when_the_composition_has_no_row(controller, tmp_path) -> None:
    controller.manager.set_composition("tab", "-lam*toxic", {"lam": 0.7})  # set without a recompose: no row
    assert len(controller.ui("tab").history) == 0
    data = json.loads((unzip(controller.export("tab"), tmp_path / "out") / "composition.json").read_text())
    assert data["readout"] == controller.readout("tab") and data["readout"].startswith("next token")


def test_a_zoo_base_is_recorded_by_its_hub_id(tiny_zoo, tmp_path) -> None:
    controller = Controller()
    controller.start("zoo", preset="tiny-unlearning")
    controller.recompose("zoo", "-lam*toxic", {"lam": 0.3})
    assert "`someone/tiny-llama` (loaded as `tiny-zoo-llama`)" in controller.export_preview("zoo")
    folder = unzip(controller.export("zoo"), tmp_path / "out")
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "someone/tiny-llama"
    data = json.loads((folder / "composition.json").read_text())
    assert (data["base"], data["base_loaded_as"]) == ("someone/tiny-llama", "tiny-zoo-llama")
    assert "base_model: someone/tiny-llama" in (folder / "README.md").read_text()
    from workbench.catalog.bases import ZOO_BASES as real

    assert real["smollm2-135m-instruct"].hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert controller_module.base_hub_id("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.mark.parametrize("pair", [("lora_a", "lora_b"), ("ia3_a", "ia3_b")])
def test_peft_loads_the_export_and_computes_what_the_workbench_ran(base_dirs, adapters, monkeypatch, tmp_path,
                                                                    pair) -> None:  # fmt: skip
    from peft import PeftModel

    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", str(base_dirs["llama"].parent.parent))
    controller = Controller()
    controller.start("peft", base=str(base_dirs["llama"]))
    controller.add_adapter("peft", "a", str(adapters["llama"][pair[0]]))
    controller.add_adapter("peft", "b", str(adapters["llama"][pair[1]]))
    controller.recompose("peft", "lam*a + (1-lam)*b" if pair[0] == "lora_a" else "0.6*a + 0.4*b", {"lam": 0.3}
                         if pair[0] == "lora_a" else {})  # fmt: skip
    expected = composed_logits(controller, "peft")
    folder = unzip(controller.export("peft"), tmp_path / "out")
    model = PeftModel.from_pretrained(load_base(base_dirs, "llama"), folder).eval()
    assert model.peft_config["default"].task_type == "CAUSAL_LM"
    assert type(model).__name__ == "PeftModelForCausalLM"
    with torch.inference_mode():
        got = model(input_ids=INPUT).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_a_mixed_export_is_a_composition_folder_that_still_reloads(base_dirs, adapters, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", str(base_dirs["llama"].parent.parent))
    controller = Controller()
    controller.start("mixed", base=str(base_dirs["llama"]))
    controller.add_adapter("mixed", "a", str(adapters["llama"]["lora_a"]))
    controller.add_adapter("mixed", "s", str(adapters["llama"]["ia3_a"]))
    controller.recompose("mixed", "lam*a + s", {"lam": 0.5})
    assert "composition folder" in controller.export_preview("mixed")
    archive = controller.export("mixed")
    assert archive.name == "composition-lam-a-plus-s__lam=0.5.zip"
    folder = unzip(archive, tmp_path / "out")
    data = json.loads((folder / "composition.json").read_text())
    assert data["modules"]["a"]["path"] == "modules/a" and data["modules"]["a"]["type"] == "lora"
    assert data["modules"]["s"]["fingerprint"] == controller.manager.state("mixed").modules["s"].fingerprint
    composition, _ = load_composition(folder)
    assert composition.combination.canonical == "lam*a + s" and dict(composition.values) == {"lam": 0.5}
    for sub in ("a", "s"):  # each module inside is a PEFT adapter on the same base, with its task type
        config = json.loads((folder / "modules" / sub / "adapter_config.json").read_text())
        assert config["task_type"] == "CAUSAL_LM" and config["base_model_name_or_path"] == str(base_dirs["llama"])
    assert (folder / "README.md").is_file()


def test_task_types_follow_the_base() -> None:
    assert task_type_for("causal-lm", False) == "CAUSAL_LM"
    assert task_type_for("seq2seq", False) == "SEQ_2_SEQ_LM"
    assert task_type_for("classifier", False) == "SEQ_CLS"
    assert task_type_for("encoder", True) == "SEQ_CLS"  # MiniLM with a module's task head
    assert task_type_for("encoder", False) == "FEATURE_EXTRACTION"
    assert is_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct") and not is_hub_id("/tmp/x") and not is_hub_id("a/b/c")


def test_an_encoder_export_is_a_feature_extractor(base_dirs, adapters, monkeypatch, tmp_path) -> None:
    from peft import PeftModel

    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", str(base_dirs["bert"].parent.parent))
    controller = Controller()
    controller.start("bert", base=str(base_dirs["bert"]))
    controller.add_adapter("bert", "a", str(adapters["bert"]["lora_a"]))
    controller.recompose("bert", "lam*a", {"lam": 0.5})
    folder = unzip(controller.export("bert"), tmp_path / "out")
    assert json.loads((folder / "adapter_config.json").read_text())["task_type"] == "FEATURE_EXTRACTION"
    model = PeftModel.from_pretrained(load_base(base_dirs, "bert"), folder)
    assert type(model).__name__ == "PeftModelForFeatureExtraction"


def test_push_is_refused_offline(controller, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    controller.recompose("tab", "-lam*toxic", {"lam": 0.2})
    with pytest.raises(WorkbenchError, match="offline"):
        controller.push_to_hub("tab", "someone/something", "hf_token")


# history ---------------------------------------------------------------------


def test_compare_to_base_and_a_return_to_a_row_add_no_row(controller) -> None:
    controller.recompose("tab", "-lam*toxic", {"lam": 0.2})
    # "compare to base" recomposes what is on screen, then reads the base
    controller.recompose("tab", "-lam*toxic", {"lam": 0.2})
    controller.readout("tab", use_base=True)
    assert len(controller.history("tab")) == 1
    controller.recompose("tab", "-lam*toxic", {"lam": 1.3})
    controller.recompose("tab", "-lam*toxic", {"lam": 0.2})  # back to the first λ
    controller.recompose("tab", "-lam*toxic", {"lam": 0.2})  # and compare ticked there
    assert list(controller.history("tab")["values"]) == ["lam=0.2", "lam=1.3"]
    controller.restore("tab", 0)
    controller.recompose("tab", "-lam*toxic", {"lam": 0.2})  # the render after a restore
    assert len(controller.history("tab")) == 2
    controller.recompose("tab", "-lam*toxic", {"lam": 0.2}, "paper")  # another mode is another row
    assert list(controller.history("tab")["mode"]) == ["exact", "exact", "paper"]


def test_rows_show_their_base_and_preset(tiny_zoo, base_dirs, monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", str(base_dirs["llama"].parent.parent))
    controller = Controller()
    controller.start("s", preset="tiny-unlearning")
    controller.recompose("s", "-lam*toxic", {"lam": 0.3})
    controller.load_base("s", str(base_dirs["gpt2"]))  # a bare base: no preset
    controller.recompose("s", "", {})
    controller.start("s", base=str(base_dirs["llama"]))
    controller.recompose("s", "", {})
    table = controller.history("s")
    assert list(table.columns) == ["#", "time", "expression", "values", "mode", "base", "preset", "readout"]
    assert list(table["base"]) == ["tiny-zoo-llama", str(base_dirs["gpt2"]), str(base_dirs["llama"])]
    assert list(table["preset"]) == ["tiny-unlearning", "(none)", "(none)"]
    entry = controller.restore("s", 0)  # back on the preset's base and module
    assert entry.preset == "tiny-unlearning" and controller.ui("s").preset == "tiny-unlearning"
    assert controller.manager.state("s").base == "tiny-zoo-llama"


def test_history_and_export_refresh_by_themselves(monkeypatch) -> None:
    """The app wires the tables to their tab's select and to every change Compose shows:
    no Refresh click, no timer."""
    from workbench.ui.app import build_app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = build_app(Controller()).config
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"] if c.get("props", {}).get("elem_id")}
    tabs = {c["props"].get("label"): c["id"] for c in config["components"] if c["type"] in ("tabitem", "tab")}
    for tab, target in (("History", ids["history-table"]), ("Export", ids["export-preview"])):
        refreshes = [d for d in config["dependencies"] if d["outputs"] == [target]]
        triggers = {tuple(t) for d in refreshes for t in d["targets"]}
        assert (tabs[tab], "select") in triggers, tab
        for compose in ("readout", "canonical", "coefficients"):
            assert (ids[compose], "change") in triggers, (tab, compose)
    assert not any(c["type"] == "timer" for c in config["components"])


@pytest.mark.parametrize(("offline", "shown"), [("1", False), ("", True)])
def test_push_is_hidden_offline(monkeypatch, offline, shown) -> None:
    from workbench.ui.app import build_app

    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    config = build_app(Controller()).config
    push = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "export-push")
    assert push["props"]["visible"] is shown
