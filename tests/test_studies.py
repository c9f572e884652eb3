"""The composition studies, run end to end on the tiny zoo (tiny BERT, a few rows of data,
modules trained for two steps), against references computed another way."""

import shutil
from dataclasses import replace

import pytest
from tiny_zoo import SENTIMENT_MAJORITY, install, train_classifiers

from workbench.runtime import SessionManager
from workbench.studio import studies
from workbench.studio.cards import machine, measure_classifier
from workbench.studio.studies import (
    GRID,
    GeneralizationRow,
    MultitaskRow,
    generalization,
    multitask,
    report,
    run_studies,
    seeded_folder,
    seeded_module,
)


@pytest.fixture(scope="module")
def trained(base_dirs, tmp_path_factory):
    return train_classifiers(base_dirs, tmp_path_factory.mktemp("tiny-zoo"))


@pytest.fixture
def zoo(monkeypatch, base_dirs, tmp_path, trained):
    install(monkeypatch, base_dirs, tmp_path, trained)
    return trained


def alone(zoo, name: str) -> dict[str, float]:
    """A module's accuracy by the cards' route: the module alone, through its head."""
    return measure_classifier(studies.RECIPES[name], zoo[name]).accuracy


def test_generalization_reads_each_module_alone_and_their_merge(zoo) -> None:
    row = generalization(SessionManager(), zoo["minilm-sentiment-s0-lora"], zoo["minilm-sentiment-s1-lora"], "lora",
                         "seed 0")  # fmt: skip
    assert row.s0 == alone(zoo, "minilm-sentiment-s0-lora")["test"]
    assert row.s1 == alone(zoo, "minilm-sentiment-s1-lora")["test"]
    assert all((8 * value).is_integer() for value in (row.s0, row.s1, row.merged))
    assert row.gain == pytest.approx(row.merged - (row.s0 + row.s1) / 2)


def test_multitask_chooses_lambda_on_validation_and_its_ends_are_the_modules_alone(zoo) -> None:
    row = multitask(SessionManager(), "red")
    assert set(row.validation) == set(GRID)
    best = max(sum(row.validation[lam]) for lam in GRID)
    assert sum(row.validation[row.lam]) == best and row.lam == min(lam for lam in GRID
                                                                   if sum(row.validation[lam]) == best)  # fmt: skip
    assert set(row.test) == {0.0, 1.0, row.lam}
    assert row.test[1.0][0] == alone(zoo, "minilm-sentiment-red")["test"]  # λ=1: the sentiment module alone
    assert row.test[0.0][1] == alone(zoo, "minilm-topic-red")["test"]  # λ=0: the topic module alone
    assert row.gain == pytest.approx(row.average(row.lam) - max(row.average(0.0), row.average(1.0)))


def test_seeded_modules_train_once_into_the_cache(zoo, tmp_path, monkeypatch) -> None:
    assert seeded_module("minilm-sentiment-s0-lora", 0) == zoo["minilm-sentiment-s0-lora"]  # seed 0 is shipped
    folder = seeded_module("minilm-sentiment-s0-lora", 1)
    assert folder == seeded_folder("minilm-sentiment-s0-lora", 1)
    assert folder.parent == tmp_path / "cache" / "studies" and folder.name.startswith("minilm-sentiment-s0-lora-seed1-")
    assert (folder / "DONE").is_file() and (folder / "adapter_config.json").is_file()
    monkeypatch.setattr(studies, "train", lambda *a, **k: pytest.fail("a finished seed was trained again"))
    assert seeded_module("minilm-sentiment-s0-lora", 1) == folder


def test_a_changed_recipe_is_retrained_not_read_from_a_stale_cache(zoo, monkeypatch) -> None:
    before = seeded_folder("minilm-sentiment-s0-red", 1)
    recipe = studies.RECIPES["minilm-sentiment-s0-red"]
    changed = replace(recipe, settings=replace(recipe.settings, steps=recipe.settings.steps + 1))
    monkeypatch.setitem(studies.RECIPES, "minilm-sentiment-s0-red", changed)
    assert seeded_folder("minilm-sentiment-s0-red", 1) != before
    assert seeded_folder("minilm-sentiment-s0-red", 2) != seeded_folder("minilm-sentiment-s0-red", 1)


def test_a_new_setting_at_its_default_keeps_every_cached_name(zoo, monkeypatch) -> None:
    """Only settings that differ from their defaults name the cache, so adding a setting to
    TrainSettings does not orphan the seeds already trained; setting it does retrain them."""
    import pydantic

    from workbench.catalog.training_settings import TrainSettings

    @pydantic.dataclasses.dataclass(frozen=True)
    class Wider(TrainSettings):
        momentum: float = 0.0

    recipe = studies.RECIPES["minilm-sentiment-s0-lota"]
    before = seeded_folder(recipe.name, 1)
    wider = Wider(**{f: getattr(recipe.settings, f) for f in recipe.settings.__dataclass_fields__})
    monkeypatch.setitem(studies.RECIPES, recipe.name, replace(recipe, settings=wider))
    assert seeded_folder(recipe.name, 1) == before
    monkeypatch.setitem(studies.RECIPES, recipe.name, replace(recipe, settings=replace(wider, momentum=0.9)))
    assert seeded_folder(recipe.name, 1) != before


PARTS = ("lora", "ia3", "red", "lota")


def test_run_studies_writes_every_table(zoo, tmp_path, monkeypatch) -> None:
    for part in PARTS:  # seeds 1 and 2 as a finished earlier run left them (the test above trains one)
        for subset in ("s0", "s1"):
            for seed in (1, 2):
                folder = seeded_folder(f"minilm-sentiment-{subset}-{part}", seed)
                shutil.copytree(zoo[f"minilm-sentiment-{subset}-{part}"], folder)
                (folder / "DONE").write_text("")
    monkeypatch.setattr(studies, "train", lambda *a, **k: pytest.fail("a finished seed was trained again"))
    said = []
    text = run_studies(say=said.append)
    assert said[:12] == [f"generalization: {part}, seed {seed}" for part in PARTS for seed in (0, 1, 2)]
    assert said[12] == "generalization: lora, different initialisations"
    assert said[-4:] == [f"multi-task: {part}" for part in PARTS]
    s0, s1 = (alone(zoo, f"minilm-sentiment-{subset}-lora")["test"] for subset in ("s0", "s1"))
    assert f"| LoRA | seed 0 | {s0:.4f} | {s1:.4f} | " in text
    for name in ("LoRA", "(IA)³", "RED", "LoTA"):
        for pair in ("seed 0", "seed 1", "seed 2"):
            assert f"| {name} | {pair} |" in text
        assert f"\n| {name} | " in text.split("| type | gain, mean ± std |")[1]  # its line over the seeds
    assert "| LoRA | init 0 vs init 1 |" in text
    assert f"minutes on\n{machine()})" in text
    assert text.count("\n| LoRA |") == 4 + 1 + 1 + 1  # four pairs, the seed summary, validation and test rows


def test_progress_goes_to_stderr(capsys) -> None:
    studies._say("multi-task: lora")
    assert capsys.readouterr() == ("", "multi-task: lora\n")


def test_the_caveat_names_the_tiny_datas_majority(zoo) -> None:
    from workbench.studio.studies import GeneralizationRow, MultitaskRow, report

    seeded = [GeneralizationRow("lora", f"seed {s}", 0.6, 0.8, 0.7) for s in range(3)]
    task = MultitaskRow("lora", {lam: (0.5, 0.5) for lam in GRID}, 0.5, {lam: (0.5, 0.5) for lam in (0.0, 0.5, 1.0)})
    text = report(seeded, seeded[0], [task], 60.0)
    assert f"not 5 points above the test majority rate ({SENTIMENT_MAJORITY:.3f})" in text  # 0.6 < 0.625 + 0.05


def test_the_caveat_names_weak_pairs_of_every_type(zoo) -> None:
    """The shipped RED and LoTA s0 modules sit near the majority rate: their seed-0 gains rest
    on a weak part, and the caveat must say so, not only for the LoRA seeds."""
    from workbench.studio.studies import GeneralizationRow, MultitaskRow, report

    strong, weak = 0.9, 0.6
    rows = [GeneralizationRow(pem, "seed 0", weak if pem in ("red", "sparse") else strong, strong, strong)
            for pem in ("lora", "ia3", "red", "sparse")]  # fmt: skip
    rows.append(GeneralizationRow("lora", "seed 1", weak, strong, strong))
    task = MultitaskRow("lora", {lam: (0.5, 0.5) for lam in GRID}, 0.5, {lam: (0.5, 0.5) for lam in (0.0, 0.5, 1.0)})
    text = report(rows, rows[0], [task], 60.0)
    assert "Caveat: in RED seed 0, LoTA seed 0, LoRA seed 1 a subset module" in text, text


def test_a_collapsed_module_is_called_collapsed_and_the_means_say_which_pairs_are_strong(zoo) -> None:
    """A module at the majority rate answers its subset's label: the table says so, and each
    type's line over the seeds counts the pairs whose parts are both strong."""
    from workbench.studio.studies import GeneralizationRow, MultitaskRow, report

    majority = SENTIMENT_MAJORITY
    rows = [GeneralizationRow("red", "seed 0", majority, 0.9, 0.9), GeneralizationRow("red", "seed 1", 0.9, 0.9, 0.9),
            GeneralizationRow("red", "seed 2", majority + 0.01, 0.9, 0.8)]  # fmt: skip
    task = MultitaskRow("red", {lam: (0.5, 0.5) for lam in GRID}, 0.5, {lam: (0.5, 0.5) for lam in (0.0, 0.5, 1.0)})
    text = report(rows, rows[1], [task], 60.0)
    assert "| RED | seed 0 |" in text and text.split("| RED | seed 0 |")[1].split("\n")[0].endswith("| s0 collapsed |")
    assert text.split("| RED | seed 2 |")[1].split("\n")[0].endswith("| s0 weak |")
    gains = [0.9 - (majority + 0.9) / 2, 0.0, 0.8 - (majority + 0.01 + 0.9) / 2]
    mean = sum(gains) / 3
    assert f"| RED | {100 * mean:+.1f} ± " in text
    assert "| 1 of 3 | +0.0 |" in text


def test_study_report_states_gains_and_the_chosen_lambda() -> None:
    seeded = [GeneralizationRow("lora", f"seed {s}", 0.70, 0.80, 0.76 + 0.01 * s) for s in range(3)]
    rows = [*seeded, GeneralizationRow("ia3", "seed 0", 0.7, 0.7, 0.69)]
    different = GeneralizationRow("lora", "init 0 vs init 1", 0.7, 0.8, 0.5)
    validation = {lam: (0.8 - 0.1 * lam, 0.5 + 0.2 * lam) for lam in GRID}
    task = MultitaskRow("lora", validation, 0.5, {0.0: (0.5, 0.9), 0.5: (0.8, 0.85), 1.0: (0.85, 0.4)})
    text = report(rows, different, [task], 60.0)
    assert "| LoRA | +2.0 ± 1.0 | " in text  # 0.76, 0.77, 0.78 against a mean of 0.75
    assert "| (IA)³ | -1.0 | " in text  # one seed: no spread
    assert "| (IA)³ | seed 0 | 0.7000 | 0.7000 | 0.6900 | -1.0 |" in text
    assert "| LoRA | init 0 vs init 1 | 0.7000 | 0.8000 | 0.5000 | -25.0 |" in text
    assert "| LoRA | 0.5 | 0.8000 | 0.8500 | 0.8250 | 0.6250 | 0.7000 | +12.5 |" in text
