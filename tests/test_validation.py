"""Bad modules and bad combinations are refused with one line that names the problem."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from workbench.algebra import compose
from workbench.errors import IncompatibleError, ModuleFormatError
from workbench.modules import BaseShapes, RedModule, SparseModule, load_module


def copy_adapter(src, dst):
    shutil.copytree(src, dst)
    return dst


def edit_tensors(folder, file, change):
    tensors = load_file(str(folder / file))
    change(tensors)
    save_file(tensors, str(folder / file))


def edit_config(folder, file, change):
    config = json.loads((folder / file).read_text())
    change(config)
    (folder / file).write_text(json.dumps(config))


def one_line(exc: BaseException) -> str:
    message = str(exc)
    assert "\n" not in message and message
    return message


def test_nan_tensor_is_refused_naming_file_and_tensor(adapters, tmp_path) -> None:
    folder = copy_adapter(adapters["llama"]["lora_a"], tmp_path / "nan")
    edit_tensors(folder, "adapter_model.safetensors", lambda t: next(iter(t.values()))[0, 0].fill_(float("nan")))
    with pytest.raises(ModuleFormatError) as caught:
        load_module(folder)
    message = one_line(caught.value)
    assert "adapter_model.safetensors" in message and "NaN or Inf" in message and "lora_" in message


def test_inf_in_sparse_values_is_refused(adapters, tmp_path) -> None:
    folder = copy_adapter(adapters["llama"]["sparse_a"], tmp_path / "inf")
    edit_tensors(
        folder, "pem_model.safetensors", lambda t: t[next(k for k in t if k.endswith("values"))].fill_(float("inf"))
    )
    with pytest.raises(ModuleFormatError, match="values holds NaN or Inf"):
        load_module(folder)


@pytest.mark.parametrize("missing", ["adapter_model.safetensors", "adapter_config.json"])
def test_missing_file_is_named(adapters, tmp_path, missing) -> None:
    folder = copy_adapter(adapters["llama"]["lora_a"], tmp_path / "missing")
    (folder / missing).unlink()
    with pytest.raises(ModuleFormatError) as caught:
        load_module(folder)
    assert missing in one_line(caught.value) or "not a PEM folder" in str(caught.value)


def test_missing_module_path(tmp_path) -> None:
    with pytest.raises(ModuleFormatError, match="does not exist"):
        load_module(tmp_path / "nowhere")


def test_config_rank_must_match_tensors(adapters, tmp_path) -> None:
    folder = copy_adapter(adapters["llama"]["lora_a"], tmp_path / "rank")
    edit_config(folder, "adapter_config.json", lambda c: c.update(r=16))
    with pytest.raises(ModuleFormatError, match="the config says r=16 for .* the tensors have 4"):
        load_module(folder)


def test_lora_half_missing(adapters, tmp_path) -> None:
    folder = copy_adapter(adapters["llama"]["lora_a"], tmp_path / "half")
    edit_tensors(folder, "adapter_model.safetensors", lambda t: t.pop(next(k for k in t if "lora_B" in k)))
    with pytest.raises(ModuleFormatError, match="has no lora_B tensor"):
        load_module(folder)


def test_ia3_orientation_must_match_feedforward_list(adapters, tmp_path) -> None:
    folder = copy_adapter(adapters["llama"]["ia3_a"], tmp_path / "ff")
    edit_config(folder, "adapter_config.json", lambda c: c.update(feedforward_modules=[]))
    with pytest.raises(ModuleFormatError, match="output target in the config, but ia3_l has shape"):
        load_module(folder)


def test_sparse_config_must_list_its_tensors(adapters, tmp_path) -> None:
    folder = copy_adapter(adapters["llama"]["sparse_a"], tmp_path / "sp")
    edit_config(folder, "pem_config.json", lambda c: c["shapes"].update({"ghost.weight": [2, 2]}))
    with pytest.raises(ModuleFormatError, match=r"has no ghost.weight.indices, which pem_config.json lists"):
        load_module(folder)


def test_unsupported_peft_type_and_garbage(tmp_path) -> None:
    (tmp_path / "prefix").mkdir()
    (tmp_path / "prefix" / "adapter_config.json").write_text('{"peft_type": "PREFIX_TUNING"}')
    with pytest.raises(ModuleFormatError, match="'PREFIX_TUNING' is not supported"):
        load_module(tmp_path / "prefix")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "adapter_config.json").write_text("{not json")
    with pytest.raises(ModuleFormatError, match="is not valid JSON"):
        load_module(tmp_path / "junk")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModuleFormatError, match="is not a PEM folder"):
        load_module(tmp_path / "empty")


def test_corrupt_safetensors(adapters, tmp_path) -> None:
    folder = copy_adapter(adapters["llama"]["lora_a"], tmp_path / "corrupt")
    (folder / "adapter_model.safetensors").write_bytes(b"\x00" * 12)
    with pytest.raises(ModuleFormatError, match="not a readable safetensors file"):
        load_module(folder)


def test_module_for_another_base_is_refused(base_dirs, adapters) -> None:
    base = BaseShapes.from_folder(base_dirs["gpt2"])
    with pytest.raises(IncompatibleError, match="targets model.layers.0.* which base .* does not have"):
        load_module(adapters["llama"]["lora_a"], base)


def test_shape_mismatch_with_base_is_refused(base_dirs, adapters) -> None:
    shapes = dict(BaseShapes.from_folder(base_dirs["llama"]).shapes)
    shapes["model.layers.0.self_attn.q_proj.weight"] = (64, 32)
    base = BaseShapes.from_named_shapes("other-llama", shapes)
    with pytest.raises(IncompatibleError, match=r"q_proj.weight is \(64, 32\) there, the module needs \(32, 32\)"):
        load_module(adapters["llama"]["lora_a"], base)


def test_modules_fit_their_own_base(base_dirs, adapters) -> None:
    for kind, paths in adapters.items():
        base = BaseShapes.from_folder(base_dirs[kind])
        for path in paths.values():
            load_module(path, base)


def test_modules_recorded_for_different_bases_do_not_compose() -> None:
    vector = torch.ones(4)
    from workbench.modules.red import RedVector

    a = RedModule({"x": RedVector(vector, vector)}, {"base_model_name_or_path": "org/model-one"})
    b = RedModule({"x": RedVector(vector, vector)}, {"base_model_name_or_path": "org/model-two"})
    with pytest.raises(IncompatibleError, match="made for different base models: a \\(org/model-one\\), b"):
        compose({"a": a, "b": b}, "a + b")


def test_modules_with_disagreeing_shapes_do_not_compose() -> None:
    from workbench.modules.sparse import SparseTensor

    a = SparseModule({"w": SparseTensor((2, 3), torch.tensor([0]), torch.tensor([1.0]))}, {})
    b = SparseModule({"w": SparseTensor((3, 2), torch.tensor([0]), torch.tensor([1.0]))}, {})
    with pytest.raises(IncompatibleError, match=r"b and a disagree on w \(\(3, 2\) vs \(2, 3\)\)"):
        compose({"a": a, "b": b}, "a - b")


def test_pth_is_read_weights_only(tmp_path) -> None:
    class Sneaky:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save(
        {"model.layers.0.mlp.down_proj.delta_vector.activation_scaling": Sneaky()}, tmp_path / "delta_vector.pth"
    )
    with pytest.raises(ModuleFormatError, match="not a weights-only torch state dict"):
        load_module(tmp_path / "delta_vector.pth")
