"""Formats in and out: RED's official .pth, sparse vectors from a fine-tune, composition folders."""

import pytest
import torch
from conftest import load_base, outputs

from workbench.algebra import compose, load_composition, save_composition
from workbench.modules import BaseShapes, SparseModule, fold, load_module
from workbench.modules.tensor_io import read_safetensors
from workbench.runtime import activate, base_lookup, deactivate


def test_red_official_pth_imports_like_our_format(base_dirs, adapters, tmp_path) -> None:
    ours = load_module(adapters["gpt2"]["red_a"])
    state = {}
    for target, vector in ours.vectors.items():
        state[f"{target}.delta_vector.activation_scaling"] = vector.scaling.reshape(1, -1)
        state[f"{target}.delta_vector.activation_bias"] = vector.bias.reshape(1, -1)
    state["transformer.h.0.mlp.c_proj.update_layer.weight"] = torch.zeros(2, 2)  # the wrapped Linear: ignored
    torch.save(state, tmp_path / "delta_vector.pth")
    imported = load_module(tmp_path / "delta_vector.pth", BaseShapes.from_folder(base_dirs["gpt2"]))
    assert imported.layout == "in_out" and set(imported.vectors) == set(ours.vectors)
    for target, vector in ours.vectors.items():
        torch.testing.assert_close(imported.vectors[target].bias, vector.bias)
    imported.save(tmp_path / "red")
    assert load_module(tmp_path / "red").targets == imported.targets


def test_red_scaling_only_defaults_bias_to_zero(tmp_path) -> None:
    torch.save(
        {"model.layers.0.mlp.down_proj.delta_vector.activation_scaling": torch.full((1, 4), 2.0)}, tmp_path / "d.pth"
    )
    module = load_module(tmp_path / "d.pth")
    vector = module.vectors["model.layers.0.mlp.down_proj"]
    assert torch.equal(vector.bias, torch.zeros(4)) and torch.equal(vector.scaling, torch.full((4,), 2.0))


def finetune(base_dirs, tmp_path, kind="llama"):
    model = load_base(base_dirs, kind)
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(tmp_path / "ft")
    return model


def test_sparse_from_finetuned_dense_reproduces_the_finetune(base_dirs, tmp_path) -> None:
    tuned = finetune(base_dirs, tmp_path)
    module = SparseModule.from_finetuned(
        lambda: read_safetensors(tmp_path / "ft" / "model.safetensors"),
        lambda: read_safetensors(base_dirs["llama"] / "model.safetensors"),
        base_model=str(base_dirs["llama"]),
    )
    model = load_base(base_dirs, "llama")
    composition = compose({"tau": module}, "tau")
    activate(model, fold(composition.edits(), base_lookup(model)))
    torch.testing.assert_close(outputs(model, "llama"), outputs(tuned, "llama"), atol=1e-5, rtol=1e-4)


def test_sparse_from_finetuned_keeps_the_global_top_k(base_dirs, tmp_path) -> None:
    finetune(base_dirs, tmp_path)
    ft = read_safetensors(tmp_path / "ft" / "model.safetensors")
    base = read_safetensors(base_dirs["llama"] / "model.safetensors")
    module = SparseModule.from_finetuned(lambda: ft, lambda: base, density=0.1)
    total = sum(t.numel() for name, t in base.items() if name in ft)
    kept = module.num_parameters
    assert abs(kept - int(0.1 * total)) <= 2
    smallest_kept = min(float(t.values.abs().min()) for t in module.tensors.values())
    largest_dropped = 0.0
    for name, tensor in ft.items():
        delta = (tensor - base[name]).reshape(-1)
        mask = torch.ones_like(delta, dtype=torch.bool)
        if name in module.tensors:
            mask[module.tensors[name].indices] = False
        if mask.any():
            largest_dropped = max(largest_dropped, float(delta[mask].abs().max()))
    assert smallest_kept >= largest_dropped
    module.save(tmp_path / "lota")
    again = load_module(tmp_path / "lota")
    assert again.num_parameters == kept and again.config["density"] == 0.1


def test_mixed_composition_folder_reloads_to_the_same_composition(base_dirs, adapters, tmp_path) -> None:
    modules = {name: load_module(adapters["llama"][name]) for name in ("lora_a", "ia3_b", "red_a", "sparse_b")}
    expression = "lam*lora_a + (1-lam)*ia3_b - 0.5*red_a + sparse_b"
    composition = compose(modules, expression, {"lam": 0.25})
    assert save_composition(composition, modules, tmp_path / "mixed") == "composition"
    reloaded, _ = load_composition(tmp_path / "mixed")
    assert reloaded.key == composition.key

    def run(comp):
        model = load_base(base_dirs, "llama")
        saved = activate(model, fold(comp.edits(), base_lookup(model)))
        result = outputs(model, "llama")
        deactivate(model, saved)
        return result

    torch.testing.assert_close(run(reloaded), run(composition))


def test_zero_combination_is_the_base(adapters, base_dirs) -> None:
    modules = {"a": load_module(adapters["llama"]["lora_a"])}
    composition = compose(modules, "a - a")
    assert composition.parts == () and composition.edits().parameter_names == set()


@pytest.mark.parametrize("name", ["lora_a", "ia3_a", "red_a", "sparse_a"])
def test_summary_numbers(adapters, name) -> None:
    module = load_module(adapters["llama"][name])
    assert module.num_parameters > 0 and module.delta_norm > 0 and module.targets
