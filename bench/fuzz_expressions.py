"""Fuzz the expression parser: random token soup, junk, deep nesting, huge numbers, powers.

    .venv/bin/python bench/fuzz_expressions.py [--n 100000] [--seed 0]

Feeds N random expressions (seeded) to `workbench.algebra.parse` with the modules `a`
and `b` bound, computes the coefficients of those that parse at random parameter values,
and parses each canonical form back. Prints a markdown table of: how many parsed, how
many were refused with ExpressionError (ours, the expected refusal), how many raised
anything else (a bug: the first 10 are printed), the slowest parse in ms and the parses
over 50 ms (a parse that took longer is timed 3 more times and keeps its best, so a pause
of the machine is not counted), and the canonical round-trip: the same canonical form
again, a different one, or refused. A composition that cancels to zero prints as `0`,
which names no module and so cannot parse back; those are counted apart.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from workbench.algebra import parse
from workbench.algebra.expression import MAX_LENGTH
from workbench.errors import ExpressionError

MODULES = ("a", "b")
PARAMETERS = ("lam", "mu", "λ", "x1", "_p")
OPERATORS = ("+", "-", "*", "/", "^", "**", "(", ")", "⊕", "⊖", "×", "·", "−")
NUMBERS = ("0", "1", "2", "0.5", ".5", "1.", "3e2", "1e-7", "1e308", "1e309", "1e-320", "1e39", "16", "17",
           "123456789012.5", "9" * 30, "0.000001", "1e+5", "2E3")  # fmt: skip
JUNK = (";", "'", '"', "$", "{", "}", "[", "]", "\x00", "\u200b", "\u202e", "😀", "÷", "ａ", ".", ",", "e",
        "E", "_", "\n", "\t", "%", "#", "!", "<", ">", "=", "&", "|", "~", "@", "\\", "`", "..", "0x", "ﬁ", "²",
        "¹")  # fmt: skip
SLOW_MS = 50.0


def soup(rng: random.Random) -> str:
    """Tokens of the language and junk, in any order."""
    pools = (MODULES, PARAMETERS, OPERATORS, NUMBERS, JUNK)
    weights = (3, 3, 6, 3, 1)
    parts = [rng.choice(rng.choices(pools, weights)[0]) for _ in range(rng.randint(1, 40))]
    return "".join(part + rng.choice(("", "", " ")) for part in parts)


def scalar(rng: random.Random, depth: int) -> str:
    if depth <= 0 or rng.random() < 0.3:
        return rng.choice(PARAMETERS + NUMBERS[:12])
    form = rng.randrange(5)
    if form == 0:
        return f"{scalar(rng, depth - 1)} {rng.choice('+-*')} {scalar(rng, depth - 1)}"
    if form == 1:
        return f"({scalar(rng, depth - 1)})"
    if form == 2:
        return f"({scalar(rng, depth - 1)}){rng.choice(('^', '**'))}{rng.randint(0, 20)}"
    if form == 3:
        return f"-{scalar(rng, depth - 1)}"
    return f"{scalar(rng, depth - 1)}/{rng.choice(NUMBERS)}"


def structured(rng: random.Random, depth: int = 4) -> str:
    """A mostly valid module expression: modules scaled, summed, divided, negated."""
    if depth <= 0 or rng.random() < 0.25:
        return rng.choice(MODULES)
    form = rng.randrange(5)
    if form == 0:
        return f"{structured(rng, depth - 1)} {rng.choice(('+', '-', '⊕', '⊖'))} {structured(rng, depth - 1)}"
    if form == 1:
        return f"({scalar(rng, 3)})*({structured(rng, depth - 1)})"
    if form == 2:
        return f"{structured(rng, depth - 1)}/{rng.choice(NUMBERS)}"
    if form == 3:
        return f"-({structured(rng, depth - 1)})"
    return f"{scalar(rng, 2)}{rng.choice(('*', '×', '·'))}{structured(rng, depth - 1)}"


def mutated(rng: random.Random) -> str:
    """A structured expression with a few characters inserted, deleted or swapped."""
    text = list(structured(rng))
    for _ in range(rng.randint(1, 3)):
        position = rng.randrange(len(text) + 1)
        action = rng.randrange(3)
        if action == 0:
            text.insert(position, rng.choice(OPERATORS + JUNK + MODULES))
        elif action == 1 and text:
            del text[min(position, len(text) - 1)]
        elif text:
            text[min(position, len(text) - 1)] = rng.choice(OPERATORS + JUNK)
    return "".join(text)


def deep(rng: random.Random) -> str:
    depth = rng.choice((rng.randint(1, 40), rng.randint(1, 400)))
    inner = structured(rng, 2)
    form = rng.randrange(3)
    if form == 0:
        return "(" * depth + inner + ")" * depth
    if form == 1:
        return "-" * depth + inner
    return "(" * depth + inner + ")" * rng.randint(0, depth + 2)  # often unbalanced


def long(rng: random.Random) -> str:
    return rng.choice(("a+", "lam*a+", "0.5*b-", "(a)+", "1e300*a+")) * rng.randint(50, 400) + "a"


def powers(rng: random.Random) -> str:
    """Powers in and out of range, of sums whose expansions grow fast."""
    base = rng.choice(("lam", "(1-lam)", "(lam+mu)", "(lam+mu+1)", "(lam+mu+x1+1)", "(lam-λ)", "2", "1e20", "a"))
    exponent = rng.choice((str(rng.randint(0, 20)), str(rng.randint(0, 10**6)), "-1", "2.5", "mu", "(2)", ""))
    chain = "".join(f"^{rng.randint(0, 4)}" for _ in range(rng.randint(0, 2)))
    tail = rng.choice(("*a", "*a + b", "*(a-b)", "", "*" + base + "^8*a"))
    return f"{base}{rng.choice(('^', '**'))}{exponent}{chain}{tail}"


def huge_numbers(rng: random.Random) -> str:
    scaled = repr(rng.random() * 10.0 ** rng.randint(-300, 300))
    number = rng.choice(("1e308", "1e309", "1e39", "1e-320", "9" * rng.randint(10, 400), "1" + "0" * 310,
                         "0." + "0" * 330 + "1", "1e400", scaled))  # fmt: skip
    return rng.choice((f"{number}*a", f"a/{number}", f"{number}*{number}*a", f"({number}-{number})*a + b",
                       f"lam*{number}*a"))  # fmt: skip


GENERATORS: tuple[tuple[Callable[[random.Random], str], int], ...] = (
    (soup, 30), (structured, 25), (mutated, 20), (deep, 8), (long, 5), (powers, 8), (huge_numbers, 4),
)  # fmt: skip


def timed_parse(text: str) -> float:
    start = time.perf_counter()
    try:
        parse(text, MODULES)
    except Exception:  # noqa: BLE001 - only the time counts here
        pass
    return (time.perf_counter() - start) * 1000


def random_values(rng: random.Random, names: tuple[str, ...]) -> dict[str, float]:
    scale = rng.choice((1.0, 1.0, 1.0, 1e3, 1e30, 1e200))
    return {name: rng.uniform(-2, 2) * scale for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="expressions to try (default 100,000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    functions, weights = zip(*GENERATORS, strict=True)

    counts = dict.fromkeys(("parsed", "refused", "bug", "coef_ok", "coef_refused", "coef_bug", "rt_same",
                            "rt_differs", "rt_too_long", "rt_refused", "rt_bug", "zero", "slow"), 0)  # fmt: skip
    bugs: list[str] = []
    round_trip: list[str] = []
    slowest = (0.0, "")
    started = time.perf_counter()
    for _ in range(args.n):
        text = rng.choices(functions, weights)[0](rng)
        start = time.perf_counter()
        try:
            combination = parse(text, MODULES)
        except ExpressionError:
            counts["refused"] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - what the fuzzer is for
            counts["bug"] += 1
            if len(bugs) < 10:
                bugs.append(f"{text!r}: {type(exc).__name__}: {exc}"[:300])
            continue
        finally:
            elapsed = (time.perf_counter() - start) * 1000
            if elapsed > SLOW_MS:  # a pause of the machine or the collector, or the parser? best of 3 says
                elapsed = min(elapsed, *(timed_parse(text) for _ in range(3)))
            if elapsed > slowest[0]:
                slowest = (elapsed, text)
            counts["slow"] += elapsed > SLOW_MS
        counts["parsed"] += 1
        try:
            combination.coefficients(random_values(rng, combination.parameters))
            counts["coef_ok"] += 1
        except ExpressionError:
            counts["coef_refused"] += 1
        except Exception as exc:  # noqa: BLE001
            counts["coef_bug"] += 1
            if len(bugs) < 10:
                bugs.append(f"coefficients of {text!r}: {type(exc).__name__}: {exc}"[:300])
        canonical = combination.canonical
        if not combination.terms:
            counts["zero"] += 1
            continue
        try:
            again = parse(canonical, MODULES).canonical
        except ExpressionError as exc:
            key = "rt_too_long" if len(canonical) > MAX_LENGTH else "rt_refused"
            counts[key] += 1
            if key == "rt_refused" and len(round_trip) < 10:
                round_trip.append(f"{text!r} -> {canonical!r}: {exc}"[:300])
            continue
        except Exception as exc:  # noqa: BLE001
            counts["rt_bug"] += 1
            if len(bugs) < 10:
                bugs.append(f"parsing back {canonical!r}: {type(exc).__name__}: {exc}"[:300])
            continue
        if again == canonical:
            counts["rt_same"] += 1
        else:
            counts["rt_differs"] += 1
            if len(round_trip) < 10:
                round_trip.append(f"{text!r} -> {canonical!r} -> {again!r}"[:300])
    seconds = time.perf_counter() - started

    n = args.n
    rows = [
        ("expressions (seed)", f"{n:,} ({args.seed})"),
        ("parsed", f"{counts['parsed']:,} ({counts['parsed'] / n:.1%})"),
        ("refused with ExpressionError", f"{counts['refused']:,} ({counts['refused'] / n:.1%})"),
        ("other exceptions (bugs)", f"{counts['bug']:,}"),
        ("coefficients: computed / refused (overflow) / other exceptions",
         f"{counts['coef_ok']:,} / {counts['coef_refused']:,} / {counts['coef_bug']:,}"),
        ("canonical parses back to itself", f"{counts['rt_same']:,}"),
        ("canonical parses back to another form", f"{counts['rt_differs']:,}"),
        (f"canonical refused: longer than {MAX_LENGTH} characters", f"{counts['rt_too_long']:,}"),
        ("canonical refused: other reason", f"{counts['rt_refused']:,}"),
        ("canonical parse-back raised another exception", f"{counts['rt_bug']:,}"),
        ("cancels to 0 (no canonical to parse back)", f"{counts['zero']:,}"),
        ("slowest parse (a parse over 50 ms: best of 4 runs)", f"{slowest[0]:.1f} ms"),
        (f"parses over {SLOW_MS:.0f} ms (best of 4)", f"{counts['slow']:,}"),
        ("total time", f"{seconds:.1f} s"),
    ]  # fmt: skip
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"\nslowest input ({len(slowest[1])} characters): {slowest[1][:120]!r}")
    if bugs:
        print("\nfirst exceptions other than ExpressionError:")
        for line in bugs:
            print(f"- {line}")
    if round_trip:
        print("\nfirst canonical forms that do not parse back to themselves:")
        for line in round_trip:
            print(f"- {line}")
    if counts["parsed"] + counts["refused"] + counts["bug"] != n:
        raise SystemExit("internal count mismatch")


if __name__ == "__main__":
    main()
