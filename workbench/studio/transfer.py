"""Domain transfer (the paper's §4.5, Table 5), measured.

No label of the target domain is used to build the composition: a classifier trained on
the source domain (`minilm-sentiment-lora`, Amazon fine-food reviews) is moved towards the
target (movie-review snippets) by the difference of two masked-LM modules, one trained on
each domain's texts from the same start:
θ_cls,target = λ·θ_cls,source ⊕ (1−λ)·(θ_lm,target ⊖ θ_lm,source), the expression
`lam*cls + (1-lam)*(lm_target - lm_source)`; λ = 1 is the source classifier alone. The plain
analogy, θ_cls,source ⊕ (θ_lm,target ⊖ θ_lm,source) with no weights, is measured beside it,
as `cls + mu*(lm_target - lm_source)` at μ = 1 − λ (μ = 1 is the analogy itself).

Measured on the target's splits (`assets/data/movie-*.csv`):
- validation accuracy over the λ grid, for the composition, for a control, `lam*cls` alone,
  which separates what the LM difference adds from what scaling the classifier does, and
  for the plain analogy's family;
- λ is chosen on validation (the highest accuracy; a tie goes to the larger λ, nearer the
  source classifier), as the paper chooses λ on validation (its App. C);
- test accuracy of the source classifier, the composition and the control at that λ, the
  plain analogy (μ = 1, chosen by no one), and the reference classifier trained on the
  target's labels (the table's "target" column);
- a paired bootstrap interval of composition minus source on the same test snippets (the
  paper marks a merge significantly different from its source at p < 0.05).

Both of the paper's PEM types are measured, LoRA and (IA)³, each with its own four modules.
`python -m workbench zoo transfer` writes this study's section of docs/zoo-studies.md and the
measured part of the LM modules' cards, so the numbers exist once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.catalog.bases import ZOO_BASES
from workbench.catalog.recipes import Recipe
from workbench.catalog.registry import zoo_adapter_path
from workbench.eval.classify import predict
from workbench.eval.intervals import bootstrap
from workbench.runtime import SessionManager
from workbench.studio.cards import machine, majority_rate, module_line, split_task
from workbench.studio.sections import Section, fill_cards
from workbench.studio.training import method_name

BASE = "minilm-l6"
TASK = "movie"
PEM_TYPES = ("lora", "ia3")  # the paper's Table 5 types
EXPRESSION = "lam*cls + (1-lam)*(lm_target - lm_source)"
CONTROL = "lam*cls"
ANALOGY = "cls + mu*(lm_target - lm_source)"
LAMBDAS = tuple(round(0.1 * step, 1) for step in range(11))
BEGIN, END = "<!-- domain-transfer: begin -->", "<!-- domain-transfer: end -->"
CARD_BEGIN, CARD_END = "<!-- transfer-measured: begin -->", "<!-- transfer-measured: end -->"
UNMEASURED = "Not measured since this module was trained: `python -m workbench zoo transfer` measures the study."
OBJECTIVE = ("masked LM: 15% of tokens, BERT's 80/10/10 rule; the masked-LM head (absent from the package) "
             "trains from a seeded start and is not kept")
PAPER_GAINS = {"lora": "+0.26, 0.00, +1.07 and +0.91 points, all but 0.00 significant",
               "ia3": "+0.02, −0.01, +0.48 and +0.76 points, only +0.48 significant"}  # fmt: skip
RULE = "the highest validation accuracy on the grid; a tie goes to the larger λ (nearer the source classifier)"


def modules(pem_type: str) -> dict[str, str]:
    """The expression's names and the zoo modules they bind, for one PEM type."""
    return {"cls": f"minilm-sentiment-{pem_type}", "lm_source": f"minilm-amazon-lm-{pem_type}",
            "lm_target": f"minilm-movie-lm-{pem_type}", "target": f"minilm-movie-{pem_type}"}  # fmt: skip


def lm_modules(pem_type: str) -> tuple[str, str]:
    names = modules(pem_type)
    return names["lm_source"], names["lm_target"]


@dataclass(frozen=True)
class TransferReport:
    pem_type: str
    validation: dict[float, tuple[float, float, float]]  # λ -> (composition, control, analogy at μ = 1 − λ)
    lam: float
    test: dict[str, float]  # source, composition, control, analogy, target -> accuracy
    difference: float  # composition minus source, on test
    paired: tuple[float, float]  # its paired bootstrap 95% interval
    majority: float  # the test split's majority rate
    rows: int  # test snippets
    seconds: float

    @property
    def significant(self) -> bool:
        return self.paired[0] > 0 or self.paired[1] < 0


def choose_lambda(validation: dict[float, tuple[float, ...]]) -> float:
    """The study's rule (RULE) on the composition's validation accuracies."""
    return max(validation, key=lambda lam: (validation[lam][0], lam))


def measure_transfer(pem_type: str = "lora", seed: int = 0, say: Callable[[str], None] = print,
                     adapter: Callable[[str], Path] = zoo_adapter_path,
                     base: str = BASE) -> TransferReport:  # fmt: skip
    start = time.perf_counter()
    manager = SessionManager()
    manager.rebuild("transfer", base, {name: adapter(module) for name, module in modules(pem_type).items()})
    validation_task, test_task = split_task(TASK, "validation"), split_task(TASK, "test")

    def correct(expression: str, values: dict[str, float], task) -> np.ndarray:
        manager.set_composition("transfer", expression, values)
        with manager.model_for("transfer") as base:
            return np.asarray(predict(base, task)) == np.asarray(task.labels)

    validation = {}
    for lam in LAMBDAS:
        say(f"{pem_type}: validation λ={lam:g}")
        settings = ((EXPRESSION, {"lam": lam}), (CONTROL, {"lam": lam}), (ANALOGY, {"mu": round(1 - lam, 10)}))
        validation[lam] = tuple(float(correct(e, values, validation_task).mean()) for e, values in settings)
    lam = choose_lambda(validation)  # type: ignore[arg-type]
    say(f"{pem_type}: test at λ={lam:g}")
    source = correct("cls", {}, test_task)
    composed = correct(EXPRESSION, {"lam": lam}, test_task)
    test = {"source": float(source.mean()), "composition": float(composed.mean()),
            "control": float(correct(CONTROL, {"lam": lam}, test_task).mean()),
            "analogy": float(correct(ANALOGY, {"mu": 1.0}, test_task).mean()),
            "target": float(correct("target", {}, test_task).mean())}  # fmt: skip
    gained = composed.astype(float) - source.astype(float)
    paired = bootstrap(len(gained), lambda rows: float(gained[rows].mean()), seed)
    return TransferReport(pem_type, validation, lam, test, float(gained.mean()), paired,  # type: ignore[arg-type]
                          majority_rate(test_task), len(gained), time.perf_counter() - start)  # fmt: skip


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def results_table(report: TransferReport) -> str:
    names = {"source": "source: `cls` alone (λ = 1)", "composition": f"merge: `{EXPRESSION}`, λ = {report.lam:g}",
             "control": f"control: `{CONTROL}`, λ = {report.lam:g} (no LM difference)",
             "analogy": f"plain analogy: `{ANALOGY}`, μ = 1 (no weights, chosen by no one)",
             "target": "target: trained on the movie labels (reference only)"}  # fmt: skip
    lines = ["| setting | movie test accuracy | against source (points) |", "|---|---|---|"]
    for key, label in names.items():
        lines.append(f"| {label} | {report.test[key]:.4f} | {_points(report.test[key] - report.test['source'])} |")
    return "\n".join(lines)


def verdict(report: TransferReport) -> str:
    low, high = report.paired
    return (f"Merge minus source on the same {report.rows} test snippets: {_points(report.difference)} points, paired "
            f"bootstrap 95% interval [{_points(low)}, {_points(high)}] (1000 resamples, seed 0): the merge is "
            f"**{'' if report.significant else 'not '}significantly different** from the source classifier "
            f"(the paper's {method_name(report.pem_type)} rows, Yelp and Amazon on T5-base then T5-small: "
            f"{PAPER_GAINS[report.pem_type]}). "
            f"The majority rate of the test split is {report.majority:.4f}.")  # fmt: skip


def protocol(report: TransferReport) -> str:
    return (f"Accuracy on `assets/data/movie-test.csv` ({report.rows} snippets). λ was chosen on "
            f"`movie-validation.csv` by the rule: {RULE}; it was **λ = {report.lam:g}**. Exact mode; every "
            f"setting is read through `cls`'s `great`/`other` head (the LM modules carry none), except the "
            f"reference, which has its own.")  # fmt: skip


def _grid(report: TransferReport) -> list[str]:
    grid = ["| λ | merge | control (`lam*cls`) | plain analogy's family at μ = 1 − λ |", "|---|---|---|---|"]
    for lam, (merged, control, analogy) in report.validation.items():
        grid.append(f"| {lam:g} | {merged:.4f} | {control:.4f} | {analogy:.4f} |")
    return grid


def transfer_section(reports: list[TransferReport]) -> str:
    presets = ", ".join(f"`domain-transfer-{r.pem_type}`" for r in reports)
    lines = [
        BEGIN,
        "## Domain transfer (paper Table 5)",
        "",
        "`python -m workbench zoo transfer` (this section, and the measured part of the LM modules' cards;",
        f"`zoo study` keeps it). Presets {presets}.",
        "",
        "The source classifier `cls` (`minilm-sentiment-*`) was trained on Amazon fine-food reviews; the target",
        "domain is Rotten Tomatoes movie-review snippets (VADER's human-rated set; `docs/domain-transfer-sources.md`).",
        "Two masked-LM modules of the same type, from the same seeded start, learned each domain's texts",
        "(`minilm-amazon-lm-*`, `minilm-movie-lm-*`); no target label builds the merge. The paper's analogy",
        f"λ·θ_cls,source ⊕ (1−λ)·(θ_lm,target ⊖ θ_lm,source) is `{EXPRESSION}`.",
    ]
    for report in reports:
        lines += ["", f"### {method_name(report.pem_type)}", "", protocol(report), "", results_table(report), "",
                  verdict(report), "", "Validation accuracy over the grid (`movie-validation.csv`):", "",
                  *_grid(report)]  # fmt: skip
    lines += [
        "",
        "The paper's models are T5 with constrained decoding, so its classifier and LMs share every weight;",
        "here the LM modules share the classifier's PEM targets and nothing else: the classification head",
        "comes from `cls` alone, and each LM trained a masked-LM head that is not kept.",
        "",
        f"Measured in {sum(r.seconds for r in reports):.0f} s on {machine()}.",
        END,
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def card_block(report: TransferReport) -> str:
    return (f"{protocol(report)}\n\n{results_table(report)}\n\n{verdict(report)}\n\n"
            f"Measured by `python -m workbench zoo transfer` in {report.seconds:.0f} s on {machine()}; the "
            f"validation grid is in `docs/zoo-studies.md` (Domain transfer).")  # fmt: skip


def lm_card(recipe: Recipe, train_seconds: float, loss: float, measured: str = UNMEASURED) -> str:
    """An LM module's card: its training, then the study's measured block (between markers)."""
    s = recipe.settings
    rows = len(recipe.texts())
    epochs, optimisation = s.steps * s.batch_size / rows, s.optimisation
    return f"""# {recipe.name}

A {method_name(recipe.pem_type)} module on `{recipe.base}` for {recipe.purpose}.

Trained on {ZOO_BASES[recipe.base].weights}.

## Training

| | |
|---|---|
| data | `assets/data/{recipe.data}`, its texts only ({rows} texts; labels unused) |
| objective | {OBJECTIVE} |
| module | {module_line(recipe)}, from seed {s.initialisation} (as the other LM) |
| steps | {s.steps} × batch {s.batch_size} ({epochs:.1f} epochs), max length {s.max_length} tokens, {optimisation} |
| seed | data order {s.seed} |
| final loss (mean of last 20 steps) | {loss:.4f} |
| wall time | {train_seconds:.0f} s on {machine()} |
| rebuild | `python -m workbench zoo train {recipe.name}` |

## Measured

An LM module has no accuracy of its own; the preset `domain-transfer-{recipe.pem_type}` composes it as
`{EXPRESSION}`.

{CARD_BEGIN}
{measured}
{CARD_END}
"""  # fmt: skip


SECTION, CARD = Section(BEGIN, END), Section(CARD_BEGIN, CARD_END)


def write_cards(report: TransferReport, adapter: Callable[[str], Path] = zoo_adapter_path) -> list[Path]:
    """The report's two LM modules' cards with the study's measured block."""
    cards = (adapter(name) / "README.md" for name in lm_modules(report.pem_type))
    return fill_cards(cards, CARD, card_block(report))


def run_transfer(document: str, say: Callable[[str], None] = print) -> str:
    """Measure the study once per type, fill in the LM cards, and return `document` with its section replaced."""
    reports = []
    for pem_type in PEM_TYPES:
        report = measure_transfer(pem_type, say=say)
        write_cards(report)
        say(f"{pem_type}: λ={report.lam:g}; source {report.test['source']:.4f}, merge "
            f"{report.test['composition']:.4f}, target {report.test['target']:.4f}")  # fmt: skip
        reports.append(report)
    return SECTION.replace(document, transfer_section(reports))

