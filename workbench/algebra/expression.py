"""The expression language: our own tokenizer and recursive-descent parser, never `eval`.

Grammar (docs/architecture.md), with ⊕ ⊖ × · as synonyms of + - * *, and ** of ^:

    expr  := term (("+" | "-") term)*
    term  := unary (("*" unary) | ("/" unary))*      # divisor must be a plain number
    unary := ("-" | "+") unary | power
    power := atom ("^" digits)?                      # 0 to MAX_POWER; base not a module
    atom  := number | name | "(" expr ")"

So `-lam^2` is -(lam²), and a chain `lam^2^3` needs parentheses. The power exists so that
the canonical form, which prints `lam^2`, parses back to the same combination.

A name bound to a loaded module is module-valued; any other name is a free parameter.
The result is a `LinearCombination`: Σ cᵢ·moduleᵢ, each cᵢ a polynomial in the parameters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from workbench.algebra.polynomial import MAX_POWER, Polynomial, PolynomialError
from workbench.errors import ExpressionError

MAX_LENGTH = 500
MAX_DEPTH = 32

_SYNONYMS = {"⊕": "+", "⊖": "-", "×": "*", "·": "*", "−": "-"}
_OPERATORS = set("+-*/^()")


@dataclass(frozen=True)
class Token:
    kind: str  # "number", "name", "op", "end"
    text: str
    position: int
    value: float = 0.0


def tokenize(text: str) -> list[Token]:
    """Split `text` into tokens, refusing any character the language does not know."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif text.startswith("**", i):
            tokens.append(Token("op", "^", i))
            i += 2
        elif char in _SYNONYMS or char in _OPERATORS:
            tokens.append(Token("op", _SYNONYMS.get(char, char), i))
            i += 1
        elif char.isdigit() or (char == "." and i + 1 < len(text) and text[i + 1].isdigit()):
            start = i
            while i < len(text) and (text[i].isdigit() or text[i] == "."):
                i += 1
            if i < len(text) and text[i] in "eE":
                j = i + 1
                if j < len(text) and text[j] in "+-":
                    j += 1
                if j < len(text) and text[j].isdigit():
                    i = j
                    while i < len(text) and text[i].isdigit():
                        i += 1
            literal = text[start:i]
            try:
                value = float(literal)
            except ValueError:
                raise ExpressionError(f"'{literal}' is not a number", text, start) from None
            if not math.isfinite(value):
                raise ExpressionError(f"the number '{literal}' is too large", text, start)
            tokens.append(Token("number", literal, start, value))
        elif char.isidentifier():
            start = i
            while i < len(text) and (text[i].isidentifier() or text[i].isdigit()):
                i += 1
            tokens.append(Token("name", text[start:i], start))
        else:
            raise ExpressionError(f"unexpected character {char!r}", text, i)
    tokens.append(Token("end", "", len(text)))
    return tokens


@dataclass(frozen=True)
class LinearCombination:
    """Σ coefficient·module, frozen and hashable; `canonical` is its stable text."""

    terms: tuple[tuple[str, Polynomial], ...]
    source: str = field(default="", compare=False)

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.terms)

    @property
    def parameters(self) -> tuple[str, ...]:
        names: set[str] = set()
        for _, coefficient in self.terms:
            names |= coefficient.parameters
        return tuple(sorted(names))

    @property
    def canonical(self) -> str:
        if not self.terms:
            return "0"
        parts = []
        for name, coefficient in self.terms:
            text = str(coefficient)  # compared as printed, so 1 + 1e-13 reads as 1 both times
            if text in ("1", "-1"):
                parts.append(name if text == "1" else f"-{name}")
            elif len(coefficient.terms) == 1:
                parts.append(f"{text}*{name}")
            else:
                parts.append(f"({text})*{name}")
        return " + ".join(parts).replace("+ -", "- ")

    def coefficients(self, values: Mapping[str, float]) -> dict[str, float]:
        """Each module's numeric coefficient at `values`, after checking every parameter has one."""
        missing = [name for name in self.parameters if name not in values]
        if missing:
            hint = ", ".join(f"{name}=0.5" for name in missing)
            raise ExpressionError(f"parameter(s) {', '.join(missing)} have no value; set them, e.g. {hint}")
        for name in self.parameters:
            if not math.isfinite(values[name]):
                raise ExpressionError(f"parameter {name} must be a finite number, not {values[name]}")
        result = {name: coefficient.evaluate(values) for name, coefficient in self.terms}
        for name, value in result.items():
            if not math.isfinite(value):
                raise ExpressionError(f"the coefficient of {name} overflows at these parameter values")
        return result

    def __str__(self) -> str:
        return self.canonical


@dataclass(frozen=True)
class _Value:
    """An intermediate result: a scalar polynomial, or a combination of modules."""

    scalar: Polynomial | None = None
    modules: tuple[tuple[str, Polynomial], ...] | None = None

    @property
    def is_module(self) -> bool:
        return self.modules is not None


def _combine(a: Mapping[str, Polynomial], b: Mapping[str, Polynomial], sign: float) -> dict[str, Polynomial]:
    merged = dict(a)
    for name, coefficient in b.items():
        term = coefficient if sign > 0 else -coefficient
        merged[name] = merged[name] + term if name in merged else term
    return merged


def _as_value(modules: Mapping[str, Polynomial]) -> _Value:
    return _Value(modules=tuple(sorted(modules.items())))


class _Parser:
    def __init__(self, text: str, module_names: Iterable[str]) -> None:
        self.text = text
        self.modules = set(module_names)
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    def error(self, message: str, token: Token | None = None) -> ExpressionError:
        token = token or self.peek()
        return ExpressionError(message, self.text, token.position)

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> _Value:
        if self.peek().kind == "end":
            raise ExpressionError("the expression is empty; write e.g. lam*a + (1-lam)*b")
        value = self.expr()
        token = self.peek()
        if token.kind != "end":
            if token.text == ")":
                raise self.error("unbalanced parentheses: ')' has no matching '('")
            raise self.error(f"expected an operator before '{token.text}'")
        return value

    def descend(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"the expression nests deeper than {MAX_DEPTH} levels")

    def expr(self) -> _Value:
        value = self.term()
        while self.peek().kind == "op" and self.peek().text in "+-":
            operator = self.take()
            right = self.term()
            value = self.add(value, right, operator)
        return value

    def term(self) -> _Value:
        value = self.unary()
        while self.peek().kind == "op" and self.peek().text in "*/":
            operator = self.take()
            right = self.unary()
            value = (
                self.multiply(value, right, operator) if operator.text == "*" else self.divide(value, right, operator)
            )
        return value

    def unary(self) -> _Value:
        token = self.peek()
        if token.kind == "op" and token.text in "+-":
            self.take()
            self.descend()
            value = self.unary()
            self.depth -= 1
            return self.negate(value) if token.text == "-" else value
        return self.power()

    def power(self) -> _Value:
        value = self.atom()
        if not (self.peek().kind == "op" and self.peek().text == "^"):
            return value
        operator = self.take()
        if value.is_module:
            raise self.error("cannot raise a module to a power; only numbers and parameters have powers", operator)
        exponent = self.take()
        if exponent.kind != "number" or not re.fullmatch(r"[0-9]+", exponent.text) or int(exponent.text) > MAX_POWER:
            raise self.error(f"the exponent must be a whole number from 0 to {MAX_POWER}, like lam^2", exponent)
        if self.peek().kind == "op" and self.peek().text == "^":
            raise self.error("a chain of powers needs parentheses, e.g. (lam^2)^3")
        return _Value(scalar=self.wrap(lambda: value.scalar.power(int(exponent.text)), operator))

    def atom(self) -> _Value:
        token = self.take()
        if token.kind == "number":
            return _Value(scalar=self.wrap(lambda: Polynomial.constant(token.value), token))
        if token.kind == "name":
            if token.text in self.modules:
                return _Value(modules=((token.text, Polynomial.constant(1.0)),))
            return _Value(scalar=Polynomial.parameter(token.text))
        if token.text == "(":
            self.descend()
            if self.peek().text == ")":
                raise self.error("empty parentheses '()'")
            value = self.expr()
            closing = self.take()
            if closing.text != ")":
                if closing.kind == "end":
                    raise self.error("unbalanced parentheses: a '(' is never closed", closing)
                raise self.error(f"expected ')' before '{closing.text}'", closing)
            self.depth -= 1
            return value
        if token.kind == "end":
            raise self.error("the expression ends where a number, name or '(' was expected", token)
        if token.text == ")":
            raise self.error("unbalanced parentheses: ')' has no matching '('", token)
        raise self.error(f"expected a number, name or '(' but found '{token.text}'", token)

    def wrap(self, build, token: Token) -> Polynomial:
        try:
            return build()
        except PolynomialError as exc:
            raise self.error(str(exc), token) from None

    def add(self, left: _Value, right: _Value, operator: Token) -> _Value:
        sign = 1.0 if operator.text == "+" else -1.0
        if left.is_module and right.is_module:
            return self.wrap(lambda: _as_value(_combine(dict(left.modules), dict(right.modules), sign)), operator)
        if not left.is_module and not right.is_module:
            result = self.wrap(lambda: left.scalar + right.scalar if sign > 0 else left.scalar - right.scalar, operator)
            return _Value(scalar=result)
        raise self.error(
            f"cannot {'add' if sign > 0 else 'subtract'} a number or parameter and a module; "
            "scale the module instead, e.g. lam*a",
            operator,
        )

    def multiply(self, left: _Value, right: _Value, operator: Token) -> _Value:
        if left.is_module and right.is_module:
            raise self.error("cannot multiply two modules; only a number or parameter can scale a module", operator)
        if not left.is_module and not right.is_module:
            return _Value(scalar=self.wrap(lambda: left.scalar * right.scalar, operator))
        scalar, combo = (left.scalar, right.modules) if right.is_module else (right.scalar, left.modules)
        return self.wrap(lambda: _as_value({name: scalar * coefficient for name, coefficient in combo}), operator)

    def divide(self, left: _Value, right: _Value, operator: Token) -> _Value:
        if right.is_module:
            raise self.error("cannot divide by a module; divide by a number instead", operator)
        divisor = right.scalar.constant_value
        if divisor is None:
            raise self.error("can only divide by a number, not by a parameter", operator)
        if divisor == 0.0:
            raise self.error("division by zero", operator)
        if left.is_module:
            return self.wrap(
                lambda: _as_value({name: coefficient.scale(1.0 / divisor) for name, coefficient in left.modules}),
                operator,
            )
        return _Value(scalar=self.wrap(lambda: left.scalar.scale(1.0 / divisor), operator))

    def negate(self, value: _Value) -> _Value:
        if value.is_module:
            return _Value(modules=tuple((name, -coefficient) for name, coefficient in value.modules))
        return _Value(scalar=-value.scalar)


def parse(text: str, module_names: Iterable[str]) -> LinearCombination:
    """Parse `text` into a linear combination over `module_names`.

    Raises ExpressionError (one line, with the position) for anything it cannot read,
    for too long or too deep input, and for expressions that name no loaded module.
    """
    if not isinstance(text, str):
        raise ExpressionError("the expression must be text")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is {len(text)} characters long; the limit is {MAX_LENGTH}")
    module_names = list(module_names)
    value = _Parser(text, module_names).parse()
    if not value.is_module:
        names = sorted(value.scalar.parameters)
        loaded = ", ".join(sorted(module_names)) or "none"
        if names:
            raise ExpressionError(
                f"the expression names no loaded module (unknown name(s): {', '.join(names)}); loaded modules: {loaded}"
            )
        raise ExpressionError(f"the expression is a plain number and names no module; loaded modules: {loaded}")
    terms = tuple((name, coefficient) for name, coefficient in value.modules if not coefficient.is_zero)
    return LinearCombination(terms=terms, source=text)
