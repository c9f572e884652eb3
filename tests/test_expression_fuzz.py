"""The parser under random input (hypothesis): it refuses with ExpressionError or parses,
never anything else, within 50 ms, and every canonical form parses back to itself.

bench/fuzz_expressions.py runs the same property on 100,000 inputs."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from workbench.algebra import parse
from workbench.algebra.expression import MAX_LENGTH
from workbench.errors import ExpressionError

MODULES = ["a", "b"]
NAMES = ["a", "b", "lam", "mu", "λ", "x1"]
OPERATORS = ["+", "-", "*", "/", "^", "**", "(", ")", "⊕", "⊖", "×", "·", "−", " "]
NUMBERS = ["0", "1", "2", "0.5", ".5", "1.", "3e2", "1e-7", "1e308", "1e309", "1e-320", "1e39", "16", "17", "9" * 30]
JUNK = [";", "'", "\x00", "\u200b", "😀", "÷", "ａ", ".", ",", "e", "_", "\n", "=", "\\", "0x", "²"]

TOKENS = st.sampled_from(NAMES + OPERATORS + NUMBERS + JUNK)
SOUP = st.lists(TOKENS, min_size=1, max_size=40).map("".join)
CHARACTERS = st.text(alphabet=st.sampled_from(sorted(set("".join(NAMES + OPERATORS + NUMBERS + JUNK)))), max_size=60)


def scalars() -> st.SearchStrategy[str]:
    atom = st.sampled_from(["lam", "mu", "λ", *NUMBERS[:12]])

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(" ".join),
            st.tuples(inner, st.sampled_from(["^", "**"]), st.integers(0, 20)).map(lambda t: f"({t[0]}){t[1]}{t[2]}"),
            inner.map(lambda x: f"-({x})"),
        )

    return st.recursive(atom, extend, max_leaves=6)


def modules() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "⊕", "⊖"]), inner).map(" ".join),
            st.tuples(scalars(), inner).map(lambda t: f"({t[0]})*({t[1]})"),
            st.tuples(inner, st.sampled_from(NUMBERS)).map(lambda t: f"({t[0]})/{t[1]}"),
            st.tuples(st.integers(1, 40), inner).map(lambda t: "(" * t[0] + t[1] + ")" * t[0]),
        )

    return st.recursive(st.sampled_from(MODULES), extend, max_leaves=8)


EXPRESSIONS = st.one_of(SOUP, CHARACTERS, modules())


@settings(max_examples=2000, deadline=50, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS)
def test_parse_refuses_only_with_expression_error_and_canonical_forms_parse_back(text: str) -> None:
    try:
        combination = parse(text, MODULES)
    except ExpressionError as exc:
        assert len(str(exc).splitlines()) == 1, repr(str(exc))
        return
    assume(combination.terms)  # a composition that cancels prints as 0, which names no module
    canonical = combination.canonical
    assume(len(canonical) <= MAX_LENGTH)  # bench/fuzz_expressions.py counts the longer ones
    assert parse(canonical, MODULES).canonical == canonical
