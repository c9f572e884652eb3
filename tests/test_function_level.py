"""The composed model computes what PEFT (or a hand-built reference) computes.

For every tiny base (GPT-2 with Conv1D, LLaMA, BERT, T5): fold a composition into the
weights, swap it in, and compare outputs with a PEFT model carrying the exported
adapter, or the original adapter for a single module with coefficient 1.
"""

import re

import pytest
import torch
from conftest import KINDS, load_base, outputs
from peft import PeftModel

from workbench.algebra import compose, save_composition
from workbench.modules import fold, load_module
from workbench.modules.red import RED_TARGETS
from workbench.runtime import activate, base_lookup, deactivate

TOLERANCE = {"atol": 2e-5, "rtol": 1e-4}


def composed_outputs(base_dirs, kind, composition) -> torch.Tensor:
    model = load_base(base_dirs, kind)
    saved = activate(model, fold(composition.edits(), base_lookup(model)))
    result = outputs(model, kind)
    deactivate(model, saved)
    return result


def peft_outputs(base_dirs, kind, adapter_dir) -> torch.Tensor:
    model = PeftModel.from_pretrained(load_base(base_dirs, kind), str(adapter_dir)).eval()
    return outputs(model, kind)


@pytest.fixture(scope="module")
def loaded(adapters):
    return {kind: {name: load_module(path) for name, path in paths.items()} for kind, paths in adapters.items()}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("name", ["lora_a", "lora_c", "ia3_a"])
def test_single_module_matches_original_adapter(base_dirs, adapters, loaded, kind, name) -> None:
    composition = compose(loaded[kind], name)
    expected = peft_outputs(base_dirs, kind, adapters[kind][name])
    assert not torch.allclose(expected, outputs(load_base(base_dirs, kind), kind), atol=1e-3)
    torch.testing.assert_close(composed_outputs(base_dirs, kind, composition), expected, **TOLERANCE)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(
    ("expression", "values", "mode"),
    [
        ("0.7*lora_a - 0.4*lora_c", {}, "exact"),
        ("lam*lora_a + (1-lam)*lora_b", {"lam": 0.3}, "exact"),
        ("lam*lora_a + (1-lam)*lora_b", {"lam": 0.3}, "paper"),
        ("-lora_a", {}, "paper"),
        ("-0.6*ia3_a", {}, "exact"),
        ("lam*ia3_a + (1-lam)*ia3_b", {"lam": 0.8}, "paper"),
    ],
)
def test_exported_adapter_matches_composition(base_dirs, loaded, tmp_path, kind, expression, values, mode) -> None:
    composition = compose(loaded[kind], expression, values, mode)
    assert save_composition(composition, loaded[kind], tmp_path / "out") in ("lora", "ia3")
    torch.testing.assert_close(
        composed_outputs(base_dirs, kind, composition), peft_outputs(base_dirs, kind, tmp_path / "out"), **TOLERANCE
    )


def red_hooks(model: torch.nn.Module, module, coefficient: float) -> list:
    """RED as the official code applies it: scale and shift the projection's output."""
    handles = []
    pattern = RED_TARGETS[model.config.model_type] if hasattr(model, "config") else None
    for path, submodule in model.named_modules():
        target = re.sub(r"^base_model\.model\.", "", path)
        if target in module.vectors and (pattern is None or re.fullmatch(pattern, target)):
            vector = module.vectors[target]
            scaling = 1 + coefficient * (vector.scaling - 1)
            shift = coefficient * vector.bias
            handles.append(submodule.register_forward_hook(lambda _m, _i, out, s=scaling, b=shift: out * s + b))
    return handles


@pytest.mark.parametrize("kind", list(KINDS))
def test_red_matches_output_hooks(base_dirs, loaded, kind) -> None:
    model = load_base(base_dirs, kind)
    red_hooks(model, loaded[kind]["red_a"], -0.5)
    expected = outputs(model, kind)
    composition = compose(loaded[kind], "-0.5*red_a")
    torch.testing.assert_close(composed_outputs(base_dirs, kind, composition), expected, **TOLERANCE)


@pytest.mark.parametrize("kind", list(KINDS))
def test_sparse_matches_state_dict_addition(base_dirs, loaded, kind) -> None:
    model = load_base(base_dirs, kind)
    a, b = loaded[kind]["sparse_a"], loaded[kind]["sparse_b"]
    with torch.no_grad():
        parameters = dict(model.named_parameters())
        for name in set(a.tensors) | set(b.tensors):
            for coefficient, module in ((0.5, a), (-1.0, b)):
                if name in module.tensors:
                    parameters[name].add_(coefficient * module.tensors[name].dense())
    composition = compose(loaded[kind], "0.5*sparse_a - sparse_b")
    torch.testing.assert_close(composed_outputs(base_dirs, kind, composition), outputs(model, kind), **TOLERANCE)


@pytest.mark.parametrize("kind", list(KINDS))
def test_mixed_types_stack_additive_then_multiplicative(base_dirs, adapters, loaded, kind) -> None:
    """Reference: merge the LoRA with PEFT, add τ, wrap with the (IA)³ adapter in PEFT, then
    hook RED on the outside: the documented stacking order, built independently."""
    model = PeftModel.from_pretrained(load_base(base_dirs, kind), str(adapters[kind]["lora_a"])).merge_and_unload()
    sparse = loaded[kind]["sparse_a"]
    with torch.no_grad():
        parameters = dict(model.named_parameters())
        for name, tensor in sparse.tensors.items():
            parameters[name].add_(0.5 * tensor.dense())
    model = PeftModel.from_pretrained(model, str(adapters[kind]["ia3_a"])).eval()
    red_hooks(model, loaded[kind]["red_b"], -1.0)
    expected = outputs(model, kind)
    composition = compose(loaded[kind], "lora_a + ia3_a - red_b + 0.5*sparse_a")
    torch.testing.assert_close(composed_outputs(base_dirs, kind, composition), expected, **TOLERANCE)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_deactivate_restores_base_bit_identically(base_dirs, loaded, kind) -> None:
    model = load_base(base_dirs, kind)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    base_output = outputs(model, kind)
    composition = compose(loaded[kind], "lora_a + ia3_a - red_b + 0.5*sparse_a")
    saved = activate(model, fold(composition.edits(), base_lookup(model)))
    assert not torch.equal(outputs(model, kind), base_output)
    deactivate(model, saved)
    after = dict(model.named_parameters())
    assert set(after) == set(before)
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert torch.equal(outputs(model, kind), base_output)
