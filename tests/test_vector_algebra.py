"""(IA)³, RED and sparse composition, against hand-computed references."""

import pytest
import torch

from workbench.algebra import MergeOptions, compose
from workbench.algebra.merging import magnitude_prune, random_drop, sign_elected_mean
from workbench.errors import IncompatibleError, WorkbenchError
from workbench.modules import IA3Module, RedModule, SparseModule, load_module
from workbench.modules.sparse import SparseTensor


@pytest.fixture(scope="module")
def modules(adapters):
    return {name: load_module(path) for name, path in adapters["llama"].items()}


def test_ia3_negation_is_two_minus_l(modules) -> None:
    l = modules["ia3_a"].vectors
    negated = compose(modules, "-ia3_a").parts[0]
    weighted = compose(modules, "-lam*ia3_a", {"lam": 0.6}).parts[0]
    for target, vector in l.items():
        torch.testing.assert_close(negated.vectors[target].l, 2 - vector.l)
        torch.testing.assert_close(weighted.vectors[target].l, 1 - 0.6 * (vector.l - 1))
        assert negated.vectors[target].feedforward == vector.feedforward


def test_ia3_interpolation_same_in_both_modes(modules) -> None:
    a, b = modules["ia3_a"].vectors, modules["ia3_b"].vectors
    for mode in ("exact", "paper"):
        result = compose(modules, "lam*ia3_a + (1-lam)*ia3_b", {"lam": 0.25}, mode=mode).parts[0]
        for target in a:
            torch.testing.assert_close(result.vectors[target].l, 0.25 * a[target].l + 0.75 * b[target].l)


def test_naive_negation_scales_the_stored_vectors(modules) -> None:
    """The ablation: -1·(IA)³ is -l (activations flipped), -1·RED is -s, where ⊖ gives 2 - l."""
    ia3, red = modules["ia3_a"].vectors, modules["red_a"].vectors
    naive_ia3 = compose(modules, "-0.5*ia3_a", mode="naive").parts[0]
    naive_red = compose(modules, "-red_a", mode="naive").parts[0]
    for target, vector in ia3.items():
        torch.testing.assert_close(naive_ia3.vectors[target].l, -0.5 * vector.l)
    for target, vector in red.items():
        torch.testing.assert_close(naive_red.vectors[target].scaling, -vector.scaling)
        torch.testing.assert_close(naive_red.vectors[target].bias, -vector.bias)
    with pytest.raises(IncompatibleError, match="naive mode needs modules of one type"):
        compose(modules, "-ia3_a - lora_a", mode="naive")


def test_ia3_feedforward_flag_follows_config(modules) -> None:
    vectors = modules["ia3_a"].vectors
    assert {t for t, v in vectors.items() if v.feedforward} == {t for t in vectors if t.endswith("down_proj")}


def test_red_negation_and_interpolation(modules) -> None:
    a, b = modules["red_a"].vectors, modules["red_b"].vectors
    negated = compose(modules, "-red_a").parts[0]
    mixed = compose(modules, "lam*red_a + (1-lam)*red_b", {"lam": 0.4}).parts[0]
    for target in a:
        torch.testing.assert_close(negated.vectors[target].scaling, 2 - a[target].scaling)
        torch.testing.assert_close(negated.vectors[target].bias, -a[target].bias)
        torch.testing.assert_close(mixed.vectors[target].scaling, 0.4 * a[target].scaling + 0.6 * b[target].scaling)
        torch.testing.assert_close(mixed.vectors[target].bias, 0.4 * a[target].bias + 0.6 * b[target].bias)


def _tiny_sparse(values: list[float], indices: list[int], shape=(2, 3)) -> SparseModule:
    tensor = SparseTensor(shape, torch.tensor(indices), torch.tensor(values))
    return SparseModule({"w": tensor}, {"base_model_name_or_path": "tiny"})


def test_sparse_sum_by_hand() -> None:
    x = _tiny_sparse([1.0, -2.0], [0, 4])
    y = _tiny_sparse([3.0, 5.0], [0, 5])
    result = compose({"x": x, "y": y}, "x - 0.5*y").parts[0]
    expected = torch.tensor([[1.0 - 1.5, 0, 0], [0, -2.0, -2.5]])
    torch.testing.assert_close(result.tensors["w"].dense(), expected)


def test_ties_by_hand() -> None:
    # x = [4, -1, 2, 0, 3, -5], y = [-3, 2, 1, 6, -1, -4]; density 0.5 keeps the top 3 of each:
    # x -> [4, 0, 0, 0, 3, -5], y -> [-3, 0, 0, 6, 0, -4]; weights 1: sum [1, 0, 0, 6, 3, -9],
    # elected signs [+, +, +, +, +, -]; agreeing entries averaged: [4, 0, 0, 6, 3, -4.5].
    x = SparseModule({"w": SparseTensor.from_dense(torch.tensor([[4.0, -1, 2], [0, 3, -5]]))}, {})
    y = SparseModule({"w": SparseTensor.from_dense(torch.tensor([[-3.0, 2, 1], [6, -1, -4]]))}, {})
    result = compose({"x": x, "y": y}, "x + y", merge=MergeOptions("ties", density=0.5)).parts[0]
    torch.testing.assert_close(result.tensors["w"].dense(), torch.tensor([[4.0, 0, 0], [6, 3, -4.5]]))


def test_ties_a_tied_vote_elects_plus() -> None:
    """A sign vote that sums to exactly 0 elects + (as PEFT's does). x - 2y with
    x = [2, -1, 3], y = [1, 1, -3] weighs to [2, -1, 3] and [-2, -2, 6]; the totals
    [0, -3, 9] elect [+, -, +] and the agreeing entries average to [2, -1.5, 4.5]
    (a tie elected - would give -2 first)."""
    x = _tiny_sparse([2.0, -1.0, 3.0], [0, 1, 2], shape=(3,))
    y = _tiny_sparse([1.0, 1.0, -3.0], [0, 1, 2], shape=(3,))
    result = compose({"x": x, "y": y}, "x - 2*y", merge=MergeOptions("ties")).parts[0]
    torch.testing.assert_close(result.tensors["w"].dense(), torch.tensor([2.0, -1.5, 4.5]))
    # the helper alone: column totals 0 (tied: + keeps 2) and 4 (+ keeps 1 and 3)
    torch.testing.assert_close(sign_elected_mean(torch.tensor([[2.0, 1.0], [-2.0, 3.0]])), torch.tensor([2.0, 2.0]))


def test_ties_and_magnitude_match_peft_reference() -> None:
    """PEFT elects TIES signs before weighting, we after (so a negated term votes with its
    sign); with equal positive weights the two agree exactly."""
    from peft.utils import merge_utils

    generator = torch.Generator().manual_seed(0)
    tensors = [torch.randn(5, 7, generator=generator) for _ in range(3)]
    stacked = torch.stack(tensors)
    equal = torch.tensor([0.7, 0.7, 0.7])
    ours = MergeOptions("ties", density=0.4).function()(stacked, equal)
    torch.testing.assert_close(ours, merge_utils.ties(tensors, equal, density=0.4))
    weights = torch.tensor([0.5, -0.3, 1.2])
    ours = MergeOptions("magnitude_prune", density=0.4).function()(stacked, weights)
    torch.testing.assert_close(ours, merge_utils.magnitude_prune(tensors, weights, density=0.4))


def test_dare_is_seeded_and_rescales() -> None:
    stacked = torch.ones(2, 1000)
    first = random_drop(stacked, 0.3, torch.Generator().manual_seed(7))
    again = random_drop(stacked, 0.3, torch.Generator().manual_seed(7))
    other = random_drop(stacked, 0.3, torch.Generator().manual_seed(8))
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other)
    torch.testing.assert_close(first.unique(), torch.tensor([0.0, 1 / 0.3]))
    assert 0.2 < float((first > 0).float().mean()) < 0.4
    x = _tiny_sparse([1.0, 2.0, 3.0], [0, 1, 2])
    y = _tiny_sparse([1.0, -2.0, 3.0], [0, 1, 2])
    runs = [
        compose({"x": x, "y": y}, "x + y", merge=MergeOptions(m, 0.5, seed=3)).parts[0] for m in ("dare_linear",) * 2
    ]
    torch.testing.assert_close(runs[0].tensors["w"].values, runs[1].tensors["w"].values)


def test_merge_helpers_by_hand() -> None:
    stacked = torch.tensor([[1.0, -4.0, 2.0, 0.5]])
    torch.testing.assert_close(magnitude_prune(stacked, 0.5), torch.tensor([[0.0, -4.0, 2.0, 0.0]]))
    torch.testing.assert_close(sign_elected_mean(torch.tensor([[1.0, -1.0], [3.0, 2.0]])), torch.tensor([2.0, 2.0]))


def test_merge_methods_refuse_other_types(modules) -> None:
    with pytest.raises(IncompatibleError, match="sparse task vectors only"):
        compose(modules, "lora_a + sparse_a", merge=MergeOptions("ties", 0.5))
    with pytest.raises(WorkbenchError, match="density must be in"):
        MergeOptions("ties", density=0.0)


def test_mixed_types_stack_in_exact_mode_and_not_in_paper(modules) -> None:
    result = compose(modules, "lora_a + ia3_a - red_b + 0.5*sparse_a")
    assert result.pem_types == ("lora", "sparse", "ia3", "red")
    with pytest.raises(
        IncompatibleError,
        match="paper mode needs modules of one type, but this mixes ia3: ia3_a; lora: lora_a; use exact mode",
    ):
        compose(modules, "lora_a + ia3_a", mode="paper")


def test_unused_parameter_values_are_refused(modules) -> None:
    from workbench.errors import ExpressionError

    with pytest.raises(ExpressionError, match="mu are not in the expression"):
        compose(modules, "lam*lora_a", {"lam": 1.0, "mu": 2.0})


def test_types_are_the_registered_classes(modules) -> None:
    assert isinstance(modules["ia3_a"], IA3Module)
    assert isinstance(modules["red_a"], RedModule)
    assert isinstance(modules["sparse_a"], SparseModule)
