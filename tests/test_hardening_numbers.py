"""Numbers that used to slip through: NaN/Inf and mistyped config fields, overflowing
coefficients, broken bases, out-of-range seeds and devices, all-zero compositions, and
the power operator that lets a canonical form parse back."""

import json
import math
import shutil

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from workbench.algebra import MergeOptions, compose, parse, save_composition
from workbench.algebra.expression import MAX_LENGTH
from workbench.cli import main
from workbench.errors import ExpressionError, ModuleFormatError, WorkbenchError
from workbench.modules import load_module
from workbench.runtime import SessionManager, load_base_model

# --- helpers ---------------------------------------------------------------------------


def one_line(exc: BaseException) -> str:
    message = str(exc)
    assert message and "\n" not in message
    return message


def copy_folder(src, dst):
    shutil.copytree(src, dst)
    return dst


def set_config_field(folder, file, path, raw):
    """Set a (possibly nested) config field to `raw`, a JSON literal written as is (NaN, 1e999)."""
    config = json.loads((folder / file).read_text())
    holder = config
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = "__RAW__"
    (folder / file).write_text(json.dumps(config).replace('"__RAW__"', raw))


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lora_target(adapters, kind="llama"):
    config = json.loads((adapters[kind]["lora_a"] / "adapter_config.json").read_text())
    return config["target_modules"][0]


# --- item 3/6: config numbers and types -----------------------------------------------


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        (("lora_alpha",), "NaN"),
        (("lora_alpha",), "1e999"),
        (("lora_alpha",), "-Infinity"),
        (("lora_alpha",), "0"),
        (("lora_alpha",), '"eight"'),
        (("r",), '"four"'),
        (("r",), "0"),
        (("r",), "2.5"),
        (("r",), "true"),
        (("use_rslora",), '"yes"'),
        (("target_modules",), '"("'),
        (("target_modules",), "[1, 2]"),
        (("rank_pattern",), '{"q_proj": NaN}'),
        (("rank_pattern",), '{"(": 4}'),
        (("alpha_pattern",), '{"q_proj": Infinity}'),
        (("alpha_pattern",), '{"q_proj": "x"}'),
        (("rank_pattern",), '"q_proj"'),
    ],
)
def test_bad_lora_config_numbers_and_types_name_file_and_field(adapters, tmp_path, path, raw) -> None:
    folder = copy_folder(adapters["llama"]["lora_a"], tmp_path / "lora")
    set_config_field(folder, "adapter_config.json", path, raw)
    with pytest.raises(ModuleFormatError) as caught:
        load_module(folder)
    message = one_line(caught.value)
    assert "adapter_config.json" in message and f"field {path[0]}" in message


@pytest.mark.parametrize(
    ("name", "file", "path", "raw"),
    [
        ("ia3_a", "adapter_config.json", ("target_modules",), '"["'),
        ("ia3_a", "adapter_config.json", ("feedforward_modules",), "7"),
        ("ia3_a", "adapter_config.json", ("fan_in_fan_out",), '"no"'),
        ("red_a", "pem_config.json", ("target_modules",), '"abc"'),
        ("red_a", "pem_config.json", ("fan_in_fan_out",), "NaN"),
        ("red_a", "pem_config.json", ("base_model_name_or_path",), "12"),
        ("sparse_a", "pem_config.json", ("density",), "NaN"),
        ("sparse_a", "pem_config.json", ("density",), "1e999"),
        ("sparse_a", "pem_config.json", ("density",), "0"),
        ("sparse_a", "pem_config.json", ("shapes", "model.embed_tokens.weight"), '"abc"'),
        ("sparse_a", "pem_config.json", ("shapes", "model.embed_tokens.weight"), "[128, -32]"),
        ("sparse_a", "pem_config.json", ("shapes", "model.embed_tokens.weight"), "[128, NaN]"),
    ],
)
def test_bad_config_fields_of_other_formats_name_file_and_field(adapters, tmp_path, name, file, path, raw) -> None:
    folder = copy_folder(adapters["llama"][name], tmp_path / name)
    set_config_field(folder, file, path, raw)
    with pytest.raises(ModuleFormatError) as caught:
        load_module(folder)
    message = one_line(caught.value)
    assert file in message and f"field {path[0]}" in message


def test_valid_configs_still_load(adapters) -> None:
    for path in adapters["llama"].values():
        load_module(path)


# --- item 3: overflowing coefficients ---------------------------------------------------


@pytest.mark.parametrize(
    ("names", "expr", "sets"),
    [
        (("lora_a",), "1e39*lora_a", ()),
        (("lora_a",), "1e308*lora_a", ()),
        (("lora_a",), "lam*lora_a", ("lam=1e308",)),
        (("lora_a", "lora_b"), "1e30*lora_a + lora_b", ()),
        (("ia3_a",), "1e39*ia3_a", ()),
        (("sparse_a",), "1e39*sparse_a", ()),
    ],
)
def test_compose_refuses_overflowing_coefficients(base_dirs, adapters, tmp_path, capsys, names, expr, sets) -> None:
    args = ["compose", "--base", base_dirs["llama"], "--expr", expr, "--out", tmp_path / "out"]
    for name in names:
        args += ["--adapter", f"{name}={adapters['llama'][name]}"]
    for item in sets:
        args += ["--set", item]
    code, _, err = run_cli(capsys, *args)
    assert code == 2, err
    assert "overflows" in err and err.count("\n") == 1


@pytest.mark.parametrize("expr", ["1e30*a", "1e39*a"])
def test_activation_refuses_overflowing_composition(base_dirs, adapters, expr) -> None:
    manager = SessionManager(cache_bytes=0)
    manager.open("s", str(base_dirs["llama"]))
    manager.add_module("s", "a", adapters["llama"]["lora_a"])
    manager.set_composition("s", expr)
    with pytest.raises(ExpressionError) as caught, manager.model_for("s"):
        pass
    assert "overflows" in one_line(caught.value) and "coefficient of a" in str(caught.value)
    manager.set_composition("s", "0.5*a")
    with manager.model_for("s") as base:
        assert all(bool(torch.isfinite(p).all()) for p in base.model.parameters())


def test_high_powers_overflow_as_one_line(base_dirs) -> None:
    combination = parse("lam*" * 16 + "a", ["a"])
    with pytest.raises(ExpressionError, match="overflows"):
        combination.coefficients({"lam": 1e20})


# --- item 3/6: broken bases and generate arguments ---------------------------------------


@pytest.fixture
def nan_base(base_dirs, tmp_path):
    folder = copy_folder(base_dirs["llama"], tmp_path / "nan-base")
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["model.layers.1.mlp.up_proj.weight"][3, 5] = float("nan")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def test_base_with_nan_weight_is_refused(nan_base, capsys) -> None:
    with pytest.raises(WorkbenchError) as caught:
        load_base_model(str(nan_base))
    assert "model.layers.1.mlp.up_proj.weight" in one_line(caught.value)
    code, _, err = run_cli(capsys, "generate", "--base", nan_base, "--prompt", "hi", "--max-new-tokens", "2")
    assert code == 2 and "NaN" in err and err.count("\n") == 1


def test_truncated_base_is_refused(base_dirs, tmp_path, capsys) -> None:
    folder = copy_folder(base_dirs["llama"], tmp_path / "truncated")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    code, _, err = run_cli(capsys, "generate", "--base", folder, "--prompt", "hi", "--max-new-tokens", "2")
    assert code == 2 and "could not load base model" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--prompt", "x", "--device", "tpu"], "device"),
        (["--prompt", "x", "--device", "meta"], "device"),
        (["--prompt", "x", "--device", "cuda:99"], "cuda"),
        (["--prompt", ""], "prompt is empty"),
        (["--prompt", "x", "--seed", str(2**70)], "seed"),
        (["--prompt", "x", "--seed", "-1"], "seed"),
    ],
)
def test_generate_refuses_bad_device_prompt_and_seed(base_dirs, capsys, args, fragment) -> None:
    code, _, err = run_cli(capsys, "generate", "--base", base_dirs["llama"], "--max-new-tokens", "2", *args)
    assert code == 2, err
    assert fragment in err and err.count("\n") == 1


def test_dare_seed_out_of_range(base_dirs, adapters, tmp_path, capsys) -> None:
    with pytest.raises(WorkbenchError, match="seed"):
        MergeOptions("dare_linear", 0.5, seed=2**80)
    with pytest.raises(WorkbenchError, match="seed"):
        MergeOptions("dare_linear", 0.5, seed="3")  # type: ignore[arg-type]
    code, _, err = run_cli(
        capsys, "compose", "--base", base_dirs["llama"], "--adapter", f"x={adapters['llama']['sparse_a']}",
        "--adapter", f"y={adapters['llama']['sparse_b']}", "--expr", "x + y", "--merge", "dare_linear",
        "--density", "0.5", "--seed", str(2**80), "--out", tmp_path / "out",
    )  # fmt: skip
    assert code == 2 and "seed" in err and err.count("\n") == 1


# --- item 6: all-zero compositions are not written ---------------------------------------


@pytest.mark.parametrize(("expr", "sets"), [("0*a", ()), ("a-a", ()), ("lam*a", ("lam=0",))])
def test_zero_composition_is_not_written(base_dirs, adapters, tmp_path, capsys, expr, sets) -> None:
    args = ["compose", "--base", base_dirs["llama"], "--adapter", f"a={adapters['llama']['lora_a']}"]
    for item in sets:
        args += ["--set", item]
    code, _, err = run_cli(capsys, *args, "--expr", expr, "--out", tmp_path / "out")
    assert code == 2, err
    assert "cancels to zero" in err and err.count("\n") == 1
    modules = {"a": load_module(adapters["llama"]["lora_a"])}
    composition = compose(modules, expr, {"lam": 0.0} if sets else {})
    with pytest.raises(WorkbenchError, match="cancels to zero"):
        save_composition(composition, modules, tmp_path / "direct")


# --- item 7: powers, and canonical forms that parse back ----------------------------------

MODULES = ["a", "b", "c"]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("lam^2*a", "lam^2*a"),
        ("lam**2*a", "lam^2*a"),
        ("-lam^2*a", "-lam^2*a"),
        ("(1-lam)^2*a", "(1 - 2*lam + lam^2)*a"),
        ("2^3*a", "8*a"),
        ("lam^0*a + b", "a + b"),
        ("(lam*mu)^2*a", "lam^2*mu^2*a"),
        ("lam^16*a", "lam^16*a"),
    ],
)
def test_power_operator(text: str, canonical: str) -> None:
    assert parse(text, MODULES).canonical == canonical


@pytest.mark.parametrize(
    ("text", "fragment", "position"),
    [
        ("a^2", "cannot raise a module to a power", 1),
        ("(lam*a)**2", "cannot raise a module to a power", 7),
        ("lam^2.5*a", "whole number from 0 to 16", 4),
        ("lam^-1*a", "whole number from 0 to 16", 4),
        ("lam^17*a", "whole number from 0 to 16", 4),
        ("lam^n*a", "whole number from 0 to 16", 4),
        ("lam^(2)*a", "whole number from 0 to 16", 4),
        ("lam^2^3*a", "parentheses", 5),
        ("lam^*a", "whole number from 0 to 16", 4),
        ("lam^", "whole number from 0 to 16", 4),
        ("lam^8*lam^9*a", "above 16", 5),
    ],
)
def test_power_errors_point_at_the_position(text: str, fragment: str, position: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text, MODULES)
    assert fragment in one_line(caught.value)
    assert caught.value.position == position


@pytest.mark.parametrize("text", ["lam^2*a", "(1-lam)^3*a + mu*b", "1234567890123.5*lam*a", "1e-7*a - 3.5e20*lam^4*b"])
def test_canonical_forms_with_powers_parse_back(text: str) -> None:
    canonical = parse(text, MODULES).canonical
    assert parse(canonical, MODULES).canonical == canonical


NUMBERS = st.one_of(
    st.integers(0, 20).map(str),
    st.floats(1e-6, 1e6).map(lambda x: format(x, ".6g")),
    st.floats(1e-30, 1e30).map(repr),
)


def scalars() -> st.SearchStrategy[str]:
    """Number- and parameter-valued expressions, with powers."""
    atom = st.one_of(NUMBERS, st.sampled_from(["lam", "mu", "λ"]))

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "⊖", "×"]), inner).map(" ".join),
            inner.map(lambda x: f"-({x})"),
            st.tuples(inner, st.sampled_from(["^", "**"]), st.integers(0, 4)).map(lambda t: f"({t[0]}){t[1]}{t[2]}"),
        )

    return st.recursive(atom, extend, max_leaves=6)


def module_expressions() -> st.SearchStrategy[str]:
    """Module-valued expressions: modules scaled by scalars, divided by numbers, summed."""
    atom = st.sampled_from(["a", "b", "c"])

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "⊕"]), inner).map(" ".join),
            st.tuples(scalars(), inner).map(lambda t: f"({t[0]})*({t[1]})"),
            st.tuples(inner, NUMBERS.filter(lambda x: float(x) != 0)).map(lambda t: f"({t[0]})/{t[1]}"),
            inner.map(lambda x: f"-({x})"),
        )

    return st.recursive(atom, extend, max_leaves=8)


def _scale(combination, name: str, values: dict[str, float]) -> float:
    """Σ |term| of a coefficient at `values`: the size its rounding errors are relative to."""
    coefficient = dict(combination.terms)[name]
    total = 0.0
    for monomial, factor in coefficient.terms:
        product = abs(factor)
        for parameter, power in monomial:
            product *= abs(values[parameter]) ** power
        total += product
    return total


@settings(max_examples=300, deadline=None)
@given(module_expressions(), st.lists(st.floats(-2, 2, allow_nan=False), min_size=3, max_size=3))
def test_canonical_form_parses_back_to_the_same_combination(text: str, numbers: list[float]) -> None:
    try:
        combination = parse(text, MODULES)
    except ExpressionError as exc:  # the strategy writes valid syntax; only sizes may be refused
        if not any(limit in str(exc) for limit in ("too large", "more than", "above", "limit is")):
            raise
        assume(False)
    assume(combination.terms and len(combination.canonical) <= MAX_LENGTH)
    again = parse(combination.canonical, MODULES)
    assert again.canonical == combination.canonical
    values = dict(zip(("lam", "mu", "λ"), numbers, strict=True))
    values = {name: values[name] for name in combination.parameters}
    try:
        expected = combination.coefficients(values)
    except ExpressionError:
        return
    actual = again.coefficients(values)
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert math.isclose(actual[name], value, rel_tol=1e-9, abs_tol=1e-9 * _scale(combination, name, values))
