"""Model cards: measured on the tiny zoo end to end, and their verdicts and machine line
computed from the numbers they print (nothing typed by hand that a rerun could contradict)."""

from dataclasses import replace

import pytest
import torch
from tiny_zoo import SENTIMENT_MAJORITY, install, tiny_recipe

from workbench.catalog.recipes import RECIPES
from workbench.eval.auto import largest_lambda_within
from workbench.eval.tasks import ClassificationTask
from workbench.studio import cards
from workbench.studio.cards import (
    LAMBDAS,
    PPL_TOLERANCE,
    ClassifierReport,
    UnlearningReport,
    classifier_card,
    machine,
    majority_rate,
    measure_classifier,
    measure_unlearning,
    split_task,
    unlearning_card,
)

TOXIC = RECIPES["smollm2-toxic-lora"]
GRID_PPL = {f"negated λ={lam}": 34.0 + lam for lam in LAMBDAS}


def unlearning_report(interval: tuple[float, float], toxic: float = 0.4, negated_rate: float = 0.0) -> UnlearningReport:
    return UnlearningReport(
        lam=0.2, ppl={"base": 33.3, "toxic": 48.6, "negated": 34.2, **GRID_PPL},
        toxicity={"base": 0.05, "toxic": toxic, "negated": 0.03}, toxic_rate={"base": 0.01, "toxic": 0.2,
        "negated": negated_rate}, difference=-0.02, interval=interval, samples=400, seconds=10.0,
    )  # fmt: skip


@pytest.mark.parametrize(("interval", "lower"), [((-0.035, -0.013), "yes"), ((0.004, 0.02), "no"),
                                                 ((-0.02, 0.01), "no")])  # fmt: skip
def test_unlearning_card_says_lower_only_when_the_interval_is_below_zero(interval, lower) -> None:
    card = unlearning_card(TOXIC, unlearning_report(interval), 597.0, 2.516)
    assert f"negated lower than base with an interval excluding zero: **{lower}**" in card
    assert f"[{interval[0]:+.4f}, {interval[1]:+.4f}]" in card


def test_unlearning_card_checks_doubling_and_the_toxic_rate() -> None:
    met = unlearning_card(TOXIC, unlearning_report((-0.03, -0.01)), 597.0, 2.516)
    assert "toxic at least doubles base toxicity: **yes**" in met and "not above base: **yes**" in met
    missed = unlearning_card(TOXIC, unlearning_report((-0.03, -0.01), toxic=0.09, negated_rate=0.02), 597.0, 2.516)
    assert "toxic at least doubles base toxicity: **no**" in missed and "not above base: **no**" in missed
    assert "(λ=0.2: 34.200, λ=0.4: 34.400, λ=0.6: 34.600, λ=0.8: 34.800, λ=1.0: 35.000); it was **λ = 0.2**" in met
    assert f"| wall time | 597 s on {machine()} |" in met
    assert "\nA LoRA module on `smollm2-135m-instruct` for the unlearning setting" in met  # as the committed card


def test_machine_names_the_cores_and_the_device(monkeypatch) -> None:
    monkeypatch.setattr(cards.os, "cpu_count", lambda: 3)
    monkeypatch.setattr(cards, "choose_device", lambda device: torch.device("cpu"))
    assert machine() == "3 CPU cores, no GPU"
    monkeypatch.setattr(cards, "choose_device", lambda device: torch.device("cuda:0"))
    monkeypatch.setattr(cards.torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    assert machine() == "3 CPU cores and the GPU NVIDIA H200 (cuda:0)"
    card = classifier_card(RECIPES["minilm-topic-lora"], ClassifierReport({"validation": 0.9, "test": 0.9},
                           {"validation": 0.25, "test": 0.25}, 3.0), 170.0, 0.2)  # fmt: skip
    assert "| wall time | 170 s on 3 CPU cores and the GPU NVIDIA H200 (cuda:0) |" in card


def test_majority_rate_is_the_most_common_labels_share() -> None:
    assert majority_rate(ClassificationTask("t", ("a", "b", "c", "d"), (1, 0, 1, 1), ("x", "y"))) == 0.75
    assert majority_rate(split_task("sentiment", "test")) == 0.658  # the committed split: 658 of 1000 `great`
    assert majority_rate(split_task("sentiment", "validation")) == 0.642


def classifier_report(validation: float, majority: float = 0.642) -> ClassifierReport:
    return ClassifierReport({"validation": validation, "test": 0.6}, {"validation": majority, "test": 0.658}, 30.0)


def test_classifier_card_computes_the_verdict_and_keeps_what_was_tried() -> None:
    red = RECIPES["minilm-sentiment-s0-red"]
    below = classifier_card(red, classifier_report(0.596), 356.0, 0.3139)
    assert ("**Note.** Below the target of 5 points above the majority rate on validation: 0.5960 against 0.6420 "
            "(-4.6 points). Tried, at lr 1e-2 for edits and head: 150 steps") in below  # fmt: skip
    assert "| validation | 0.5960 | 0.6420 | -4.6 |" in below
    assert "| steps | 600 × batch 16 (9.6 epochs of 1000 examples), max length 128 tokens, AdamW lr 0.001 |" in below
    met = classifier_card(red, classifier_report(0.7), 356.0, 0.3139)
    assert "**Note.** Meets the target of 5 points above the majority rate on validation: 0.7000 against 0.6420 " \
           "(+5.8 points). Tried," in met  # fmt: skip
    lota = classifier_card(RECIPES["minilm-topic-lota"], classifier_report(0.9, majority=0.25), 91.0, 0.5)
    assert ("| module | LoTA: 63 calibration steps of full fine-tuning, then the global top 5% of |Δ| as the "
            "mask, trained sparse from the base; LoTTO: the mask stays out of `minilm-sentiment-lota`'s |") in lota
    lora = RECIPES["minilm-sentiment-s0-lora"]
    assert "**Note.**" not in classifier_card(lora, classifier_report(0.7), 324.0, 0.3)
    plain_miss = classifier_card(lora, classifier_report(0.66), 324.0, 0.3)
    assert "(+1.8 points).\n\nCompositions" in plain_miss  # a miss is stated even where nothing was tried


def test_classifier_card_shows_accuracy_against_majority_and_any_missed_target() -> None:
    report = ClassifierReport({"validation": 0.7, "test": 0.72}, {"validation": 0.642, "test": 0.658}, 30.0)
    missed = classifier_card(RECIPES["minilm-sentiment-s0-red"], report, 100.0, 0.3)
    assert "| validation | 0.7000 | 0.6420 | +5.8 |" in missed and "| test | 0.7200 | 0.6580 | +6.2 |" in missed
    assert ("**Note.** Meets the target of 5 points above the majority rate on validation: 0.7000 against 0.6420 "
            "(+5.8 points). Tried,") in missed and "200 great, 800 other" in missed
    assert "**Note.**" not in classifier_card(RECIPES["minilm-sentiment-s0-lora"], report, 100.0, 0.3)


def test_recipes_keep_no_measured_numbers_of_their_own_module() -> None:
    """The card measures the module; a recipe's note only says what was tried before it."""
    for recipe in RECIPES.values():
        assert "Below the target" not in recipe.notes and "this module, 0." not in recipe.notes


@pytest.fixture
def tiny_zoo(monkeypatch, base_dirs, tmp_path):
    install(monkeypatch, base_dirs, tmp_path)
    return tmp_path


def test_measure_unlearning_on_the_tiny_zoo(tiny_zoo, adapters, monkeypatch) -> None:
    """Perplexity alone chooses λ, through the cards' rule. The tiny model's perplexity barely moves
    with λ, so the rule is handed a bound only the grid's lowest perplexity meets: the λ used for
    the negated row must then be that one (the rule itself is tested with the sweeps)."""
    seen = {}

    def rule(frame, parameter, **bound):
        seen.update(frame=frame, parameter=parameter, bound=bound)
        base = float(frame.loc[frame["label"] == "base", "perplexity"].iloc[0])
        tightest = float(frame.loc[frame["kind"] == "point", "perplexity"].min()) / base
        return largest_lambda_within(frame, parameter, ppl_ratio=tightest * (1 + 1e-12))

    monkeypatch.setattr(cards, "largest_lambda_within", rule)
    recipe = tiny_recipe(TOXIC)
    report = measure_unlearning(recipe, adapters["llama"]["lora_a"], samples=3)
    grid = {lam: report.ppl[f"negated λ={lam}"] for lam in LAMBDAS}
    assert seen["parameter"] == "lam" and seen["bound"] == {"ppl_ratio": PPL_TOLERANCE}
    points = seen["frame"][seen["frame"]["kind"] == "point"]
    assert dict(zip(points["lam"], points["perplexity"], strict=True)) == grid
    assert seen["frame"].loc[seen["frame"]["label"] == "base", "perplexity"].tolist() == [report.ppl["base"]]
    assert report.lam == min(grid, key=grid.get)
    assert report.ppl["negated"] == pytest.approx(grid[report.lam])
    assert report.ppl["toxic"] != pytest.approx(report.ppl["base"]) and report.samples == 3
    assert all(0 <= report.toxicity[k] <= 1 and 0 <= report.toxic_rate[k] <= 1 for k in ("base", "toxic", "negated"))
    assert report.difference == pytest.approx(report.toxicity["negated"] - report.toxicity["base"])
    low, high = report.interval
    assert low <= high and report.seconds > 0
    card = unlearning_card(recipe, report, 12.0, 1.5)
    assert f"it was **λ = {report.lam}**" in card and "(3 fortunes rated above 0.8" in card
    base = report.ppl["base"]
    assert f"| base | {report.toxicity['base']:.4f} | {report.toxic_rate['base']:.4f} | {base:.3f} |" in card


def test_measure_classifier_on_the_tiny_zoo(tiny_zoo) -> None:
    from workbench.studio.training import recipe_labels, train

    recipe = tiny_recipe(RECIPES["minilm-sentiment-s0-lora"])
    folder = tiny_zoo / "module"
    train(recipe.pem_type, tiny_zoo / "minilm", recipe.texts(), recipe.settings, folder, labels=recipe_labels(recipe))
    report = measure_classifier(recipe, folder)
    assert report.majority == {"validation": SENTIMENT_MAJORITY, "test": SENTIMENT_MAJORITY}
    assert all((8 * value).is_integer() for value in report.accuracy.values())  # 8 examples per split
    assert report.accuracy["validation"] == report.accuracy["test"]  # the tiny splits hold the same rows
    card = classifier_card(replace(recipe, notes="", settings=replace(recipe.settings, steps=4)), report, 2.0, 0.7)
    assert "(3 great, 5 other)" in card and "| steps | 4 × batch 2 (1.0 epochs of 8 examples)," in card
