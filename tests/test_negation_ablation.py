"""The negation ablation's measurement on the tiny LLaMA, and its section of the studies file."""

from __future__ import annotations

import pytest

from workbench.studio.ablation import BEGIN, END, SECTION, ablation_section, measure_ablation


@pytest.fixture(scope="module")
def rows(base_dirs, adapters):
    paths = {"smollm2-toxic-lora": adapters["llama"]["lora_a"], "smollm2-toxic-ia3": adapters["llama"]["ia3_a"]}
    return measure_ablation(samples=3, say=lambda _: None, adapter=paths.__getitem__, base=str(base_dirs["llama"]))


def test_naive_negation_of_a_lora_measures_as_the_module_itself(rows) -> None:
    lora = {row.setting: row for row in rows if row.pem == "lora"}
    assert lora["naive −1·toxic (ablation)"].perplexity == pytest.approx(lora["toxic"].perplexity, rel=1e-5)
    assert lora["naive −1·toxic (ablation)"].toxicity == pytest.approx(lora["toxic"].toxicity)
    assert lora["⊖ −1·toxic"].perplexity != pytest.approx(lora["toxic"].perplexity, rel=1e-5)


def test_each_type_has_its_module_then_both_negations_at_each_lambda(rows) -> None:
    assert [row.pem for row in rows][:1] == ["base"]
    for pem in ("lora", "ia3"):
        assert [row.setting for row in rows if row.pem == pem] == [
            "toxic", "⊖ −0.2·toxic", "naive −0.2·toxic (ablation)", "⊖ −1·toxic", "naive −1·toxic (ablation)",
        ]  # fmt: skip
    ia3 = {row.setting: row for row in rows if row.pem == "ia3"}
    assert ia3["naive −1·toxic (ablation)"].perplexity != pytest.approx(ia3["toxic"].perplexity, rel=1e-3)
    assert all(row.low <= row.toxicity <= row.high for row in rows)


def test_the_section_replaces_its_old_self_and_survives_a_study_rewrite(rows) -> None:
    section = ablation_section(rows, 3, 1.0)
    assert section.startswith(BEGIN) and section.rstrip().endswith(END) and "(IA)³ | naive −1·toxic" in section
    document = SECTION.replace("# Studies\n\nold text\n", section)
    assert document.startswith("# Studies\n\nold text\n\n" + BEGIN)
    newer = section.replace("Measured in 1 s", "Measured in 2 s")
    assert SECTION.replace(document, newer).count(BEGIN) == 1 and "in 2 s" in SECTION.replace(document, newer)
    study = "# Studies, rewritten\n"
    assert SECTION.kept(document) == section
    assert SECTION.replace(study, SECTION.kept(document)) == "# Studies, rewritten\n\n" + section


def test_an_ablation_preset_brings_its_mode_and_does_not_leave_it_behind() -> None:
    from workbench.catalog.presets import PRESETS
    from workbench.ui.controller import preset_mode, toxicity_needs

    assert preset_mode(PRESETS["unlearning-ablation-lora"], "exact") == "naive"
    assert preset_mode(PRESETS["unlearning-lora"], "naive") == "exact"  # naive belongs to its ablation presets
    assert preset_mode(PRESETS["unlearning-lora"], "paper") == "paper"  # the mode on screen carries over
    assert "ablation" not in toxicity_needs()
