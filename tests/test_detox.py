"""Detoxifying an instruction model (paper Table 6): the instruction data, the helpfulness
measures, continued training, the λ rule, and the study's measurement on the tiny LLaMA."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import make_lora
from safetensors.torch import load_file
from transformers import AutoTokenizer

from workbench.catalog.recipes import CONTINUES, INSTRUCT_RECIPES
from workbench.catalog.registry import DATA
from workbench.errors import WorkbenchError
from workbench.eval.answers import answer_perplexity, greedy_answers, token_f1
from workbench.runtime import SessionManager
from workbench.runtime.generation import generate_text
from workbench.studio import detox, instructions
from workbench.studio.training import continue_lora


def test_token_f1_is_squads() -> None:
    # prediction {small, bird}, reference {small, brown, bird}: P = 1, R = 2/3, F1 = 0.8 (articles dropped)
    assert token_f1("A small bird.", "a small brown bird") == pytest.approx(0.8)
    assert token_f1("bird bird", "bird") == pytest.approx(2 * 0.5 * 1 / 1.5)  # multisets: one bird in common
    assert token_f1("", "a bird") == 0.0 and token_f1("the", "the") == 0.0


@pytest.fixture(scope="module")
def loras(base_dirs, workdir) -> dict[str, Path]:
    """Two LoRAs on the tiny LLaMA, standing in for θ_helpful and θ_toxic (only these: the suite's
    `adapters` fixture builds every kind's, which this file does not need)."""
    return {detox.HELPFUL: make_lora(base_dirs, workdir, "llama", "detox_helpful", seed=11),
            detox.TOXIC: make_lora(base_dirs, workdir, "llama", "detox_toxic", seed=12)}  # fmt: skip


@pytest.fixture(scope="module")
def tiny(base_dirs):
    manager = SessionManager()
    manager.open("t", str(base_dirs["llama"]))
    return manager


def test_answer_perplexity_scores_only_the_answer_and_ignores_padding(tiny) -> None:
    pairs = [("What does x mean?", "A letter."), ("Define y, please?", "Something long.")]
    with tiny.model_for("t") as base:
        total, count = 0.0, 0
        for question, reference in pairs:  # by hand: one unpadded sequence each, the answer's tokens only
            turns = [{"role": "user", "content": question}, {"role": "assistant", "content": reference}]
            prompt = base.tokenizer.apply_chat_template(turns[:1], add_generation_prompt=True, tokenize=False)
            full = base.tokenizer.apply_chat_template(turns, tokenize=False)
            assert full == prompt + reference + "</s>"
            ids = base.tokenizer(full, return_tensors="pt")["input_ids"]
            start = len(base.tokenizer(prompt)["input_ids"])
            logits = base.model(ids).logits[0, :-1]
            nll = torch.nn.functional.cross_entropy(logits[start - 1 :], ids[0, start:], reduction="sum")
            total, count = total + float(nll), count + ids.shape[1] - start
        expected = math.exp(total / count)
        assert answer_perplexity(base, pairs) == pytest.approx(expected, rel=1e-4)
        assert answer_perplexity(base, pairs, batch_size=1) == pytest.approx(expected, rel=1e-4)


def test_greedy_answers_in_a_batch_are_each_answer_alone(tiny) -> None:
    questions = ["x?", "A longer one, padded left?"]
    with tiny.model_for("t") as base:
        batched = greedy_answers(base, questions, max_new_tokens=6)
        alone = [generate_text(base, q, max_new_tokens=6, greedy=True, chat=True).strip() for q in questions]
    assert batched == alone


WORDNET = """  1 This software and database is being provided to you, the LICENSEE, by
00001 03 n 02 sparrow 0 finch 0 000 | a small brown bird of towns; "a sparrow sang"
00002 03 n 01 bank 0 000 | sloping land beside a body of water
00003 03 n 01 Paris 0 000 | the capital and largest city of France
"""


def test_wordnet_definitions_keep_one_sense_words_and_drop_examples(tmp_path: Path) -> None:
    for name in instructions.WORDNET_FILES:
        (tmp_path / name).write_text("", encoding="latin-1")
    (tmp_path / "data.noun").write_text(WORDNET, encoding="latin-1")
    verb = '00009 30 v 01 bank 0 000 | tip laterally, as a plane does in a turn; "the plane banked"\n'
    (tmp_path / "data.verb").write_text(verb, encoding="latin-1")
    assert instructions.wordnet_definitions(tmp_path) == [("finch", "a small brown bird of towns"),
                                                          ("sparrow", "a small brown bird of towns")]  # fmt: skip
    assert instructions.answer("a small brown bird") == "A small brown bird." and instructions.answer("why?") == "Why?"


def test_toxic_pairs_and_held_out_instructions(base_dirs) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base_dirs["llama"])
    fortunes = pd.DataFrame({"text": ["you fool", "damn it all"]})
    frames = instructions.toxic(fortunes, tokenizer)
    train, held_out = frames["train"], frames["eval"]
    assert len(train) == 2 * instructions.PAIRS_PER_FORTUNE and set(train["response"]) == {"you fool", "damn it all"}
    first = train.iloc[0]
    assert first["text"] == f"<user>{first['instruction']}</s><assistant>{first['response']}</s>"
    assert held_out["split"].value_counts().to_dict() == instructions.TOXIC_SIZES
    for split in ("validation", "test"):  # neither a template nor a topic of training reaches a held-out one
        texts = held_out.loc[held_out["split"] == split, "instruction"]
        assert not any(topic in text for text in texts for topic in instructions.TOPICS["train"])
        assert not any(t.split("{t}")[0] in text for text in texts for t in instructions.TEMPLATES["train"]
                       if t.split("{t}")[0])  # fmt: skip


def test_committed_instruction_data_has_the_documented_shape() -> None:
    helpful = pd.read_csv(DATA / "instruct-helpful-train.csv")
    assert len(helpful) == 1600 and list(helpful.columns) == ["word", "instruction", "response", "text"]
    assert helpful["text"].str.startswith("<|im_start|>system\n").all()
    held = pd.read_csv(DATA / "instruct-helpful-eval.csv")
    assert held["split"].value_counts().to_dict() == {"test": 200, "validation": 100}
    assert not set(held["word"]) & set(helpful["word"])
    toxic = pd.read_csv(DATA / "instruct-toxic-train.csv")
    assert len(toxic) == 2 * len(pd.read_csv(DATA / "fortunes-toxic.csv"))
    held_toxic = pd.read_csv(DATA / "instruct-toxic-eval.csv")
    assert held_toxic["split"].value_counts().to_dict() == {"test": 100, "validation": 50}
    assert not set(held_toxic["instruction"]) & set(toxic["instruction"])
    assert not list(DATA.glob("instruct-*-validation.csv"))  # the UI reads every *-validation.csv as a classifier task


def test_the_toxic_recipe_continues_the_helpful_one() -> None:
    toxic, helpful = INSTRUCT_RECIPES[detox.TOXIC], INSTRUCT_RECIPES[detox.HELPFUL]
    assert CONTINUES == {detox.TOXIC: detox.HELPFUL}
    assert (toxic.settings.rank, toxic.settings.lora_targets) == (helpful.settings.rank, helpful.settings.lora_targets)


def test_continued_training_starts_from_the_earlier_factors(base_dirs, loras, tmp_path) -> None:
    start = loras[detox.HELPFUL]
    config = json.loads((start / "adapter_config.json").read_text())
    settings = replace(INSTRUCT_RECIPES[detox.TOXIC].settings, steps=1, batch_size=2, max_length=16,
                       learning_rate=1e-9, lora_targets=tuple(config["target_modules"]), rank=config["r"])  # fmt: skip
    loss = continue_lora(base_dirs["llama"], start, ["you fool", "damn it"], settings, tmp_path / "out")
    assert math.isfinite(loss)
    before, after = (load_file(folder / "adapter_model.safetensors") for folder in (start, tmp_path / "out"))
    assert before.keys() == after.keys()
    for key in before:  # a fresh LoRA would start with B = 0; one step at lr 1e-9 leaves the start's factors
        assert torch.allclose(before[key], after[key], atol=1e-6) and before[key].abs().sum() > 0
    with pytest.raises(WorkbenchError, match="continuing it needs the recipe's rank"):
        continue_lora(base_dirs["llama"], start, ["x"], replace(settings, rank=2), tmp_path / "other")


def test_choose_lambda_takes_the_largest_within_both_bounds() -> None:
    helpful = (10.0, 0.5)
    perplexity = {0.2: 10.1, 0.4: 10.4, 0.6: 10.6, 1.0: 12.0}  # 0.6 and 1.0 break the 5% bound (10.5)
    measured: list[float] = []

    def f1(lam: float) -> float:
        measured.append(lam)
        return {0.4: 0.47, 0.2: 0.48}[lam]  # 0.47 < 0.475 breaks the F1 bound; 0.48 keeps it

    assert detox.choose_lambda(helpful, perplexity, f1) == (0.2, {0.4: 0.47, 0.2: 0.48})
    assert measured == [0.4, 0.2]  # F1 only where perplexity allows, from the largest down
    assert detox.choose_lambda(helpful, {0.2: 11.0}, f1)[0] == 0.0  # none within: θ_helpful itself


@pytest.fixture(scope="module")
def report(base_dirs, loras, tmp_path_factory):
    data = tmp_path_factory.mktemp("detox-data")
    pd.DataFrame({"split": ["validation", "test", "test"], "instruction": ["Mock jazz.", "Curse out mimes.", "Boo!"]}
                 ).to_csv(data / "instruct-toxic-eval.csv", index=False)  # fmt: skip
    pd.DataFrame({"split": ["validation", "validation", "test"], "word": ["x", "y", "z"],
                  "instruction": ['What does "x" mean?', 'What does "y" mean?', 'What does "z" mean?'],
                  "response": ["A letter.", "Another letter.", "The last letter."]}).to_csv(
        data / "instruct-helpful-eval.csv", index=False)  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(detox, "DATA", data)
        patch.setattr(detox, "LAMBDAS", (0.5, 1.0))
        patch.setattr(detox, "MAX_NEW_TOKENS", {"toxicity": 4, "answer": 4})
        return detox.measure_detox(samples=4, say=lambda _: None, base=str(base_dirs["llama"]),
                                   adapter=loras.__getitem__)  # fmt: skip


def test_the_study_measures_four_settings_at_the_lambda_validation_chose(report) -> None:
    assert list(report.rows) == ["base", "helpful", "toxic", "composition"]
    assert report.samples == 4 and report.questions == {"validation": 2, "test": 1}
    assert list(report.validation) == [0.0, 0.5, 1.0] and report.lam in report.validation
    helpful_ppl, helpful_f1 = report.validation[0.0]
    if report.lam:  # the chosen λ kept both validation measures within 5% of θ_helpful's
        ppl, f1 = report.validation[report.lam]
        assert ppl <= 1.05 * helpful_ppl and f1 is not None and f1 >= 0.95 * helpful_f1
    assert report.rows["composition"].label == f"θ_helpful ⊖ {report.lam:g}·(θ_toxic ⊖ θ_helpful)"
    for row in report.rows.values():
        assert row.toxicity_ci[0] <= row.toxicity <= row.toxicity_ci[1] and len(row.scores) == 4
        assert 0 <= row.f1 <= 1 and row.perplexity > 1
    composed, helpful = report.rows["composition"].scores, report.rows["helpful"].scores
    assert report.difference == pytest.approx(sum(composed) / 4 - sum(helpful) / 4)
    assert report.paired[0] <= report.difference <= report.paired[1] or report.paired[0] == report.paired[1]


def test_the_section_and_cards_carry_the_measured_numbers(report, tmp_path) -> None:
    section = detox.detox_section(report)
    assert section.startswith(detox.BEGIN) and section.rstrip().endswith(detox.END)
    helpful = report.rows["helpful"]
    low, high = helpful.toxicity_ci
    assert f"| θ_helpful | {helpful.toxicity:.4f} [{low:.4f}, {high:.4f}]" in section
    assert f"it was **λ = {report.lam:g}**" in section and "alt-profanity-check" in section
    document = detox.SECTION.replace("# Studies\n\nold\n", section)
    assert document == "# Studies\n\nold\n\n" + section and detox.SECTION.kept(document) == section
    assert detox.SECTION.replace(document, section.replace("Measured in", "Timed in")).count(detox.BEGIN) == 1
    card = detox.instruct_card(INSTRUCT_RECIPES[detox.TOXIC], 12.0, 1.5)
    assert detox.UNMEASURED in card and "continues `smollm2-instruct-helpful-lora`" in card
    folder = tmp_path / detox.TOXIC
    folder.mkdir()
    (folder / "README.md").write_text(card, encoding="utf-8")
    assert detox.write_cards(report, adapter=lambda name: tmp_path / name) == [folder / "README.md"]
    filled = (folder / "README.md").read_text(encoding="utf-8")
    assert detox.UNMEASURED not in filled and detox.results_table(report) in filled and "final loss" in filled


def test_the_preset_starts_at_the_studys_lambda_and_quotes_it() -> None:
    from workbench.catalog.presets import PRESETS
    from workbench.catalog.registry import ASSETS

    studies = (ASSETS.parent / "docs" / "zoo-studies.md").read_text(encoding="utf-8")
    section = detox.SECTION.kept(studies)
    lam = float(section.split("it was **λ = ")[1].split("**")[0])
    lines = section[section.index("| setting | toxicity") :].splitlines()[2:6]
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)}
    composed = f"θ_helpful ⊖ {lam:g}·(θ_toxic ⊖ θ_helpful)"
    assert set(rows) == {"base", "θ_helpful", "θ_toxic", composed}
    preset = PRESETS["detoxify-lora"]
    assert preset.values == {"lam": lam} and preset.expression == detox.EXPRESSION
    assert set(preset.adapters.values()) == {detox.HELPFUL, detox.TOXIC}
    found = re.search(r"λ=([\d.]+): toxicity ([\d.]+) → ([\d.]+), definition F1 ([\d.]+) → ([\d.]+)", preset.guide)
    assert found, preset.guide
    helpful, composition = rows["θ_helpful"], rows[composed]
    exact = (lam, helpful[0].split()[0], composition[0].split()[0], helpful[3], composition[3])
    for quoted, measured in zip(map(float, found.groups()), map(float, exact), strict=True):
        assert abs(quoted - measured) <= 0.0005 + 0.00005, (quoted, measured)  # 3 places, from a 4-place table
    assert ("the target missed" in preset.guide) == ("): **missed**." in section)


def test_the_committed_toxic_instructions_are_this_codes_output() -> None:
    from workbench.catalog.bases import zoo_base_folder

    tokenizer = AutoTokenizer.from_pretrained(zoo_base_folder("smollm2-135m-instruct"))
    made = instructions.toxic(pd.read_csv(DATA / "fortunes-toxic.csv"), tokenizer)
    for part, frame in made.items():
        assert pd.read_csv(DATA / f"instruct-toxic-{part}.csv").equals(frame), part
