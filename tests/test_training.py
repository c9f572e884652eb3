"""Training recipes: a few steps on the tiny LLaMA change only what each PEM type owns."""

import pytest
import torch
from conftest import load_base
from safetensors.torch import load_file

from workbench.catalog.training_settings import TrainSettings
from workbench.errors import WorkbenchError
from workbench.modules import PEM_TYPES, IA3Module, LoraModule, RedModule, SparseModule, load_module
from workbench.studio.training import TRAINERS, load_trainable, lota_mask, method_name, train

TEXTS = ["the cat sat on the mat", "a dog barked at night", "rain fell on the roof", "we ate soup and bread"]
SETTINGS = TrainSettings(steps=4, learning_rate=1e-2, batch_size=2, max_length=24, calibration_steps=3, density=0.05)


def test_every_pem_type_has_one_trainer_named_for_its_method() -> None:
    assert set(TRAINERS) == set(PEM_TYPES)  # a new type without a trainer, or a trainer for no type, fails here
    assert [method_name(t) for t in ("lora", "ia3", "red", "sparse")] == ["LoRA", "(IA)³", "RED", "LoTA"]
    with pytest.raises(WorkbenchError, match="no trainer for PEM type 'lota'; choose lora"):
        train("lota", "unused", TEXTS, SETTINGS, "unused")


@pytest.mark.parametrize(("pem_type", "cls"), [("lora", LoraModule), ("ia3", IA3Module), ("red", RedModule)])
def test_adapter_types_train_and_load(base_dirs, tmp_path, pem_type, cls) -> None:
    module, loss = train(pem_type, base_dirs["llama"], TEXTS, SETTINGS, tmp_path / pem_type)
    assert isinstance(module, cls) and loss > 0 and module.delta_norm > 0
    assert isinstance(load_module(tmp_path / pem_type), cls)


def test_red_training_changes_only_the_edit_vectors(base_dirs, tmp_path, monkeypatch) -> None:
    """The model RED trained holds the base's every tensor unchanged; only its vectors moved."""
    from workbench.studio import training

    loaded = []

    def keep(*args, **kwargs):
        loaded.append(load_trainable(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(training, "load_trainable", keep)
    module, _ = train("red", base_dirs["llama"], TEXTS, SETTINGS, tmp_path / "red")
    assert set(module.vectors) == {"model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"}
    assert all(v.scaling.shape == (32,) for v in module.vectors.values())
    assert all(not torch.equal(v.scaling, torch.ones(32)) and v.bias.abs().sum() > 0 for v in module.vectors.values())
    [(trained, _)] = loaded
    base = load_file(str(base_dirs["llama"] / "model.safetensors"))
    tensors = trained.state_dict()
    assert set(tensors) == set(base)
    changed = [name for name in base if not torch.equal(tensors[name], base[name])]
    assert not changed, changed


@pytest.mark.parametrize(("schedule", "expected"), [("constant", [1e-2] * 4), ("linear", [0.0, 5e-3, 1e-2, 5e-3])])
def test_the_learning_rate_follows_the_settings_schedule(base_dirs, tmp_path, monkeypatch, schedule, expected) -> None:
    """Linear: RED's GLUE recipe, warm up over the first steps, then decay to 0; the head's
    rate follows the same curve. Constant: every other recipe, unchanged."""
    from dataclasses import replace

    seen = []
    step = torch.optim.AdamW.step

    def record(self, *args, **kwargs):
        seen.append([group["lr"] for group in self.param_groups])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", record)
    settings = replace(SETTINGS, steps=4, learning_rate=1e-2, schedule=schedule, warmup_ratio=0.5)
    train("red", base_dirs["llama"], TEXTS, settings, tmp_path / "red")
    assert [rates[0] for rates in seen] == pytest.approx(expected)
    assert settings.optimisation == ("AdamW lr 0.01" if schedule == "constant" else
                                  "AdamW lr 0.01, 2 warmup steps then linear decay to 0")  # fmt: skip


def test_a_recipe_that_names_rmsprop_trains_both_lota_phases_with_it(base_dirs, tmp_path, monkeypatch) -> None:
    """RMSprop, at PyTorch's defaults, is the LoTA paper's optimiser; AdamW stays every other recipe's."""
    from dataclasses import replace

    steps = []
    step = torch.optim.RMSprop.step

    def record(self, *args, **kwargs):
        steps.append(self.defaults["alpha"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.RMSprop, "step", record)
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda *a, **k: pytest.fail("AdamW stepped"))
    settings = replace(SETTINGS, optimiser="RMSprop")
    train("sparse", base_dirs["llama"], TEXTS, settings, tmp_path / "lota")
    assert steps == [0.99] * (settings.calibration_steps + settings.steps)  # PyTorch's default smoothing
    assert settings.optimisation == "RMSprop lr 0.01"


def test_lota_changes_only_masked_weights_and_lotto_is_disjoint(base_dirs, tmp_path) -> None:
    first, _ = train("sparse", base_dirs["llama"], TEXTS, SETTINGS, tmp_path / "lota")
    assert isinstance(first, SparseModule) and first.config["method"] == "lota"
    total = sum(p.numel() for n, p in load_base(base_dirs, "llama").named_parameters()
                if p.dim() == 2 and "embed" not in n)  # fmt: skip
    assert 0 < first.num_parameters <= int(0.05 * total) + 2
    second, _ = train("sparse", base_dirs["llama"], TEXTS[::-1], SETTINGS, tmp_path / "lotto",
                      exclude=tmp_path / "lota")  # fmt: skip
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
