"""Numbers copied from the published artefacts are the artefacts' numbers: the README's zoo
tables and the presets' starting λ and guides, against the model cards
(`assets/zoo/adapters/*/README.md`) and `docs/zoo-studies.md`.

The cards and the studies are rewritten only by `zoo train` and `zoo study`; whatever quotes
them is typed, so these tests are what keeps a quote from outliving a retrain.
"""

import re
from pathlib import Path

import pytest

from workbench.catalog.presets import PRESETS
from workbench.catalog.recipes import RECIPES
from workbench.catalog.registry import ADAPTERS, ASSETS, zoo_adapters

ROOT = ASSETS.parent
TYPES = {"lora": "LoRA", "ia3": "(IA)³", "red": "RED", "lota": "LoTA"}


def table(text: str, header: str) -> list[list[str]]:
    """The cells of each row of the markdown table whose header line starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:  # past the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def card(name: str) -> str:
    return (ADAPTERS / name / "README.md").read_text(encoding="utf-8")


def number(text: str) -> float:
    return float(text.replace("−", "-"))  # the README writes a minus sign, the cards a hyphen


def unlearning_card(name: str) -> dict[str, object]:
    text = card(name)
    rows = {cells[0]: [float(c) for c in cells[1:]] for cells in table(text, "| setting | mean toxicity")}
    lam = re.search(r"it was \*\*λ = ([\d.]+)\*\*", text)
    interval = re.search(r"interval\s+\[([-+\d.]+), ([-+\d.]+)\]", text)
    assert lam and interval, name
    return {"rows": rows, "lam": float(lam.group(1)), "interval": tuple(map(float, interval.groups()))}


def classifier_rows(name: str) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for cells in table(card(name), "| split | accuracy")}


README = (ROOT / "README.md").read_text(encoding="utf-8")
STUDIES = (ROOT / "docs" / "zoo-studies.md").read_text(encoding="utf-8")
TOXIC = [name for name in RECIPES if name.startswith("smollm2-toxic")]
CLASSIFIERS = [name for name, recipe in RECIPES.items() if recipe.task]


def close(quoted: float, exact: float, decimals: int) -> bool:
    """`quoted` is `exact` rounded to `decimals` places (either way at a tie)."""
    return abs(quoted - exact) <= 0.5 * 10**-decimals + 1e-9


def test_the_readme_tables_list_every_toxic_and_classifier_module_once() -> None:
    toxic = [cells[0].strip("`") for cells in table(README, "| module | mean toxicity")]
    classifiers = [cells[0].strip("`") for cells in table(README, "| module | data | validation")]
    assert toxic == TOXIC and sorted(classifiers) == sorted(CLASSIFIERS) and len(set(classifiers)) == len(classifiers)
    assert set(toxic + classifiers) <= set(zoo_adapters())  # each has its folder, with the card read below


@pytest.mark.parametrize("name", TOXIC)
def test_readme_toxicity_row_is_its_cards(name) -> None:
    (cells,) = [c for c in table(README, "| module | mean toxicity") if c[0] == f"`{name}`"]
    found = re.fullmatch(r"([\d.]+) → ([\d.]+) → ([\d.]+) \(λ=([\d.]+)\)", cells[1])
    assert found, cells[1]
    base, toxic, negated, lam = map(float, found.groups())
    measured = unlearning_card(name)
    rows = measured["rows"]
    assert lam == measured["lam"]
    for quoted, setting in ((base, "base"), (toxic, "toxic"), (negated, "negated")):
        assert close(quoted, rows[setting][0], 3), (name, setting)
    low, high = (number(part) for part in cells[2].strip("[]").split(", "))
    assert close(low, measured["interval"][0], 3) and close(high, measured["interval"][1], 3)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_readme_classifier_row_is_its_cards(name) -> None:
    (cells,) = [c for c in table(README, "| module | data | validation") if c[0] == f"`{name}`"]
    assert cells[1] == f"`{RECIPES[name].data}`" and f"`assets/data/{RECIPES[name].data}`" in card(name)
    rows = classifier_rows(name)
    for quoted, split in zip(cells[2:], ("validation", "test"), strict=True):
        accuracy, _, points = rows[split]
        assert quoted == f"{accuracy} ({points})", (name, split)


def test_readme_majority_rates_are_the_cards() -> None:
    found = re.search(r"sentiment ([\d.]+) validation / ([\d.]+) test, topic ([\d.]+),\s+movie ([\d.]+) "
                      r"validation / ([\d.]+) test\)", README)  # fmt: skip
    assert found
    names = ("sentiment validation", "sentiment test", "topic validation", "movie validation", "movie test")
    quoted = dict(zip(names, map(float, found.groups()), strict=True))
    for name in CLASSIFIERS:
        task = RECIPES[name].task
        for split, (_, majority, _) in classifier_rows(name).items():
            key = f"{task} {split}" if f"{task} {split}" in quoted else f"{task} validation"
            assert close(quoted[key], float(majority), 3), (name, split)


@pytest.mark.parametrize("pem", ["lora", "ia3", "red"])
def test_unlearning_presets_start_at_their_cards_lambda_and_quote_it(pem) -> None:
    preset = PRESETS[f"unlearning-{pem}"]
    measured = unlearning_card(preset.adapters["toxic"])
    assert preset.values == {"lam": measured["lam"]}
    rows = measured["rows"]
    found = re.search(r"ours at λ=([\d.]+): toxicity ([\d.]+) → ([\d.]+), perplexity ([\d.]+) → ([\d.]+)", preset.guide)
    assert found, preset.guide
    lam, base_tox, negated_tox, base_ppl, negated_ppl = map(float, found.groups())
    assert lam == measured["lam"]
    assert close(base_tox, rows["base"][0], 3) and close(negated_tox, rows["negated"][0], 3)
    assert close(base_ppl, rows["base"][2], 2) and close(negated_ppl, rows["negated"][2], 2)


def study_rows(header: str) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for cells in table(STUDIES, header)}


@pytest.mark.parametrize("pem", TYPES)
def test_multitask_presets_start_at_the_studys_lambda_and_quote_it(pem) -> None:
    preset = PRESETS[f"multi-task-{pem}"]
    lam, _, _, average, sentiment_alone, topic_alone, _ = study_rows("| type | λ | sentiment")[TYPES[pem]]
    assert preset.values == {"lam": float(lam)}
    found = re.search(r"merged ([\d.]+), best alone ([\d.]+)\.", preset.guide)
    assert found, preset.guide
    merged, alone = map(float, found.groups())
    assert close(merged, float(average), 3) and close(alone, max(float(sentiment_alone), float(topic_alone)), 3)


@pytest.mark.parametrize("pem", TYPES)
def test_generalization_presets_quote_the_study(pem) -> None:
    preset = PRESETS[f"distribution-generalization-{pem}"]
    rows = [cells for cells in table(STUDIES, "| type | pair |") if cells[:2] == [TYPES[pem], "seed 0"]]
    ((_, _, s0, s1, merged, *_),) = rows
    assert preset.values == {"lam": 0.5}  # the study merges at λ = 0.5
    found = re.search(r"s0 ([\d.]+), s1 ([\d.]+), λ=0.5 ([\d.]+)\.", preset.guide)
    assert found, preset.guide
    for quoted, exact in zip(map(float, found.groups()), (s0, s1, merged), strict=True):
        assert close(quoted, float(exact), 3), (pem, quoted, exact)
    above = float(merged) > max(float(s0), float(s1))
    assert ("Look for the curve's middle above both ends" in preset.guide) == above, preset.guide


def test_the_parsers_read_what_the_cards_say(tmp_path: Path) -> None:
    """Checks on the checks: a card's numbers as printed, and a table that ends where it should."""
    measured = unlearning_card("smollm2-toxic-lora")
    assert measured["lam"] == 0.2 and measured["interval"] == (-0.0351, -0.0134)
    assert measured["rows"]["negated"] == [0.0313, 0.0, 34.251]
    assert classifier_rows("minilm-sentiment-s0-red")["validation"] == ["0.7020", "0.6420", "+6.0"]
    assert table("| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |", "| a |") == [["1", "2"]]
    assert number("−0.035") == -0.035 and close(0.035, 0.0351, 3) and not close(0.034, 0.0351, 3)
