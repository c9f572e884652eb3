"""The composition studies, run end to end on the tiny zoo (tiny BERT, a few rows of data,
modules trained for two steps), against references computed another way."""

import shutil

import pytest
from tiny_zoo import SENTIMENT_MAJORITY, install, train_classifiers

from workbench.runtime import SessionManager
from workbench.studio import studies
from workbench.studio.cards import machine, measure_classifier
from workbench.studio.studies import GRID, generalization, multitask, run_studies, seeded_module


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
    assert folder == tmp_path / "cache" / "studies" / "minilm-sentiment-s0-lora-seed1"
    assert (folder / "DONE").is_file() and (folder / "adapter_config.json").is_file()
    monkeypatch.setattr(studies, "train", lambda *a, **k: pytest.fail("a finished seed was trained again"))
    assert seeded_module("minilm-sentiment-s0-lora", 1) == folder


def test_run_studies_writes_every_table(zoo, tmp_path, monkeypatch) -> None:
    for subset in ("s0", "s1"):  # seeds 1 and 2 as a finished earlier run left them (the test above trains one)
        for seed in (1, 2):
            folder = tmp_path / "cache" / "studies" / f"minilm-sentiment-{subset}-lora-seed{seed}"
            shutil.copytree(zoo[f"minilm-sentiment-{subset}-lora"], folder)
            (folder / "DONE").write_text("")
    monkeypatch.setattr(studies, "train", lambda *a, **k: pytest.fail("a finished seed was trained again"))
    said = []
    text = run_studies(say=said.append)
    assert said[:4] == [f"generalization: {pem}" for pem in ("lora", "ia3", "red", "lota")]
    assert said[4:7] == ["generalization: lora, seed 1", "generalization: lora, seed 2",
                         "generalization: lora, different initialisations"]  # fmt: skip
    assert said[-4:] == [f"multi-task: {pem}" for pem in ("lora", "ia3", "red", "lota")]
    s0, s1 = (alone(zoo, f"minilm-sentiment-{subset}-lora")["test"] for subset in ("s0", "s1"))
    assert f"| LoRA | seed 0 | {s0:.4f} | {s1:.4f} | " in text
    for pair in ("seed 0", "seed 1", "seed 2", "init 0 vs init 1"):
        assert f"| LoRA | {pair} |" in text
    for name in ("(IA)³", "RED", "LoTA"):
        assert f"| {name} | seed 0 |" in text
    assert f"minutes on\n{machine()})" in text
    assert text.count("\n| LoRA |") == 4 + 1 + 1  # generalization: four pairs; validation and test rows


def test_progress_goes_to_stderr(capsys) -> None:
    studies._say("multi-task: lora")
    assert capsys.readouterr() == ("", "multi-task: lora\n")


def test_the_caveat_names_the_tiny_datas_majority(zoo) -> None:
    from workbench.studio.studies import GeneralizationRow, MultitaskRow, report

    seeded = [GeneralizationRow("lora", f"seed {s}", 0.6, 0.8, 0.7) for s in range(3)]
    task = MultitaskRow("lora", {lam: (0.5, 0.5) for lam in GRID}, 0.5, {lam: (0.5, 0.5) for lam in (0.0, 0.5, 1.0)})
    text = report(seeded, seeded, seeded[0], [task], 60.0)
    assert f"not 5 points above the test majority rate ({SENTIMENT_MAJORITY:.3f})" in text  # 0.6 < 0.625 + 0.05


def test_the_caveat_names_weak_pairs_of_every_type(zoo) -> None:
    """The shipped RED and LoTA s0 modules sit near the majority rate: their seed-0 gains rest
    on a weak part, and the caveat must say so, not only for the LoRA seeds."""
    from workbench.studio.studies import GeneralizationRow, MultitaskRow, report

    strong, weak = 0.9, 0.6
    rows = [GeneralizationRow(pem, "seed 0", weak if pem in ("red", "sparse") else strong, strong, strong)
            for pem in ("lora", "ia3", "red", "sparse")]  # fmt: skip
    seeded = [rows[0], GeneralizationRow("lora", "seed 1", weak, strong, strong)]
    task = MultitaskRow("lora", {lam: (0.5, 0.5) for lam in GRID}, 0.5, {lam: (0.5, 0.5) for lam in (0.0, 0.5, 1.0)})
    text = report(rows, seeded, rows[0], [task], 60.0)
    assert "Caveat: in RED seed 0, LoTA seed 0, LoRA seed 1 a subset module" in text, text
