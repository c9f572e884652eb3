"""Coefficients of a composition: polynomials in the free parameters (the λ sliders).

`lam*a + (1-lam)*b` gives module `b` the coefficient `1 - lam`. Keeping coefficients
symbolic, rather than numbers, lets one parsed expression serve every slider position,
and gives each expression a canonical text that keys the caches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

# A monomial is a sorted tuple of (parameter, power); () is the constant monomial.
Monomial = tuple[tuple[str, int], ...]

MAX_TERMS = 256
MAX_POWER = 16  # per parameter, so that every canonical form's `lam^k` parses back


class PolynomialError(ValueError):
    """Raised for overflow or blow-up; the parser turns it into an ExpressionError."""


def _format_number(value: float) -> str:
    """12 significant digits (whole numbers below 1e12 print as integers). Printing what this
    prints, once parsed, gives the same text, so a canonical form is a fixed point."""
    return format(value, ".12g")


def _mul_monomials(a: Monomial, b: Monomial) -> Monomial:
    powers: dict[str, int] = dict(a)
    for name, power in b:
        powers[name] = powers.get(name, 0) + power
    return tuple(sorted(powers.items()))


def _format_monomial(monomial: Monomial) -> str:
    return "*".join(name if power == 1 else f"{name}^{power}" for name, power in monomial)


@dataclass(frozen=True)
class Polynomial:
    """An immutable, hashable polynomial with float coefficients and no zero terms."""

    terms: tuple[tuple[Monomial, float], ...] = ()

    @staticmethod
    def constant(value: float) -> Polynomial:
        return Polynomial._build({(): float(value)})

    @staticmethod
    def parameter(name: str) -> Polynomial:
        return Polynomial._build({((name, 1),): 1.0})

    @staticmethod
    def _build(terms: Mapping[Monomial, float]) -> Polynomial:
        kept = {}
        for monomial, coefficient in terms.items():
            if not math.isfinite(coefficient):
                raise PolynomialError("a number is too large")
            if coefficient != 0.0:
                kept[monomial] = coefficient
        if len(kept) > MAX_TERMS:
            raise PolynomialError(f"the coefficients expand to more than {MAX_TERMS} terms")
        return Polynomial(tuple(sorted(kept.items(), key=lambda item: (len(item[0]), item[0]))))

    @property
    def is_zero(self) -> bool:
        return not self.terms

    @property
    def constant_value(self) -> float | None:
        """The value when the polynomial has no parameters, else None."""
        if not self.terms:
            return 0.0
        if len(self.terms) == 1 and self.terms[0][0] == ():
            return self.terms[0][1]
        return None

    @property
    def parameters(self) -> frozenset[str]:
        return frozenset(name for monomial, _ in self.terms for name, _ in monomial)

    def __add__(self, other: Polynomial) -> Polynomial:
        terms = dict(self.terms)
        for monomial, coefficient in other.terms:
            terms[monomial] = terms.get(monomial, 0.0) + coefficient
        return Polynomial._build(terms)

    def __neg__(self) -> Polynomial:
        return Polynomial(tuple((monomial, -coefficient) for monomial, coefficient in self.terms))

    def __sub__(self, other: Polynomial) -> Polynomial:
        return self + (-other)

    def __mul__(self, other: Polynomial) -> Polynomial:
        if len(self.terms) * len(other.terms) > MAX_TERMS * 4:
            raise PolynomialError(f"the coefficients expand to more than {MAX_TERMS} terms")
        terms: dict[Monomial, float] = {}
        for mono_a, coef_a in self.terms:
            for mono_b, coef_b in other.terms:
                monomial = _mul_monomials(mono_a, mono_b)
                if any(power > MAX_POWER for _, power in monomial):
                    raise PolynomialError(f"a power above {MAX_POWER}; powers go up to {MAX_POWER}")
                terms[monomial] = terms.get(monomial, 0.0) + coef_a * coef_b
        return Polynomial._build(terms)

    def power(self, exponent: int) -> Polynomial:
        """self^exponent by repeated multiplication (the exponent is small: at most MAX_POWER)."""
        result = Polynomial.constant(1.0)
        for _ in range(exponent):
            result = result * self
        return result

    def scale(self, factor: float) -> Polynomial:
        return Polynomial._build({monomial: coefficient * factor for monomial, coefficient in self.terms})

    def evaluate(self, values: Mapping[str, float]) -> float:
        """The value at `values`, which must bind every parameter (the caller checks).
        Overflow gives inf (Python's `**` raises instead), which the caller reports."""
        total = 0.0
        for monomial, coefficient in self.terms:
            product = coefficient
            for name, power in monomial:
                try:
                    product *= values[name] ** power
                except OverflowError:
                    return math.inf
            total += product
        return total

    def __str__(self) -> str:
        if not self.terms:
            return "0"
        parts: list[str] = []
        for monomial, coefficient in self.terms:
            sign = "-" if coefficient < 0 else "+"
            magnitude = _format_number(abs(coefficient))
            if not monomial:
                body = magnitude
            elif magnitude == "1":
                body = _format_monomial(monomial)
            else:
                body = f"{magnitude}*{_format_monomial(monomial)}"
            parts.append(f"{sign} {body}")
        text = " ".join(parts)
        return text[2:] if text.startswith("+ ") else "-" + text[2:]
