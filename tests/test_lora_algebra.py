"""LoRA composition checked against hand-computed references on PEFT-made adapters."""

import math

import pytest
import torch

from workbench.algebra import compose
from workbench.errors import IncompatibleError
from workbench.modules import LoraModule, load_module


@pytest.fixture(scope="module")
def loras(adapters):
    return {name: load_module(adapters["llama"][name]) for name in ("lora_a", "lora_b", "lora_c")}


def test_load_reads_scaling_rslora_and_patterns(loras) -> None:
    a, c = loras["lora_a"], loras["lora_c"]
    assert all(math.isclose(f.scale, 8 / 4) for f in a.factors.values())
    for target, factor in c.factors.items():
        if target.endswith("q_proj"):
            assert factor.rank == 6 and math.isclose(factor.scale, 5 / math.sqrt(6))
        else:
            assert factor.rank == 2 and math.isclose(factor.scale, 3 / math.sqrt(2))


def test_paper_mode_interpolates_factors_componentwise(loras) -> None:
    a, b = loras["lora_a"], loras["lora_b"]
    result = compose(loras, "lam*lora_a + (1-lam)*lora_b", {"lam": 0.3}, mode="paper").parts[0]
    for target, factor in result.factors.items():
        torch.testing.assert_close(factor.A, 0.3 * a.factors[target].A + 0.7 * b.factors[target].A)
        torch.testing.assert_close(factor.B, 0.3 * a.factors[target].B + 0.7 * b.factors[target].B)
        assert factor.scale == a.factors[target].scale


def test_paper_mode_on_one_lora_scales_B_only_so_delta_w_is_linear(loras) -> None:
    """The paper's unlearning code: -0.6*a gives ΔW = -0.6·ΔW_a, not -0.36·ΔW_a."""
    a = loras["lora_a"]
    negated = compose(loras, "-lora_a", mode="paper").parts[0]
    weighted = compose(loras, "-0.6*lora_a", mode="paper").parts[0]
    for target, factor in a.factors.items():
        torch.testing.assert_close(negated.factors[target].A, factor.A)
        torch.testing.assert_close(negated.factors[target].B, -factor.B)
        torch.testing.assert_close(weighted.factors[target].A, factor.A)
        torch.testing.assert_close(weighted.factors[target].B, -0.6 * factor.B)
    for got, original in zip(weighted.delta_tensors(), a.delta_tensors(), strict=True):
        torch.testing.assert_close(got, -0.6 * original)


def test_paper_mode_on_two_loras_scales_both_factors(loras) -> None:
    """The paper's merge and analogy scripts: A = Σ|cᵢ|Aᵢ, B = Σ cᵢBᵢ (eq. 6 and 8)."""
    a, b = loras["lora_a"], loras["lora_b"]
    result = compose(loras, "-0.6*lora_a + 0.2*lora_b", mode="paper").parts[0]
    for target, factor in result.factors.items():
        torch.testing.assert_close(factor.A, 0.6 * a.factors[target].A + 0.2 * b.factors[target].A)
        torch.testing.assert_close(factor.B, -0.6 * a.factors[target].B + 0.2 * b.factors[target].B)


def test_exact_mode_sum_is_sum_of_products(loras) -> None:
    result = compose(loras, "0.7*lora_a - 0.4*lora_b + 1.5*lora_c").parts[0]
    terms = [(0.7, loras["lora_a"]), (-0.4, loras["lora_b"]), (1.5, loras["lora_c"])]
    for target, factor in result.factors.items():
        expected = sum(c * m.factors[target].scale * m.factors[target].B @ m.factors[target].A for c, m in terms)
        assert factor.rank == sum(m.factors[target].rank for _, m in terms)
        torch.testing.assert_close(factor.scale * factor.B @ factor.A, expected)


def test_exact_and_paper_differ_for_sums_of_loras_only(loras) -> None:
    exact = compose(loras, "0.5*lora_a + 0.5*lora_b").parts[0]
    paper = compose(loras, "0.5*lora_a + 0.5*lora_b", mode="paper").parts[0]
    target = next(iter(exact.factors))
    delta_exact = exact.delta_tensors()[0]
    delta_paper = paper.delta_tensors()[0]
    assert not torch.allclose(delta_exact, delta_paper)
    for single in ("lora_a", "-0.6*lora_a", "2.5*lora_b"):
        single_exact = compose(loras, single).parts[0].delta_tensors()[0]
        single_paper = compose(loras, single, mode="paper").parts[0].delta_tensors()[0]
        torch.testing.assert_close(single_exact, single_paper)
    assert target in paper.factors


def test_paper_mode_refuses_unequal_ranks(loras) -> None:
    with pytest.raises(IncompatibleError, match="down_proj has rank 4 in one LoRA and 2 in another; use exact mode"):
        compose(loras, "lora_a + lora_c", mode="paper")


def test_saved_lora_round_trips(loras, tmp_path) -> None:
    result = compose(loras, "0.7*lora_a - 0.4*lora_c").parts[0]
    result.save(tmp_path / "out")
    loaded = LoraModule.load(tmp_path / "out")
    for target, factor in result.factors.items():
        torch.testing.assert_close(
            loaded.factors[target].scale * loaded.factors[target].B @ loaded.factors[target].A,
            factor.scale * factor.B @ factor.A,
        )


def test_the_cli_in_paper_mode_writes_minus_0_6_times_a_single_lora(base_dirs, adapters, tmp_path, capsys) -> None:
    from workbench.cli import main

    source = adapters["llama"]["lora_a"]
    code = main(["compose", "--base", str(base_dirs["llama"]), "--adapter", f"a={source}", "--expr=-0.6*a",
                 "--mode", "paper", "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    written, original = load_module(tmp_path / "out"), load_module(source)
    for got, expected in zip(written.delta_tensors(), original.delta_tensors(), strict=True):
        torch.testing.assert_close(got, -0.6 * expected)


def test_naive_negation_of_a_lora_is_the_lora_itself(loras) -> None:
    """The ablation the paper's Table 11 makes: negating A and B gives (-B)(-A) = BA."""
    a = loras["lora_a"]
    naive = compose(loras, "-lora_a", mode="naive").parts[0]
    for got, original in zip(naive.delta_tensors(), a.delta_tensors(), strict=True):
        torch.testing.assert_close(got, original)
    scaled = compose(loras, "-0.6*lora_a", mode="naive").parts[0]
    for got, original in zip(scaled.delta_tensors(), a.delta_tensors(), strict=True):
        torch.testing.assert_close(got, 0.36 * original)
