"""The expression language: canonical forms, coefficients, and one-line errors."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.algebra.expression import MAX_DEPTH, MAX_LENGTH, parse
from workbench.errors import ExpressionError

MODULES = ["a", "b", "toxic", "base", "cls_a", "lm_a", "lm_b"]


@pytest.mark.parametrize(
    ("text", "canonical", "parameters"),
    [
        ("lam*a + (1-lam)*b", "lam*a + (1 - lam)*b", ("lam",)),
        ("-0.6*toxic", "-0.6*toxic", ()),
        ("-lam*toxic", "-lam*toxic", ("lam",)),
        ("base + lam*(base - toxic)", "(1 + lam)*base - lam*toxic", ("lam",)),
        ("lam*cls_a + (1-lam)*(lm_b - lm_a)", "lam*cls_a + (-1 + lam)*lm_a + (1 - lam)*lm_b", ("lam",)),
        ("a ⊕ b ⊖ toxic", "a + b - toxic", ()),
        ("λ*a + (1−λ)*b", "λ*a + (1 - λ)*b", ("λ",)),
        ("2 × a · 0.25", "0.5*a", ()),
        ("a/4 + b/4", "0.25*a + 0.25*b", ()),
        ("(1-lam)*b + lam*a", "lam*a + (1 - lam)*b", ("lam",)),
        ("lam*mu*a", "lam*mu*a", ("lam", "mu")),
        ("--a", "a", ()),
        ("a - a + b", "b", ()),
        ("1e-1*a", "0.1*a", ()),
    ],
)
def test_canonical_form(text: str, canonical: str, parameters: tuple[str, ...]) -> None:
    combination = parse(text, MODULES)
    assert combination.canonical == canonical
    assert combination.parameters == parameters


def test_equivalent_expressions_share_a_key() -> None:
    first = parse("lam*a + (1-lam)*b", MODULES)
    second = parse("(1 - lam) * b ⊕ a*lam", MODULES)
    assert first == second
    assert hash(first) == hash(second)
    assert first.canonical == second.canonical


def test_coefficients_at_values() -> None:
    combination = parse("base + lam*(base - toxic)", MODULES)
    assert combination.coefficients({"lam": 0.5}) == {"base": 1.5, "toxic": -0.5}
    combination = parse("lam*mu*a - 2*mu*b/4", MODULES)
    values = combination.coefficients({"lam": 0.3, "mu": 0.5})
    assert math.isclose(values["a"], 0.15) and math.isclose(values["b"], -0.25)


@pytest.mark.parametrize(
    ("text", "fragment", "position"),
    [
        ("a*b", "cannot multiply two modules", 1),
        ("lam*a * (b)", "cannot multiply two modules", 6),
        ("a/b", "cannot divide by a module", 1),
        ("a/lam", "only divide by a number", 1),
        ("a/0", "division by zero", 1),
        ("(a + b", "never closed", 6),
        ("a + b)", "no matching '('", 5),
        ("", "empty", None),
        ("   ", "empty", None),
        ("lam*x", "names no loaded module (unknown name(s): lam, x)", None),
        ("2*3", "plain number", None),
        ("1 + a", "cannot add a number or parameter and a module", 2),
        ("a + ", "ends where", 4),
        ("a $ b", "unexpected character '$'", 2),
        ("a b", "expected an operator before 'b'", 2),
        ("()", "empty parentheses", 1),
        ("1e999*a", "too large", 0),
    ],
)
def test_errors_name_what_and_where(text: str, fragment: str, position: int | None) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text, MODULES)
    assert fragment in str(caught.value)
    assert caught.value.position == position
    assert "\n" not in str(caught.value)


def test_limits_on_length_and_depth() -> None:
    with pytest.raises(ExpressionError, match="limit is"):
        parse("a+" * MAX_LENGTH + "a", MODULES)
    with pytest.raises(ExpressionError, match="nests deeper"):
        parse("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), MODULES)
    with pytest.raises(ExpressionError, match="nests deeper"):
        parse("-" * (MAX_DEPTH + 1) + "a", MODULES)
    with pytest.raises(ExpressionError, match="more than"):
        parse("*".join(["(p+q+r+s+t+u+v)"] * 12) + "*a", MODULES)


def test_missing_and_unused_parameter_values() -> None:
    combination = parse("lam*a + mu*b", MODULES)
    with pytest.raises(ExpressionError, match="lam, mu have no value"):
        combination.coefficients({})
    with pytest.raises(ExpressionError, match="finite"):
        combination.coefficients({"lam": float("nan"), "mu": 1.0})


ALPHABET = "ab lamλ()+-*/⊕⊖×·.0123456789e$_xy\t"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=60))
def test_random_text_raises_only_our_error(text: str) -> None:
    try:
        combination = parse(text, ["a", "b"])
    except ExpressionError as exc:
        assert "\n" not in str(exc)
        return
    values = {name: 0.5 for name in combination.parameters}
    try:
        combination.coefficients(values)
    except ExpressionError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_unicode_raises_only_our_error(text: str) -> None:
    try:
        parse(text, ["a"])
    except ExpressionError:
        pass
