"""The zoo shrunk for tests: its bases are the tiny LLaMA and BERT, its data a few rows in a
temp folder, its recipes a few steps, so the cards and studies run end to end in seconds.

`install(...)` points every place the studio reads the zoo from (bases, data, recipes,
adapters, cache) at the tiny one, through pytest's monkeypatch.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd

from workbench.catalog.recipes import RECIPES, Recipe
from workbench.tiny import save_char_tokenizer

SENTIMENT = [("good food", "great"), ("bad soup", "other"), ("great tea", "great"), ("awful pie", "other"),
             ("nice cake", "other"), ("poor bread", "other"), ("fine rice", "great"),
             ("cold stew", "other")]  # fmt: skip
MOVIE = [("a fine film", "great"), ("dull plot", "other"), ("great cast", "great"), ("weak script", "other"),
         ("slow start", "other"), ("fun ride", "great")]  # fmt: skip
TOPIC = [("a dog", "animal"), ("a cat", "animal"), ("some bread", "food"), ("an oak", "plant"), ("a fir", "plant"),
         ("some soup", "food")]  # fmt: skip
SENTIMENT_MAJORITY = 5 / 8  # `other`, in both of the tiny sentiment splits
PEM_TYPES = ("lora", "ia3", "red", "lota")  # as the zoo names them: the sparse type by its method, LoTA
AUSTEN = "It is a truth universally acknowledged, that a single man in possession of a good fortune."


def write_data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frames = {"sentiment": pd.DataFrame(SENTIMENT, columns=["text", "label"]),
              "topic": pd.DataFrame(TOPIC, columns=["text", "label"]),
              "movie": pd.DataFrame(MOVIE, columns=["text", "label"])}  # fmt: skip
    for task, frame in frames.items():
        for split in ("train", "validation", "test", "s0", "s1"):
            frame.to_csv(folder / f"{task}-{split}.csv", index=False)
    toxic = pd.DataFrame({"text": ["you fool", "damn it all", "what rot"], "score": [0.9, 0.95, 0.85]})
    toxic.to_csv(folder / "fortunes-toxic.csv", index=False)
    (folder / "austen-perplexity.txt").write_text(AUSTEN, encoding="utf-8")
    return folder


def encoder(base_dirs: dict[str, Path], folder: Path) -> Path:
    """The tiny BERT with a tokenizer, as the zoo's MiniLM is a BertModel folder with one."""
    if not folder.is_dir():
        shutil.copytree(base_dirs["bert"], folder)
        save_char_tokenizer(folder, mask=True)
    return folder


def tiny_recipe(recipe: Recipe) -> Recipe:
    """The recipe at a few steps on short texts: same types, targets, data names and task."""
    settings = replace(recipe.settings, steps=1, batch_size=2, max_length=16, calibration_steps=1,
                       lora_targets=recipe.settings.lora_targets if recipe.task else ("q_proj", "v_proj"))  # fmt: skip
    return replace(recipe, settings=settings)


def install(monkeypatch, base_dirs: dict[str, Path], root: Path, adapters: dict[str, Path] | None = None) -> None:
    """Bases, data, recipes, adapters and the cache of the studio, all tiny and under `root`."""
    bases = {"smollm2-135m-instruct": base_dirs["llama"], "minilm-l6": encoder(base_dirs, root / "minilm")}
    data = write_data(root / "data")
    monkeypatch.setattr("workbench.catalog.bases.zoo_base_folder", bases.__getitem__)
    monkeypatch.setattr("workbench.studio.studies.zoo_base_folder", bases.__getitem__)
    for module in ("catalog.registry", "catalog.recipes", "studio.cards", "studio.training"):
        monkeypatch.setattr(f"workbench.{module}.DATA", data)
    monkeypatch.setattr("workbench.studio.studies.RECIPES", {name: tiny_recipe(r) for name, r in RECIPES.items()})
    monkeypatch.setenv("WORKBENCH_CACHE", str(root / "cache"))
    if adapters is not None:
        monkeypatch.setattr("workbench.studio.studies.zoo_adapter_path", adapters.__getitem__)


def train_classifiers(base_dirs: dict[str, Path], root: Path) -> dict[str, Path]:
    """Per PEM type a sentiment and a topic module, under the zoo names the studies read (the
    multi-task pair, and the s0/s1 pair: for LoRA a second sentiment module, data order and
    initialisation 1; the other types pair a module with itself, which the studies run alike)."""
    from workbench.catalog.training_settings import Labels
    from workbench.studio.training import train

    folder = encoder(base_dirs, root / "minilm")
    made: dict[str, Path] = {}
    jobs = [(pem, name, rows, 0) for pem in PEM_TYPES for name, rows in (("s0", SENTIMENT), ("topic", TOPIC))]
    for pem, name, rows, seed in [*jobs, ("lora", "s1", SENTIMENT, 1)]:
        settings = tiny_recipe(RECIPES[f"minilm-sentiment-{pem}"]).settings
        texts, labels = [text for text, _ in rows], [label for _, label in rows]
        names = tuple(sorted(set(labels)))
        ids = [names.index(label) for label in labels]
        made[f"{pem}-{name}"] = out = root / "adapters" / f"{pem}-{name}"
        train(RECIPES[f"minilm-sentiment-{pem}"].pem_type, folder, texts, replace(settings, seed=seed), out,
              labels=Labels(ids, names))  # fmt: skip
    zoo = {}
    for pem in PEM_TYPES:
        zoo |= {f"minilm-sentiment-s0-{pem}": made[f"{pem}-s0"], f"minilm-sentiment-{pem}": made[f"{pem}-s0"],
                f"minilm-sentiment-s1-{pem}": made.get(f"{pem}-s1", made[f"{pem}-s0"]),
                f"minilm-topic-{pem}": made[f"{pem}-topic"]}  # fmt: skip
    zoo["minilm-sentiment-s1-lora-init1"] = made["lora-s1"]
    return zoo
