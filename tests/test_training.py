"""Training recipes: a few steps on the tiny LLaMA change only what each PEM type owns."""

import pytest
import torch
from conftest import load_base

from workbench.modules import IA3Module, LoraModule, RedModule, SparseModule, load_module
from workbench.zoo.training import TrainSettings, lota_mask, train

TEXTS = ["the cat sat on the mat", "a dog barked at night", "rain fell on the roof", "we ate soup and bread"]
SETTINGS = TrainSettings(steps=4, learning_rate=1e-2, batch_size=2, max_length=24, calibration_steps=3, density=0.05)


@pytest.mark.parametrize(("pem_type", "cls"), [("lora", LoraModule), ("ia3", IA3Module), ("red", RedModule)])
def test_adapter_types_train_and_load(base_dirs, tmp_path, pem_type, cls) -> None:
    module, loss = train(pem_type, base_dirs["llama"], TEXTS, SETTINGS, tmp_path / pem_type)
    assert isinstance(module, cls) and loss > 0 and module.delta_norm > 0
    assert isinstance(load_module(tmp_path / pem_type), cls)


def test_red_training_changes_only_the_edit_vectors(base_dirs, tmp_path) -> None:
    module, _ = train("red", base_dirs["llama"], TEXTS, SETTINGS, tmp_path / "red")
    assert set(module.vectors) == {"model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"}
    assert all(v.scaling.shape == (32,) for v in module.vectors.values())
    # the base folder is untouched: a freshly loaded base equals the saved one
    fresh = load_base(base_dirs, "llama")
    from safetensors.torch import load_file

    saved = load_file(str(base_dirs["llama"] / "model.safetensors"))
    assert all(torch.equal(saved[n], p) for n, p in fresh.named_parameters() if n in saved)


def test_lota_changes_only_masked_weights_and_lotto_is_disjoint(base_dirs, tmp_path) -> None:
    first, _ = train("lota", base_dirs["llama"], TEXTS, SETTINGS, tmp_path / "lota")
    assert isinstance(first, SparseModule) and first.config["method"] == "lota"
    total = sum(p.numel() for n, p in load_base(base_dirs, "llama").named_parameters()
                if p.dim() == 2 and "embed" not in n)  # fmt: skip
    assert 0 < first.num_parameters <= int(0.05 * total) + 2
    second, _ = train("lota", base_dirs["llama"], TEXTS[::-1], SETTINGS, tmp_path / "lotto", exclude=tmp_path / "lota")
    assert second.config["method"] == "lotto" and second.num_parameters > 0
    for name, tensor in second.tensors.items():
        if name in first.tensors:
            overlap = set(tensor.indices.tolist()) & set(first.tensors[name].indices.tolist())
            assert not overlap, name


def test_lota_mask_is_the_global_top_k() -> None:
    deltas = {"a": torch.tensor([[0.1, -5.0], [0.2, 0.0]]), "b": torch.tensor([3.0, -0.3, 4.0])}
    mask = lota_mask(deltas, density=3 / 7)
    assert mask["a"].tolist() == [[False, True], [False, False]] and mask["b"].tolist() == [True, False, True]
    allowed = {"a": torch.tensor([[True, False], [True, True]]), "b": torch.ones(3, dtype=torch.bool)}
    mask = lota_mask(deltas, density=2 / 7, allowed=allowed)
    assert not mask["a"][0, 1] and mask["b"].tolist() == [True, False, True]
