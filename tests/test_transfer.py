"""Domain transfer (paper Table 5): the masked-LM trainer, the target domain's data, and the
study run end to end on the tiny zoo."""

from __future__ import annotations

import io
import tarfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from tiny_zoo import MOVIE, SENTIMENT, encoder, install, tiny_recipe

from workbench.catalog.recipes import RECIPES, TRANSFER_RECIPES
from workbench.catalog.training_settings import Labels, TrainSettings
from workbench.errors import WorkbenchError
from workbench.modules import LoraModule, load_module
from workbench.studio import extract, transfer
from workbench.studio.training import batches, is_masked_lm, method_name, train

SETTINGS = TrainSettings(steps=3, learning_rate=1e-2, batch_size=2, max_length=16, lora_targets=("query", "value"))


def test_the_study_measures_exactly_the_transfer_recipes() -> None:
    lms = [name for pem in transfer.PEM_TYPES for name in transfer.lm_modules(pem)]
    assert {*lms, *(transfer.modules(pem)["target"] for pem in transfer.PEM_TYPES)} == set(TRANSFER_RECIPES)
    for pem in transfer.PEM_TYPES:
        names = transfer.modules(pem)
        assert RECIPES[names["cls"]].task == "sentiment" and RECIPES[names["target"]].task == "movie"
        source, target = (TRANSFER_RECIPES[name] for name in transfer.lm_modules(pem))
        # the two LMs differ only in their texts, so their difference is the domain
        assert source.settings == target.settings and source.task is target.task is None
        assert {recipe.pem_type for recipe in (source, target, RECIPES[names["cls"]])} == {pem}
        assert RECIPES[names["cls"]].settings.lora_targets == source.settings.lora_targets
        assert RECIPES[names["cls"]].settings.ia3_targets == source.settings.ia3_targets


def test_an_encoder_without_labels_learns_a_masked_lm(base_dirs, tmp_path) -> None:
    folder = encoder(base_dirs, tmp_path / "encoder")
    assert is_masked_lm(folder, None) and not is_masked_lm(folder, Labels([0], ("a",)))
    assert not is_masked_lm(base_dirs["llama"], None)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = next(batches(tokenizer, ["the cat sat on the mat"] * 8, SETTINGS, masked=True))
    predicted = batch["labels"] != -100
    assert 0 < predicted.sum() < predicted.numel()  # some tokens are predicted, not all
    masked_now = batch["input_ids"] == tokenizer.mask_token_id
    assert masked_now.any() and not (masked_now & ~predicted).any()  # every [MASK] is a token to predict
    again = next(batches(tokenizer, ["the cat sat on the mat"] * 8, SETTINGS, masked=True))
    assert torch.equal(again["input_ids"], batch["input_ids"])  # seeded


def test_masked_lm_training_keeps_only_the_lora(base_dirs, tmp_path) -> None:
    folder = encoder(base_dirs, tmp_path / "encoder")
    module, loss = train("lora", folder, [text for text, _ in SENTIMENT], SETTINGS, tmp_path / "lm")
    assert isinstance(module, LoraModule) and module.head is None and loss > 0 and module.delta_norm > 0
    saved = load_file(str(tmp_path / "lm" / "adapter_model.safetensors"))
    assert saved and all("lora_" in name for name in saved)  # the masked-LM head trained beside it, not kept
    twin, _ = train("lora", folder, [text for text, _ in MOVIE], SETTINGS, tmp_path / "lm2")
    other = load_file(str(tmp_path / "lm2" / "adapter_model.safetensors"))
    assert twin.delta_norm > 0 and any(not torch.equal(saved[name], other[name]) for name in saved)


def _sdist(path: Path, lines: list[str]) -> Path:
    """A stand-in for the vaderSentiment sdist: the ground-truth file inside the inner archive."""

    def add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))

    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as archive:
        add(archive, extract.MOVIE_FILE, "\r\n".join(lines).encode("utf-8"))
    with tarfile.open(path, "w:gz") as archive:
        add(archive, "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz", inner.getvalue())
    return path


def test_movie_reviews_drop_neutral_ratings_and_repeats(tmp_path, monkeypatch) -> None:
    lines = ["1\t2.3\tA  gorgeous film.", "2\t-0.6\tToo tepid.", "3\t0.0\tA film.", "4\t1.0\tA  gorgeous film.",
             "5\t-3.1\tDreadful,\tdull."]  # fmt: skip
    monkeypatch.setattr(extract, "MOVIE_SIZES", {"train": 1, "validation": 1, "test": 1})
    splits = extract.movie_reviews(_sdist(tmp_path / "vader.tar.gz", lines))
    rows = pd.concat(splits.values())
    assert sorted(rows["text"]) == ["A gorgeous film.", "Dreadful, dull.", "Too tepid."]  # 0.0 and the repeat gone
    assert dict(zip(rows["text"], rows["label"], strict=True)) == {
        "A gorgeous film.": "great", "Too tepid.": "other", "Dreadful, dull.": "other"}  # fmt: skip
    assert [len(frame) for frame in splits.values()] == [1, 1, 1]


def test_an_sdist_with_another_hash_is_refused(tmp_path) -> None:
    with pytest.raises(WorkbenchError, match="has sha256 .*, not vaderSentiment-3.3.2.tar.gz's"):
        extract.vader_sdist(_sdist(tmp_path / "vader.tar.gz", ["1\t1.0\tfine"]))


def test_choose_lambda_takes_the_best_and_breaks_ties_towards_the_source() -> None:
    assert transfer.choose_lambda({0.5: (0.70, 0.6, 0.9), 0.8: (0.72, 0.7, 0.5), 1.0: (0.71, 0.71, 0.71)}) == 0.8
    assert transfer.choose_lambda({0.5: (0.72, 0.6, 0.5), 0.8: (0.72, 0.7, 0.5), 1.0: (0.71, 0.71, 0.71)}) == 0.8


@pytest.fixture(scope="module", params=transfer.PEM_TYPES)
def report(base_dirs, tmp_path_factory, request):
    pem = request.param
    root = tmp_path_factory.mktemp(f"transfer-{pem}")
    with pytest.MonkeyPatch.context() as patch:
        install(patch, base_dirs, root)
        folder = encoder(base_dirs, root / "minilm")
        names, made = transfer.modules(pem), {}
        for name, rows in ((names["cls"], SENTIMENT), (names["target"], MOVIE)):
            words = ("great", "other")
            labels = Labels([words.index(label) for _, label in rows], words)
            made[name] = root / name
            train(pem, folder, [t for t, _ in rows], tiny_recipe(RECIPES[name]).settings, made[name], labels=labels)
        for name, rows in ((names["lm_source"], SENTIMENT), (names["lm_target"], MOVIE)):
            made[name] = root / name
            settings = replace(SETTINGS, ia3_targets=("key", "value", "output.dense"),
                               ia3_feedforward=("output.dense",))  # fmt: skip
            train(pem, folder, [t for t, _ in rows], settings, made[name])
        patch.setattr(transfer, "LAMBDAS", (0.5, 1.0))
        return transfer.measure_transfer(pem, say=lambda _: None, adapter=made.__getitem__, base=str(folder)), made


def test_the_study_reads_four_settings_at_the_lambda_validation_chose(report) -> None:
    measured, made = report
    assert {measured.pem_type} == {load_module(path).pem_type for path in made.values()}
    assert list(measured.validation) == [0.5, 1.0] and measured.lam == transfer.choose_lambda(measured.validation)
    assert len(set(measured.validation[1.0])) == 1  # λ = 1 (μ = 0): merge, control and analogy are all `cls`
    assert set(measured.test) == {"source", "composition", "control", "analogy", "target"}
    assert measured.rows == len(MOVIE)
    assert all(0 <= value <= 1 for value in measured.test.values())
    assert measured.difference == pytest.approx(measured.test["composition"] - measured.test["source"])
    low, high = measured.paired
    assert low <= measured.difference <= high
    assert measured.majority == pytest.approx(0.5)


def test_the_section_and_cards_carry_the_measured_numbers(report, tmp_path) -> None:
    measured, _ = report
    section = transfer.transfer_section([measured])
    assert section.startswith(transfer.BEGIN) and section.rstrip().endswith(transfer.END)
    assert f"it was **λ = {measured.lam:g}**" in section and f"{measured.test['target']:.4f}" in section
    assert f"### {method_name(measured.pem_type)}" in section and f"domain-transfer-{measured.pem_type}" in section
    recipe = TRANSFER_RECIPES[transfer.lm_modules(measured.pem_type)[1]]
    folder = tmp_path / recipe.name
    folder.mkdir()
    card = transfer.lm_card(recipe, 12.0, 3.5)
    assert transfer.UNMEASURED in card and "masked LM" in card and f"A {method_name(recipe.pem_type)} module" in card
    (folder / "README.md").write_text(card, encoding="utf-8")
    assert transfer.write_cards(measured, adapter=lambda name: tmp_path / name) == [folder / "README.md"]
    filled = (folder / "README.md").read_text(encoding="utf-8")
    assert transfer.UNMEASURED not in filled and transfer.results_table(measured) in filled and "final loss" in filled


@pytest.mark.parametrize("pem", transfer.PEM_TYPES)
def test_the_preset_starts_at_the_studys_lambda_and_quotes_it(pem) -> None:
    import re

    from workbench.catalog.presets import PRESETS
    from workbench.catalog.registry import ASSETS

    studies = (ASSETS.parent / "docs" / "zoo-studies.md").read_text(encoding="utf-8")
    part = transfer.SECTION.kept(studies).split(f"### {method_name(pem)}\n")[1].split("\n### ")[0]
    lam = float(part.split("it was **λ = ")[1].split("**")[0])
    lines = part[part.index("| setting | movie test") :].splitlines()[2:7]
    measured = [float(line.split("|")[2]) for line in lines]  # source, merge, control, analogy, target
    preset = PRESETS[f"domain-transfer-{pem}"]
    assert preset.values == {"lam": lam} and preset.expression == transfer.EXPRESSION
    names = transfer.modules(pem)
    assert preset.adapters == {name: names[name] for name in ("cls", "lm_target", "lm_source")}
    found = re.search(r"source ([\d.]+), merge at .*\(λ=([\d.]+)\) ([\d.]+), the plain analogy .* ([\d.]+), "
                      r"a classifier trained on movie labels ([\d.]+)", preset.guide)  # fmt: skip
    assert found, preset.guide
    source, quoted_lam, merge, analogy, target = map(float, found.groups())
    assert quoted_lam == lam
    for quoted, exact in zip((source, merge, analogy, target), (measured[0], measured[1], measured[3], measured[4]),
                             strict=True):  # fmt: skip
        assert abs(quoted - exact) <= 0.0005 + 1e-9, (quoted, exact)
