"""Exports that serving engines accept: rank truncation (--max-rank), vLLM's limits
(--serve vllm) and the full merged model (--merged), on the tiny random models."""

import json
import math
import subprocess
import sys

import pytest
import torch
from conftest import load_base, make_lora, model_inputs
from peft import PeftModel
from test_cli import compose_args, run_cli
from transformers import AutoModelForCausalLM

from workbench.algebra import compose
from workbench.algebra.serving import plan_serving
from workbench.algebra.truncate import truncate_delta, truncate_lora
from workbench.errors import IncompatibleError
from workbench.modules import load_module
from workbench.runtime.session import SessionManager

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def compose_cli(base_dirs, adapters, out, expr, names, *extra, kind="llama"):
    return compose_args(base_dirs, adapters, out, "--expr", expr, *extra, kind=kind, names=names)


def one_error_line(err: str) -> bool:
    return err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def peft_deltas(base_dirs, folder, kind="llama") -> dict[str, torch.Tensor]:
    """Each changed weight's ΔW as PEFT itself applies the adapter at `folder`."""
    base = dict(load_base(base_dirs, kind).named_parameters())
    merged = PeftModel.from_pretrained(load_base(base_dirs, kind), str(folder)).merge_and_unload()
    deltas = {name: (weight - base[name]).detach().double() for name, weight in merged.named_parameters()}
    return {name: delta for name, delta in deltas.items() if delta.abs().max() > 0}


def dense_truncation(delta: torch.Tensor, rank: int) -> tuple[torch.Tensor, float, float]:
    """Reference by the dense SVD of ΔW: (ΔW_rank, Σ dropped σ², Σ σ²)."""
    u, s, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vh[:rank], float(s[rank:].square().sum()), float(s.square().sum())


def known_rank3(scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """B, A with scale·B·A = U·diag(3, 2, 1)·Vᵀ, factors mixed by an invertible M so that
    neither is orthogonal; returns B, A, U, V."""
    generator = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(7, 3, generator=generator, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(5, 3, generator=generator, dtype=torch.float64))
    M = torch.tensor([[1.0, 0.5, 0.0], [0.0, 2.0, 0.3], [0.2, 0.0, 1.0]], dtype=torch.float64)
    B = U @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)) @ M / scale
    A = torch.linalg.inv(M) @ V.T
    return B, A, U, V


# the math, by hand -------------------------------------------------------------


def test_truncating_a_known_rank3_delta_to_rank1_keeps_the_top_triplet() -> None:
    B, A, U, V = known_rank3(scale=2.0)
    cut = truncate_delta(B, A, 2.0, 1)
    assert cut.B.shape == (7, 1) and cut.A.shape == (1, 5)
    expected = 3.0 * torch.outer(U[:, 0], V[:, 0])
    torch.testing.assert_close(cut.B @ cut.A, expected, atol=1e-12, rtol=0)
    # the singular value is split evenly: each factor carries √3 of it
    assert math.isclose(float(cut.B.norm()), math.sqrt(3.0), rel_tol=1e-12)
    assert math.isclose(float(cut.A.norm()), math.sqrt(3.0), rel_tol=1e-12)
    assert math.isclose(cut.dropped, 2.0**2 + 1.0**2, rel_tol=1e-12)
    assert math.isclose(cut.total, 3.0**2 + 2.0**2 + 1.0**2, rel_tol=1e-12)
    assert math.isclose(cut.error, math.sqrt(5 / 14), rel_tol=1e-12)


def test_truncating_to_rank2_drops_only_the_smallest() -> None:
    B, A, U, V = known_rank3()
    cut = truncate_delta(B, A, 1.0, 2)
    expected = U[:, :2] @ torch.diag(torch.tensor([3.0, 2.0], dtype=torch.float64)) @ V[:, :2].T
    torch.testing.assert_close(cut.B @ cut.A, expected, atol=1e-12, rtol=0)
    assert math.isclose(cut.error, math.sqrt(1 / 14), rel_tol=1e-12)


def test_a_rank_at_or_above_the_delta_rank_is_exact() -> None:
    B, A, _, _ = known_rank3()
    for rank in (3, 5):
        cut = truncate_delta(B, A, 1.0, rank)
        assert cut.B.shape[1] == 3  # a ΔW of rank 3 keeps its own rank, never padded
        torch.testing.assert_close(cut.B @ cut.A, B @ A, atol=1e-12, rtol=0)
        assert cut.error == 0.0


def test_truncation_keeps_the_factor_dtype_and_matches_the_dense_svd() -> None:
    generator = torch.Generator().manual_seed(1)
    B, A = torch.randn(40, 12, generator=generator), torch.randn(12, 24, generator=generator)
    cut = truncate_delta(B, A, 0.75, 5)
    assert cut.B.dtype == torch.float32 and cut.A.dtype == torch.float32
    reference, dropped, total = dense_truncation(0.75 * B.double() @ A.double(), 5)
    torch.testing.assert_close((cut.B @ cut.A).double(), reference, atol=1e-4, rtol=1e-5)
    assert math.isclose(cut.error, math.sqrt(dropped / total), rel_tol=1e-9)


def test_a_lora_within_the_limit_comes_back_unchanged(adapters) -> None:
    module = load_module(adapters["llama"]["lora_a"])
    same, truncation = truncate_lora(module, 4)
    assert same is module and not truncation.truncated and truncation.overall == 0.0
    assert "no truncation needed" in truncation.summary()


def test_every_target_of_a_truncated_lora_has_scaling_1(adapters) -> None:
    # lora_c (rsLoRA, rank pattern): q_proj has rank 6 and is cut to 4; the others have rank 2 and are kept
    module = load_module(adapters["llama"]["lora_c"])
    cut, truncation = truncate_lora(module, 4)
    assert truncation.truncated and truncation.to_rank == 4
    for target, factor in module.factors.items():
        assert factor.scale != 1.0
        new = cut.factors[target]
        assert new.scale == 1.0 and new.rank == min(4, factor.rank)
        reference, dropped, total = dense_truncation(factor.scale * factor.B.double() @ factor.A.double(), 4)
        torch.testing.assert_close((new.B @ new.A).double(), reference, atol=1e-6, rtol=1e-5)
        assert math.isclose(truncation.errors[target], math.sqrt(dropped / total), rel_tol=1e-6, abs_tol=1e-7)


# --max-rank through the CLI, checked against PEFT and a dense SVD -------------------


def test_max_rank_export_loads_in_peft_and_equals_the_truncated_delta(base_dirs, adapters, tmp_path, capsys) -> None:
    # lora_c is an rsLoRA with a rank and alpha pattern: q_proj has rank 4+6 (cut to 6), the others 4+2 (kept)
    expr, rank = "0.7*lora_a - 0.4*lora_c", 6
    args = compose_cli(base_dirs, adapters, tmp_path / "cut", expr, ("lora_a", "lora_c"), "--max-rank", str(rank))
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    full = {}
    for name, coefficient in (("lora_a", 0.7), ("lora_c", -0.4)):
        for parameter, delta in peft_deltas(base_dirs, adapters["llama"][name]).items():
            full[parameter] = full.get(parameter, 0) + coefficient * delta
    written = peft_deltas(base_dirs, tmp_path / "cut")
    assert set(written) == set(full)
    dropped = total = 0.0
    errors = {}
    for parameter, delta in full.items():
        reference, lost, norm = dense_truncation(delta, rank)
        torch.testing.assert_close(written[parameter], reference, atol=2e-6, rtol=1e-5)
        dropped, total = dropped + lost, total + norm
        errors[parameter.removesuffix(".weight")] = math.sqrt(lost / norm)
    overall = math.sqrt(dropped / total)
    worst = max(errors, key=errors.get)
    line = out.splitlines()[1]
    assert line.startswith("truncated to rank 6 (from 10) by SVD")
    assert f"{overall:.4g} overall" in line and f"worst {errors[worst]:.4g} at {worst}" in line
    config = json.loads((tmp_path / "cut" / "adapter_config.json").read_text())
    assert config["r"] == 6 and config["lora_alpha"] == 6 and not config["use_rslora"]
    assert config["rank_pattern"] == {} and config["alpha_pattern"] == {}
    record = json.loads((tmp_path / "cut" / "composition.json").read_text())["truncation"]
    assert record["rank"] == 6 and record["from_rank"] == 10 and record["worst_target"] == worst
    assert "q_proj" in worst and all(errors[t] < 1e-6 for t in errors if "q_proj" not in t)
    assert math.isclose(record["relative_frobenius_error"], overall, rel_tol=1e-6)
    card = (tmp_path / "cut" / "README.md").read_text()
    assert "## Rank truncation" in card and f"`{worst}`" in card and f"{overall:.4g}" in card


def test_max_rank_at_or_above_the_sum_writes_the_composition_unchanged(base_dirs, adapters, tmp_path, capsys) -> None:
    names = ("lora_a", "lora_b")
    plain = compose_cli(base_dirs, adapters, tmp_path / "plain", "lora_a + lora_b", names)
    limited = compose_cli(base_dirs, adapters, tmp_path / "limited", "lora_a + lora_b", names, "--max-rank", "8")
    assert run_cli(plain, capsys)[0] == 0
    code, out, err = run_cli(limited, capsys)
    assert code == 0, err
    assert "rank 8 ≤ 8: no truncation needed" in out
    plain_bytes = (tmp_path / "plain" / "adapter_model.safetensors").read_bytes()
    assert (tmp_path / "limited" / "adapter_model.safetensors").read_bytes() == plain_bytes
    assert "no truncation needed" in (tmp_path / "limited" / "README.md").read_text()


# --serve vllm ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def lora_composition(adapters):
    return compose({"a": load_module(adapters["llama"]["lora_a"])}, "a")


@pytest.mark.parametrize(
    ("config", "bucket"),
    [({"r": 12}, 16), ({"r": 8}, 8), ({"r": 1}, 1), ({"r": 300}, 320), ({"r": 4, "rank_pattern": {"q": 12}}, 16)],
)
def test_vllm_bucket_is_the_smallest_cap_that_holds_the_rank(lora_composition, config, bucket) -> None:
    plan = plan_serving("vllm", lora_composition, config)
    assert plan.bucket == bucket
    assert f"--enable-lora --max-lora-rank {bucket}" in plan.command("base", "name", "folder")


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"r": 600}, "largest max_lora_rank, 512; truncate it to rank 512 or less (--max-rank 512)"),
        ({"r": 8, "modules_to_save": ["classifier"]}, "modules_to_save"),
        ({"r": 8, "use_dora": True}, "DoRA"),
        ({"r": 8, "bias": "all"}, "trained biases"),
    ],
)
def test_vllm_refuses_what_it_cannot_serve(lora_composition, config, fragment) -> None:
    with pytest.raises(IncompatibleError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        plan_serving("vllm", lora_composition, config)


def test_serve_vllm_after_truncation_names_the_bucket(base_dirs, adapters, tmp_path, capsys) -> None:
    args = compose_cli(base_dirs, adapters, tmp_path / "served", "lora_a + lora_b", ("lora_a", "lora_b"),
                       "--max-rank", "6", "--serve", "vllm")  # fmt: skip
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    line = out.splitlines()[-1]
    assert line.startswith(f"vLLM: vllm serve {base_dirs['llama']} --enable-lora --max-lora-rank 8 ")
    assert f"--lora-modules served={tmp_path / 'served'}" in line
    assert "rank 6 is not one of vLLM's max_lora_rank values; the next one up is 8" in line
    assert "truncating to rank 8 would keep more" in line
    card = (tmp_path / "served" / "README.md").read_text()
    assert "## Serving" in card and "--max-lora-rank 8 --lora-modules served=path/to/this/folder" in card


def test_serve_vllm_writes_scaling_1_so_alpha_pattern_cannot_be_missed(base_dirs, adapters, tmp_path, capsys) -> None:
    # paper mode keeps the inputs' α/r = 8/4 = 2 on every target, which the plain export writes as an
    # alpha_pattern that vLLM before rank/alpha pattern support ignores (it would scale by lora_alpha/r = 1)
    names, expr = ("lora_a", "lora_b"), "0.5*lora_a + 0.5*lora_b"
    plain = compose_cli(base_dirs, adapters, tmp_path / "plain", expr, names, "--mode", "paper")
    served = compose_cli(base_dirs, adapters, tmp_path / "served", expr, names, "--mode", "paper", "--serve", "vllm")
    assert run_cli(plain, capsys)[0] == 0
    assert json.loads((tmp_path / "plain" / "adapter_config.json").read_text())["alpha_pattern"]
    code, out, err = run_cli(served, capsys)
    assert code == 0, err
    config = json.loads((tmp_path / "served" / "adapter_config.json").read_text())
    assert config["r"] == config["lora_alpha"] == 4 and config["alpha_pattern"] == {} and config["rank_pattern"] == {}
    expected = peft_deltas(base_dirs, tmp_path / "plain")
    written = peft_deltas(base_dirs, tmp_path / "served")
    assert set(written) == set(expected)
    for parameter, delta in expected.items():
        torch.testing.assert_close(written[parameter], delta, atol=1e-6, rtol=1e-5)
    assert "--max-lora-rank 8" in out and "rank 4 is not one of vLLM's max_lora_rank values" in out


@pytest.fixture(scope="module")
def rank300(base_dirs, workdir):
    """Two rank-300 LoRAs: exact mode sums them to rank 600, above vLLM's largest cap."""
    return {name: make_lora(base_dirs, workdir, "llama", name, seed=seed, r=300, alpha=300)
            for name, seed in (("wide_a", 11), ("wide_b", 12))}  # fmt: skip


def test_serve_vllm_refuses_rank_600_and_accepts_it_truncated(base_dirs, rank300, tmp_path, capsys) -> None:
    adapters = {"llama": rank300}
    names = ("wide_a", "wide_b")
    args = compose_cli(base_dirs, adapters, tmp_path / "wide", "wide_a + wide_b", names, "--serve", "vllm")
    code, _, err = run_cli(args, capsys)
    assert code == 2 and one_error_line(err) and "rank 600 is above vLLM's largest max_lora_rank, 512" in err
    assert not (tmp_path / "wide").exists()
    args += ["--max-rank", "512"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    # the tiny model's ΔW are at most 32×64 (rank ≤ 32): the cut to 512 keeps each ΔW's own rank and loses nothing
    assert "truncated to rank 32 (from 600) by SVD" in out
    config = json.loads((tmp_path / "wide" / "adapter_config.json").read_text())
    assert config["r"] == 32 and set(config["rank_pattern"].values()) == {16}  # v_proj is 16×32
    assert "--max-lora-rank 32" in out.splitlines()[-1]


@pytest.mark.parametrize(
    ("expr", "names", "extra", "fragment"),
    [
        ("0.5*ia3_a", ("ia3_a",), ("--serve", "vllm"), "vLLM serves LoRA adapters only, and this composition "
                                                        "exports as ia3; write the merged model instead (--merged)"),
        ("lora_a - 0.5*ia3_a", ("lora_a", "ia3_a"), ("--serve", "vllm"), "a composition folder (lora + ia3)"),
        ("red_a", ("red_a",), ("--serve", "vllm"), "exports as red"),
        ("0.5*ia3_a", ("ia3_a",), ("--max-rank", "4"), "rank truncation applies to a single LoRA"),
        ("lora_a + sparse_a", ("lora_a", "sparse_a"), ("--max-rank", "4"), "a composition folder (lora + sparse)"),
        ("lora_a", ("lora_a",), ("--max-rank", "0"), "--max-rank: must be a whole number from 1"),
        ("lora_a", ("lora_a",), ("--max-rank", "-2"), "--max-rank: must be a whole number from 1"),
        ("lora_a", ("lora_a",), ("--max-rank", "4", "--merged"), "--merged writes a full model, and --max-rank is"),
        ("lora_a", ("lora_a",), ("--serve", "vllm", "--merged"), "--serve is for adapter exports"),
        ("lora_a", ("lora_a",), ("--serve", "tgi"), "invalid choice: 'tgi'"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(base_dirs, adapters, tmp_path, capsys, expr, names, extra,
                                                 fragment) -> None:  # fmt: skip
    code, out, err = run_cli(compose_cli(base_dirs, adapters, tmp_path / "out", expr, names, *extra), capsys)
    assert code == 2 and one_error_line(err), err
    assert fragment in err and out == ""
    assert not (tmp_path / "out").exists()


def test_real_process_refusal_has_no_traceback(base_dirs, adapters, tmp_path) -> None:
    args = compose_cli(base_dirs, adapters, tmp_path / "out", "lora_a", ("lora_a",), "--merged", "--max-rank", "0")
    result = subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and one_error_line(result.stderr), result.stderr
    helped = subprocess.run([sys.executable, "-m", "workbench", "compose", "--help"], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    for option in ("--max-rank", "--serve", "--merged", "max_lora_rank"):
        assert option in helped.stdout


# --merged -------------------------------------------------------------------------


def workbench_logits(base_dirs, adapters, kind, expr, names) -> torch.Tensor:
    """The workbench's own composed model's output, as every face runs it."""
    manager = SessionManager(cache_bytes=0)
    manager.rebuild("s", str(base_dirs[kind]), {name: adapters[kind][name] for name in names}, expr)
    with manager.model_for("s") as loaded, torch.no_grad():
        return loaded.model(**model_inputs(kind)).logits


@pytest.mark.parametrize(
    ("kind", "expr", "names"),
    [
        ("llama", "0.7*lora_a - 0.5*ia3_a + sparse_a", ("lora_a", "ia3_a", "sparse_a")),
        ("llama", "-0.6*lora_c", ("lora_c",)),
        ("gpt2", "lora_a + 0.5*red_a - ia3_b", ("lora_a", "red_a", "ia3_b")),  # GPT-2's c_proj has a bias for RED
    ],
)
def test_merged_model_loads_in_plain_transformers_with_the_same_logits(base_dirs, adapters, tmp_path, capsys, kind,
                                                                       expr, names) -> None:  # fmt: skip
    out = tmp_path / "merged"
    code, printed, err = run_cli(compose_cli(base_dirs, adapters, out, expr, names, "--merged", kind=kind), capsys)
    assert code == 0, err
    assert f"merged model ({type(load_base(base_dirs, kind)).__name__}) at {out}" in printed
    files = {path.name for path in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "README.md"} <= files
    assert not files & set(ADAPTER_FILES) and not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        merged = model(**model_inputs(kind)).logits
        base = load_base(base_dirs, kind)(**model_inputs(kind)).logits
    expected = workbench_logits(base_dirs, adapters, kind, expr, names)
    assert (expected - base).abs().max() > 1e-3  # the composition changes the model: the check below means something
    torch.testing.assert_close(merged, expected, atol=1e-5, rtol=1e-5)
    card = (out / "README.md").read_text()
    assert "library_name: transformers" in card and "AutoModelForCausalLM.from_pretrained" in card


def test_merged_refuses_red_on_a_linear_without_bias(base_dirs, adapters, tmp_path, capsys) -> None:
    code, _, err = run_cli(compose_cli(base_dirs, adapters, tmp_path / "out", "red_a", ("red_a",), "--merged"), capsys)
    assert code == 2 and one_error_line(err)
    assert "model.layers.0.mlp.down_proj.bias" in err and "LlamaForCausalLM builds without" in err
    assert not (tmp_path / "out").exists()
