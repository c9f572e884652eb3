"""KnOTS, TSV-M and Iso-C on LoRAs: hand-computed cases, each paper's formula step by step in
dense torch.linalg (never the code under test), the PEFT export, the one-line refusals and
the Compose tab's merge control."""

import json

import pytest
import torch
from conftest import load_base
from peft import PeftModel

from workbench.algebra import MergeOptions, compose, save_composition
from workbench.errors import IncompatibleError, WorkbenchError
from workbench.modules import LoraModule, load_module
from workbench.modules.lora import LoraFactor

TARGET = "model.layer"  # one 4×3 target: out 4, in 3
E, F = torch.eye(4, dtype=torch.float64), torch.eye(3, dtype=torch.float64)


def lora(B: torch.Tensor, A: torch.Tensor, scale: float = 1.0) -> LoraModule:
    return LoraModule({TARGET: LoraFactor(A.float(), B.float(), scale)}, {"base_model_name_or_path": "tiny"})


def column(*vectors: torch.Tensor) -> torch.Tensor:
    return torch.stack(vectors, dim=1)


def row(*vectors: torch.Tensor) -> torch.Tensor:
    return torch.stack(vectors, dim=0)


def delta(module: LoraModule) -> torch.Tensor:
    factor = module.factors[TARGET]
    return factor.scale * factor.B.double() @ factor.A.double()


def merged(modules: dict, expression: str, method: str, density: float = 1.0, values=None) -> torch.Tensor:
    return delta(compose(modules, expression, values or {}, merge=MergeOptions(method, density)).parts[0])


def random_loras(seed: int, ranks: tuple[int, ...], out: int = 4, inputs: int = 3) -> dict[str, LoraModule]:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: lora(torch.randn(out, r, generator=generator), torch.randn(r, inputs, generator=generator), 0.5 + i)
        for i, (name, r) in enumerate(zip("abc", ranks, strict=False))
    }


def close(got: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(got, expected.double(), atol=1e-5, rtol=1e-5)


# Iso-C: Δ_TA = Σ cᵢΔWᵢ = UΣVᵀ, then every σ becomes their mean over the rank ------------------


def test_iso_c_by_hand_flattens_the_spectrum_of_the_sum() -> None:
    a = lora(3 * E[:, :1], F[:1])  # ΔW_a = 3·e1f1ᵀ
    b = lora(E[:, 1:2], F[1:2], scale=2.0)  # ΔW_b = 2·e2f2ᵀ
    # 0.5a − b = 1.5·e1f1ᵀ − 2·e2f2ᵀ: σ = (2, 1.5), mean 1.75
    expected = 1.75 * (torch.outer(E[0], F[0]) - torch.outer(E[1], F[1]))
    close(merged({"a": a, "b": b}, "0.5*a - b", "iso_c"), expected)


def test_iso_c_step_by_step_on_random_loras() -> None:
    modules = random_loras(0, (2, 1))
    task_arithmetic = 0.7 * delta(modules["a"]) - 1.3 * delta(modules["b"])
    U, S, Vh = torch.linalg.svd(task_arithmetic)
    r = int((S > 1e-10 * S[0]).sum())
    assert r == 3  # the 4×3 sum of a rank-2 and a rank-1 update has full rank here
    expected = S[:r].mean() * U[:, :r] @ Vh[:r]
    close(merged(modules, "0.7*a - 1.3*b", "iso_c"), expected)


def test_iso_c_averages_over_the_rank_not_over_the_stacked_factors() -> None:
    a = lora(column(E[0], E[0]), row(F[0], F[1]))  # a rank-2 LoRA whose ΔW = e1·(f1 + f2)ᵀ has rank 1
    b = lora(E[:, 1:2], F[2:3])  # ΔW_b = e2f3ᵀ
    # a + b: σ = (√2, 1) over rank 2 (three stacked factors), mean (√2 + 1)/2
    direction = torch.outer(E[0], (F[0] + F[1]) / 2**0.5) + torch.outer(E[1], F[2])
    close(merged({"a": a, "b": b}, "a + b", "iso_c"), (2**0.5 + 1) / 2 * direction)


# TSV-M: each task's top ⌊density·rᵢ/n⌋ triplets, U and V replaced by their polar factors ------


def test_tsv_m_by_hand_keeps_each_tasks_top_half() -> None:
    a = lora(column(3 * E[0], E[1]), row(F[0], F[1]))  # 3·e1f1ᵀ + e2f2ᵀ, rank 2
    b = lora(column(2 * E[2], 0.5 * E[3]), row(F[1], F[2]))  # 2·e3f2ᵀ + 0.5·e4f3ᵀ, rank 2
    # n = 2: one triplet each; U = [e1 e3], V = [f1 f2] are orthonormal already
    expected = 3 * torch.outer(E[0], F[0]) + 2 * torch.outer(E[2], F[1])
    close(merged({"a": a, "b": b}, "a + b", "tsv_m"), expected)


def tsv_m_reference(deltas: list[torch.Tensor], keep: list[int]) -> torch.Tensor:
    lefts, sigmas, rights = [], [], []
    for matrix, k in zip(deltas, keep, strict=True):
        U, S, Vh = torch.linalg.svd(matrix)
        lefts.append(U[:, :k])
        sigmas.append(S[:k])
        rights.append(Vh[:k].T)

    def polar(matrix: torch.Tensor) -> torch.Tensor:
        P, _, Qh = torch.linalg.svd(matrix, full_matrices=False)
        return P @ Qh

    U, V = polar(torch.cat(lefts, dim=1)), polar(torch.cat(rights, dim=1))
    return U @ torch.diag(torch.cat(sigmas)) @ V.T


@pytest.mark.parametrize(("ranks", "density", "keep"), [((2, 2), 1.0, [1, 1]), ((2, 2, 2), 1.0, [1, 1, 1]),
                                                        ((4, 2), 1.0, [2, 1]), ((4, 4), 0.7, [1, 1]),
                                                        ((4, 4), 1.0, [2, 2])])  # fmt: skip
def test_tsv_m_step_by_step_on_random_loras(ranks, density, keep) -> None:
    modules = random_loras(1, ranks)
    names, coefficients = list(modules), [0.7, -1.3, 0.4][: len(ranks)]
    expression = " + ".join(f"({c})*{name}" for c, name in zip(coefficients, names, strict=True))
    deltas = [c * delta(modules[name]) for c, name in zip(coefficients, names, strict=True)]
    close(merged(modules, expression, "tsv_m", density), tsv_m_reference(deltas, keep))


def test_tsv_m_keeps_no_more_triplets_than_a_delta_has() -> None:
    """A rank-4 LoRA whose ΔW has rank 1 keeps one triplet, not two: a σ of zero has an
    arbitrary singular vector, which the decorrelation would mix into the others."""
    a = lora(column(E[0], E[0], E[0], E[0]), row(F[0], F[1], F[2], F[0]))  # e1·(2f1 + f2 + f3)ᵀ
    b = lora(column(2 * E[1], E[2] + 0.5 * E[0]), row(F[1], F[2]))
    deltas = [delta(a), -0.5 * delta(b)]
    close(merged({"a": a, "b": b}, "a - 0.5*b", "tsv_m"), tsv_m_reference(deltas, [1, 1]))


def test_tsv_m_drops_a_term_at_coefficient_zero() -> None:
    """At λ = 1 the expression holds `a` alone: n = 1, so `a` keeps its whole rank."""
    modules = random_loras(2, (2, 2))
    close(merged(modules, "lam*a + (1-lam)*b", "tsv_m", values={"lam": 1.0}), delta(modules["a"]))


# KnOTS-TIES: one SVD of [ΔW₁ … ΔWₙ], TIES on the coordinates ΣVᵢᵀ ---------------------------


def test_knots_by_hand_ties_the_aligned_coordinates() -> None:
    a = lora(2 * E[:, :1], F[:1])  # ΔW_a = e1·(2, 0, 0)
    b = lora(E[:, :1], (-F[0] + 0.5 * F[1])[None])  # ΔW_b = e1·(−1, 0.5, 0): the same column space
    modules = {"a": a, "b": b}
    # one basis vector e1; coordinates a = (2, 0, 0), b = (−1, 0.5, 0)
    # density 1: + wins entry 0 and keeps only a's 2; entry 1 has b's 0.5 alone (linear: e1·(1, 0.5, 0))
    close(merged(modules, "a + b", "knots"), torch.outer(E[0], torch.tensor([2.0, 0.5, 0.0])))
    # density 0.5: each task keeps its largest entry, a: 2, b: −1; + wins, mean of the agreeing: 2
    close(merged(modules, "a + b", "knots", 0.5), torch.outer(E[0], torch.tensor([2.0, 0.0, 0.0])))
    # weights before the election: a → (1, 0, 0), b → (−2, 1, 0); − wins entry 0
    close(merged(modules, "0.5*a + 2*b", "knots"), torch.outer(E[0], torch.tensor([-2.0, 1.0, 0.0])))


def ties_reference(coordinates: list[torch.Tensor], weights: list[float], density: float) -> torch.Tensor:
    """TIES written out: trim each task to its top share by |·|, weight, elect, disjoint mean."""
    trimmed = []
    for matrix in coordinates:
        k = int(density * matrix.numel())
        threshold = matrix.abs().flatten().sort(descending=True).values[k - 1]
        trimmed.append(matrix * (matrix.abs() >= threshold))
    weighted = [w * matrix for w, matrix in zip(weights, trimmed, strict=True)]
    sign = torch.where(sum(weighted) >= 0, 1.0, -1.0).double()
    agree = [(matrix.sign() == sign).double() for matrix in weighted]
    return sum(m * g for m, g in zip(weighted, agree, strict=True)) / sum(agree).clamp(min=1)


def knots_reference(deltas: list[torch.Tensor], weights: list[float], density: float) -> torch.Tensor:
    U, S, Vh = torch.linalg.svd(torch.cat(deltas, dim=1), full_matrices=False)
    k = int((S > 1e-10 * S[0]).sum())
    width = deltas[0].shape[1]
    coordinates = [S[:k, None] * Vh[:k, i * width : (i + 1) * width] for i in range(len(deltas))]
    return U[:, :k] @ ties_reference(coordinates, weights, density)


@pytest.mark.parametrize(("ranks", "density"), [((2, 1), 1.0), ((2, 2), 0.5), ((1, 2, 1), 0.4)])
def test_knots_step_by_step_on_random_loras(ranks, density) -> None:
    modules = random_loras(3, ranks)
    names, coefficients = list(modules), [0.7, -1.3, 0.4][: len(ranks)]
    expression = " + ".join(f"({c})*{name}" for c, name in zip(coefficients, names, strict=True))
    deltas = [delta(modules[name]) for name in names]  # the SVD sees the unweighted updates
    close(merged(modules, expression, "knots", density), knots_reference(deltas, coefficients, density))


def test_knots_of_one_lora_at_density_1_is_that_lora_scaled() -> None:
    modules = random_loras(4, (2, 2))
    close(merged(modules, "lam*a + (1-lam)*b", "knots", values={"lam": 1.0}), delta(modules["a"]))
    close(merged(modules, "-0.6*b", "knots"), -0.6 * delta(modules["b"]))


# the export: a PEFT LoRA whose ΔW is the merge's -------------------------------------------


@pytest.mark.parametrize(("method", "density"), [("knots", 0.5), ("tsv_m", 1.0), ("iso_c", 1.0)])
def test_the_exported_adapter_reproduces_the_merged_delta(base_dirs, adapters, tmp_path, method, density) -> None:
    modules = {name: load_module(adapters["llama"][name]) for name in ("lora_a", "lora_c")}  # rank 4; 6 and 2
    composition = compose(modules, "0.6*lora_a - 0.4*lora_c", merge=MergeOptions(method, density))
    part = composition.parts[0]
    exact = compose(modules, "0.6*lora_a - 0.4*lora_c").parts[0]
    assert save_composition(composition, modules, tmp_path / "out") == "lora"
    base = load_base(base_dirs, "llama")
    weights = {name: tensor.clone() for name, tensor in base.state_dict().items()}
    peft_merged = PeftModel.from_pretrained(base, str(tmp_path / "out")).merge_and_unload()
    differs = False
    for target, factor in part.factors.items():
        got = peft_merged.get_submodule(target).weight.detach() - weights[f"{target}.weight"]
        torch.testing.assert_close(got, factor.scale * factor.B @ factor.A, atol=1e-5, rtol=1e-4)
        linear = exact.factors[target].B @ exact.factors[target].A
        differs |= not torch.allclose(got, linear, atol=1e-3)
    assert differs, f"{method} wrote the linear ΔW"


def test_the_cli_writes_a_tsv_m_lora_of_the_inputs_rank(base_dirs, adapters, tmp_path, capsys) -> None:
    from workbench.cli import main

    out = tmp_path / "out"
    code = main(["compose", "--base", str(base_dirs["llama"]), "--adapter", f"a={adapters['llama']['lora_a']}",
                 "--adapter", f"b={adapters['llama']['lora_b']}", "--expr", "a + b", "--merge", "tsv_m",
                 "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4  # 2 of each rank-4 LoRA's 4
    record = json.loads((out / "composition.json").read_text())
    assert record["merge"]["method"] == "tsv_m"


# refusals, one line each --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "method", "mode", "message"),
    [
        (("ia3_a", "ia3_b"), "knots", "exact", "merge method knots merges LoRAs only, but this composition has ia3"),
        (("lora_a", "ia3_a"), "tsv_m", "exact", "merges LoRAs only, but this composition has ia3 \\+ lora modules"),
        (("sparse_a", "sparse_b"), "iso_c", "exact", "merges LoRAs only, but this composition has sparse"),
        (("lora_a", "lora_b"), "iso_c", "paper", "merge method iso_c .* has no paper mode; use exact mode"),
        (("lora_a", "lora_b"), "ties", "exact", "merge method ties applies to sparse task vectors only"),
    ],
)
def test_a_merge_the_modules_cannot_take_is_refused_in_one_line(adapters, names, method, mode, message) -> None:
    modules = {name: load_module(adapters["llama"][name]) for name in names}
    with pytest.raises(IncompatibleError, match=message) as refused:
        compose(modules, " + ".join(names), mode=mode, merge=MergeOptions(method, 0.5))
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("density", [0.0, -0.2, 1.5, float("nan"), float("inf"), True, "0.5"])
def test_a_bad_density_is_refused(density) -> None:
    with pytest.raises(WorkbenchError, match=r"density must be in \(0, 1\]"):
        MergeOptions("knots", density)


def test_the_cli_refuses_a_bad_density_in_one_line(base_dirs, adapters, tmp_path, capsys) -> None:
    from workbench.cli import main

    code = main(["compose", "--base", str(base_dirs["llama"]), "--adapter", f"a={adapters['llama']['lora_a']}",
                 "--expr", "a", "--merge", "tsv_m", "--density", "1.5", "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "density must be in (0, 1]" in err and "\n" not in err


# the Compose tab's merge control, through the controller --------------------------------------


def test_the_compose_tabs_merge_reaches_the_session_and_its_history(tiny_controller) -> None:
    controller = tiny_controller("m")
    assert controller.merge_choices("m") == ["linear", "knots", "tsv_m", "iso_c"]
    linear = controller.recompose("m", "lam*a + (1-lam)*toxic", {"lam": 0.5})
    merged_view = controller.recompose("m", "lam*a + (1-lam)*toxic", {"lam": 0.5}, "exact", "tsv_m", 1.0)
    state = controller.manager.state("m")
    assert state.merge == MergeOptions("tsv_m", 1.0) and state.composition.merge == state.merge
    assert {f.rank for f in state.composition.parts[0].factors.values()} == {4}  # linear stacks rank 8
    assert merged_view["detail"] != linear["detail"]  # the folded model is the merge's
    assert list(controller.history("m")["mode"]) == ["exact", "exact, tsv_m (density 1)"]
    with pytest.raises(WorkbenchError, match=r"density must be in \(0, 1\]"):
        controller.recompose("m", "lam*a + (1-lam)*toxic", {"lam": 0.5}, "exact", "knots", 0.0)
    with pytest.raises(WorkbenchError, match="merge must be one of linear, ties"):
        controller.recompose("m", "lam*a + (1-lam)*toxic", {"lam": 0.5}, "exact", "svd")
    assert controller.manager.state("m").merge == MergeOptions("tsv_m", 1.0)  # refusals keep the session
    controller.restore("m", 0)
    assert controller.manager.state("m").merge == MergeOptions()
    controller.restore("m", 1)
    assert controller.manager.state("m").merge == MergeOptions("tsv_m", 1.0)


def test_the_compose_tab_wires_merge_and_density_into_every_recompose(monkeypatch) -> None:
    from workbench.ui.app import build_app
    from workbench.ui.controller import Controller

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = build_app(Controller()).config
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"] if c.get("props", {}).get("elem_id")}
    menu = next(c for c in config["components"] if c["id"] == ids["merge"])
    assert [choice[1] for choice in menu["props"]["choices"]][-3:] == ["knots", "tsv_m", "iso_c"]
    recomposes = [d for d in config["dependencies"] if ids["expression"] in d["inputs"] and ids["mode"] in d["inputs"]]
    assert recomposes and all({ids["merge"], ids["density"]} <= set(d["inputs"]) for d in recomposes)
    triggers = {tuple(t) for d in recomposes for t in d["targets"]}
    assert {(ids["merge"], "input"), (ids["density"], "input")} <= triggers
    rendered = [d for d in config["dependencies"] if ids["merge"] in d["outputs"]]
    assert rendered and all(ids["density"] in d["outputs"] for d in rendered)  # a render draws both
