"""One home per PEM type: what the other layers know of a type they read from its class,
and the files they read (composition.json, merge options) are checked field by field."""

import json

import pytest
import torch

from workbench.algebra import MERGE_METHODS, MergeOptions, compose, load_composition, save_composition
from workbench.algebra.merging import applicable_merges, check_merge
from workbench.errors import IncompatibleError, ModuleFormatError, WorkbenchError
from workbench.modules import PEM_TYPES, SparseModule, load_module, pem_type_names
from workbench.modules.lora import matches_targets, pattern_value
from workbench.modules.red import RedModule, RedVector
from workbench.modules.sparse import SparseTensor


def test_every_type_carries_what_the_other_layers_read() -> None:
    assert pem_type_names() == {"lora": "LoRA", "sparse": "sparse task vector (LoTA)", "ia3": "(IA)³", "red": "RED"}
    for pem_type, cls in PEM_TYPES.items():
        assert cls.pem_type == pem_type and cls.description and "\n" not in cls.description
        assert cls.config_file.endswith(".json") and cls.weights_file.endswith(".safetensors")
        assert set(cls.merge_methods) <= set(MERGE_METHODS) - {"linear"}
    taken = {method for cls in PEM_TYPES.values() for method in cls.merge_methods}
    assert taken == set(MERGE_METHODS) - {"linear"}  # every merge method has a type that takes it


def test_applicable_merges_read_the_type(monkeypatch) -> None:
    assert applicable_merges(["sparse"]) == ("linear", "ties", "dare_linear", "dare_ties", "magnitude_prune")
    assert applicable_merges(["lora", "lora"]) == ("linear", "knots", "tsv_m", "iso_c")
    assert applicable_merges(["lora", "sparse"]) == applicable_merges(["red"]) == ("linear",)
    monkeypatch.setattr(RedModule, "merge_methods", ("ties",))
    assert applicable_merges(["red"]) == ("linear", "ties")
    check_merge("ties", ["red"], "exact")
    with pytest.raises(IncompatibleError, match="merge method ties applies to sparse task vectors only"):
        check_merge("ties", ["sparse", "red"], "exact")


def test_unsupported_peft_type_lists_the_peft_types_registered(tmp_path) -> None:
    (tmp_path / "loha").mkdir()
    (tmp_path / "loha" / "adapter_config.json").write_text('{"peft_type": "LOHA"}')
    with pytest.raises(ModuleFormatError, match="'LOHA' is not supported; supported are LORA and IA3$"):
        load_module(tmp_path / "loha")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModuleFormatError, match=r"expected adapter_config.json \(LoRA or \(IA\)³\), pem_config.json"):
        load_module(tmp_path / "empty")


def test_peft_target_and_pattern_matching() -> None:
    """PEFT's own matching: a listed name matches a whole path segment at the end, a string
    is a regular expression over the whole path, a pattern key matches a suffix."""
    assert matches_targets("model.layers.0.self_attn.q_proj", ["q_proj", "v_proj"])
    assert not matches_targets("model.layers.0.self_attn.xq_proj", ["q_proj"])
    assert matches_targets("model.layers.0.mlp", r".*\.mlp")
    assert not matches_targets("model.layers.0.mlp.up", r".*\.mlp")
    assert matches_targets("anything", None) and matches_targets("anything", "all-linear")
    patterns = {"q_proj": 4, r"layers\.1\.v_proj": 2}
    assert pattern_value(patterns, "model.layers.1.v_proj", 8) == 2
    assert pattern_value(patterns, "model.layers.2.v_proj", 8) == 8
    assert pattern_value(patterns, "model.layers.2.q_proj", 8) == 4


def test_merge_options_name_the_field_in_one_line() -> None:
    assert MergeOptions("ties", 0.5, seed=3) == MergeOptions(method="ties", density=0.5, seed=3)
    assert hash(MergeOptions("ties", 1)) == hash(MergeOptions("ties", 1.0))
    with pytest.raises(WorkbenchError, match="^merge options: field 'method': Input should be 'linear', 'ties'"):
        MergeOptions("tie")
    with pytest.raises(WorkbenchError, match=r"^merge options: field 'seed': .*, got -1$"):
        MergeOptions("dare_linear", 0.5, seed=-1)


def _mixed_folder(tmp_path):
    red = RedModule({"x": RedVector(torch.tensor([1.5, 0.5]), torch.tensor([0.1, -0.2]))}, {})
    sparse = SparseModule({"w": SparseTensor((2, 3), torch.tensor([0, 4]), torch.tensor([1.0, -2.0]))}, {})
    modules = {"r": red, "s": sparse}
    composition = compose(modules, "lam*r + s", {"lam": 0.5})
    assert save_composition(composition, modules, tmp_path / "mixed") == "composition"
    return tmp_path / "mixed", composition


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(mode="fast"), "field 'mode': Input should be 'exact', 'paper' or 'naive', got 'fast'"),
        (lambda d: d["merge"].update(density=2), r"field 'merge.density': density must be in \(0, 1\]"),
        (lambda d: d["merge"].update(dens=0.5), "field 'merge.dens': Extra inputs are not permitted"),
        (lambda d: d["values"].update(lam=float("inf")), "field 'values.lam': Input should be a finite number"),
        (lambda d: d.pop("modules"), "field 'modules': Field required$"),
        (lambda d: d["modules"]["r"].pop("path"), "field 'modules.r.path': Field required$"),
        (lambda d: d.update(expression=3), "field 'expression': Input should be a valid string, got 3"),
    ],
)
def test_composition_json_errors_name_the_field(tmp_path, change, message) -> None:
    folder, _ = _mixed_folder(tmp_path)
    data = json.loads((folder / "composition.json").read_text())
    change(data)
    (folder / "composition.json").write_text(json.dumps(data))
    with pytest.raises(WorkbenchError, match=message) as caught:
        load_composition(folder)
    assert str(caught.value).startswith(f"{folder / 'composition.json'}: ") and "\n" not in str(caught.value)


def test_composition_json_ignores_what_an_export_record_adds(tmp_path) -> None:
    folder, composition = _mixed_folder(tmp_path)
    data = json.loads((folder / "composition.json").read_text())
    data |= {"format": "composition", "readout": "next token", "coefficients": {"r": 0.5, "s": 1.0}}
    data["modules"]["r"]["fingerprint"] = "abc"
    (folder / "composition.json").write_text(json.dumps(data))
    reloaded, modules = load_composition(folder)
    assert reloaded.key == composition.key and set(modules) == {"r", "s"}
