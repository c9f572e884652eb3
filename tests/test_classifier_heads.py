"""Classification modules carry their task head: training, formats, the algebra, evaluation.

On the tiny BERT encoder (a `BertModel` folder, like the zoo's MiniLM), each PEM type
trains a few steps as a sequence classifier. The head saves with the module, reloads,
combines linearly for one task, stays separate across tasks, and our evaluation through
the head equals PEFT's own `BertForSequenceClassification` with the adapter.
"""

import shutil

import pytest
import torch

from workbench.algebra import compose
from workbench.catalog.training_settings import Labels, TrainSettings
from workbench.errors import WorkbenchError
from workbench.eval.classify import evaluate, predict
from workbench.eval.tasks import ClassificationTask
from workbench.modules import load_module
from workbench.modules.heads import Head, combine_heads
from workbench.runtime import SessionManager
from workbench.studio.training import train
from workbench.tiny import save_char_tokenizer

TEXTS = ["good food", "bad soup", "great tea", "awful pie", "nice cake", "poor bread"]
LABELS = Labels([0, 1, 0, 1, 0, 1], ("great", "other"))
TOPICS = Labels([0, 1, 2, 0, 1, 2], ("animal", "food", "plant"))
SETTINGS = TrainSettings(steps=3, learning_rate=1e-2, batch_size=3, max_length=16, calibration_steps=2,
                         density=0.05, lora_targets=("query", "value"), ia3_targets=("key", "value", "output.dense"),
                         ia3_feedforward=("output.dense",), head_learning_rate=5e-2)  # fmt: skip


@pytest.fixture(scope="module")
def encoder(base_dirs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoder") / "bert"
    shutil.copytree(base_dirs["bert"], folder)
    save_char_tokenizer(folder)
    return folder


@pytest.fixture(scope="module")
def trained(encoder, tmp_path_factory):
    root = tmp_path_factory.mktemp("classifiers")
    paths = {}
    for pem in ("lora", "ia3", "red", "sparse"):
        for name, labels, seed in (("a", LABELS, 0), ("b", LABELS, 1), ("topic", TOPICS, 0)):
            settings = TrainSettings(**{**vars(SETTINGS), "seed": seed})
            paths[pem, name] = root / f"{pem}-{name}"
            train(pem, encoder, TEXTS, settings, paths[pem, name], labels=labels)
    return paths


@pytest.mark.parametrize("pem", ["lora", "ia3", "red", "sparse"])
def test_each_type_saves_and_reloads_its_head(trained, pem) -> None:
    module = load_module(trained[pem, "a"])
    assert module.head is not None and module.head.labels == ("great", "other")
    assert set(module.head.tensors) == {"classifier.weight", "classifier.bias"}
    assert module.head.tensors["classifier.weight"].shape == (2, 32)
    assert not any("classifier" in target for target in module.targets)  # the head is not a backbone edit


def test_lota_leaves_the_head_out_of_the_sparse_mask(trained) -> None:
    module = load_module(trained["sparse", "a"])
    assert module.config["method"] == "lota" and module.num_parameters > 0
    assert all("classifier" not in name for name in module.tensors)


def test_same_task_heads_combine_with_the_coefficients_and_tasks_keep_their_own(trained) -> None:
    modules = {name: load_module(trained["lora", name]) for name in ("a", "b", "topic")}
    same = compose(modules, "lam*a + (1-lam)*b", {"lam": 0.3})
    (head,) = same.heads.values()
    for name in ("classifier.weight", "classifier.bias"):
        expected = 0.3 * modules["a"].head.tensors[name] + 0.7 * modules["b"].head.tensors[name]
        torch.testing.assert_close(head.tensors[name], expected)
    both = compose(modules, "lam*a + (1-lam)*topic", {"lam": 0.3})
    assert set(both.heads) == {("great", "other"), ("animal", "food", "plant")}
    assert both.heads["animal", "food", "plant"] is modules["topic"].head  # unscaled: each task reads its own


def test_heads_without_label_names_are_known_by_their_size() -> None:
    two = Head({"classifier.weight": torch.ones(2, 4), "classifier.bias": torch.zeros(2)})
    three = Head({"classifier.weight": torch.ones(3, 4), "classifier.bias": torch.zeros(3)})
    combined = combine_heads([(2.0, two), (-1.0, two), (0.5, three)])
    assert set(combined) == {("2 unnamed labels",), ("3 unnamed labels",)}
    torch.testing.assert_close(combined["2 unnamed labels",].tensors["classifier.weight"], torch.ones(2, 4))


@pytest.mark.parametrize("pem", ["lora", "ia3"])
def test_evaluation_through_the_head_equals_peft(encoder, trained, pem) -> None:
    from peft import PeftModel
    from transformers import AutoTokenizer, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(encoder)
    inputs = tokenizer(TEXTS, return_tensors="pt", padding=True)
    reference = PeftModel.from_pretrained(BertForSequenceClassification.from_pretrained(encoder, num_labels=2),
                                          trained[pem, "a"]).eval()  # fmt: skip
    with torch.no_grad():
        expected = reference(**inputs).logits.argmax(-1).tolist()
    manager = SessionManager()
    manager.open("s", str(encoder))
    manager.add_module("s", "a", trained[pem, "a"])
    manager.set_composition("s", "a")
    task = ClassificationTask("sentiment", tuple(TEXTS), tuple(LABELS.ids), LABELS.names)
    with manager.model_for("s") as base:
        assert predict(base, task) == expected
        head = base.heads["great", "other"]
        pooled = base.model(**inputs).pooler_output
    with torch.no_grad():
        reference_logits = reference(**inputs).logits
    torch.testing.assert_close(head.logits(pooled), reference_logits, atol=1e-5, rtol=1e-4)


def test_an_encoder_without_a_head_for_the_task_says_so(encoder, trained) -> None:
    manager = SessionManager()
    manager.open("s", str(encoder))
    manager.add_module("s", "topic", trained["red", "topic"])
    manager.set_composition("s", "topic")
    task = ClassificationTask("sentiment", tuple(TEXTS), tuple(LABELS.ids), LABELS.names)
    with manager.model_for("s") as base, pytest.raises(WorkbenchError, match="no module in the composition"):
        evaluate(base, task)


def _session(encoder, trained, names) -> SessionManager:
    manager = SessionManager()
    manager.open("s", str(encoder))
    for name in names:
        manager.add_module("s", name, trained["lora", name])
    return manager


def test_the_base_reads_through_the_loaded_modules_heads_averaged_per_task(encoder, trained) -> None:
    manager = _session(encoder, trained, ("a", "b", "topic"))
    a, b = (manager.state("s").modules[n].head.tensors["classifier.weight"] for n in ("a", "b"))
    with manager.model_for("s", use_base=True) as base:
        torch.testing.assert_close(base.heads["great", "other"].tensors["classifier.weight"], (a + b) / 2)
        assert ("animal", "food", "plant") in base.heads
    manager.set_composition("s", "a")
    with manager.model_for("s") as base:  # the composition's own head wins for its task
        torch.testing.assert_close(base.heads["great", "other"].tensors["classifier.weight"], a)
        assert ("animal", "food", "plant") in base.heads  # other tasks: the loaded module's head
    assert manager.base(str(encoder)).heads == {}  # heads are live only inside model_for


def test_a_classifier_sweep_measures_references_and_points(encoder, trained) -> None:
    from workbench.eval import TaskMeasure, parse_grid, sweep

    manager = _session(encoder, trained, ("a", "b"))
    task = ClassificationTask("sentiment", tuple(TEXTS), tuple(LABELS.ids), LABELS.names)
    updates = list(sweep(manager, "s", "lam*a + (1-lam)*b", [parse_grid("lam=0,1")], [TaskMeasure(task, None)]))
    table = updates[-1].frame
    assert list(table["label"][:3]) == ["base", "a", "b"] and len(table) == 5
    assert table["sentiment"].between(0, 1).all()
    assert table["sentiment"].iloc[3] == table["sentiment"].iloc[2]  # λ=0 is b alone, head and all
    assert table["sentiment"].iloc[4] == table["sentiment"].iloc[1]  # λ=1 is a alone


def test_export_carries_the_combined_head_and_peft_reads_it(encoder, trained, tmp_path) -> None:
    from peft import PeftModel
    from transformers import AutoTokenizer, BertForSequenceClassification

    from workbench.algebra import save_composition

    manager = _session(encoder, trained, ("a", "b"))
    composition = manager.set_composition("s", "lam*a + (1-lam)*b", {"lam": 0.3})
    assert save_composition(composition, manager.state("s").modules, tmp_path / "merged") == "lora"
    exported = load_module(tmp_path / "merged")
    head = composition.heads["great", "other"]
    torch.testing.assert_close(exported.head.tensors["classifier.bias"], head.tensors["classifier.bias"])
    peft_model = PeftModel.from_pretrained(BertForSequenceClassification.from_pretrained(encoder, num_labels=2),
                                           tmp_path / "merged").eval()  # fmt: skip
    inputs = AutoTokenizer.from_pretrained(encoder)(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad(), manager.model_for("s") as base:
        ours = head.logits(base.model(**inputs).pooler_output)
        torch.testing.assert_close(peft_model(**inputs).logits, ours, atol=1e-5, rtol=1e-4)


def test_the_controller_reads_out_accuracy_through_the_heads(encoder, trained, monkeypatch) -> None:
    from workbench.ui.controller import Controller

    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", str(trained["lora", "a"].parent))
    controller = Controller(SessionManager())
    controller.start("s", base=str(encoder))
    assert controller.readout("s").startswith("no module carries a task head")
    controller.add_adapter("s", "a", str(trained["lora", "a"]))
    shown = controller.recompose("s", "lam*a", {"lam": 1.0})
    lines = shown["readout"].splitlines()  # one line per task the head reads (the movie domain shares its labels)
    assert any(line.startswith("sentiment-validation 0.") and "(n=100) · base 0." in line for line in lines)
    assert controller.readout("s", use_base=True).startswith("accuracy on 32")


def test_the_base_reading_does_not_move_with_lambda(encoder, trained) -> None:
    """With use_base, the composition's combined head must not leak into the base's reading."""
    manager = _session(encoder, trained, ("a", "b"))
    a, b = (manager.state("s").modules[n].head.tensors["classifier.weight"] for n in ("a", "b"))
    for lam in (0.0, 0.3, 1.0):
        manager.set_composition("s", "lam*a + (1-lam)*b", {"lam": lam})
        with manager.model_for("s", use_base=True) as base:
            torch.testing.assert_close(base.heads["great", "other"].tensors["classifier.weight"], (a + b) / 2)


def test_a_preset_chooses_among_the_tasks_that_share_its_heads_labels() -> None:
    """Sentiment and movie reviews share great/other: a sentiment preset is scored on sentiment
    only (twice the work at every release otherwise), a transfer preset on both, a session built
    by hand on every task its heads can read."""
    from workbench.catalog.presets import PRESETS
    from workbench.ui.controller import live_tasks, validation_tasks

    labels = {task.name: task.label_words for task in validation_tasks()}
    sentiment, topic = labels["sentiment-validation"], labels["topic-validation"]

    def names(heads, preferred=()) -> list[str]:
        return [task.name for task in live_tasks(heads, 0, preferred)]

    assert names({sentiment}) == ["movie-validation", "sentiment-validation"]
    assert names({sentiment}, PRESETS["distribution-generalization-lora"].tasks) == ["sentiment-validation"]
    assert names({sentiment}, PRESETS["domain-transfer-lora"].tasks) == ["movie-validation", "sentiment-validation"]
    assert names({sentiment, topic}, ("sentiment-validation",)) == ["sentiment-validation", "topic-validation"]
    assert names({topic}, ("sentiment-validation",)) == ["topic-validation"]
    assert names(set(), ("sentiment-validation",)) == []
    assert [t.name for t in live_tasks(set(), len(sentiment), ())] == ["movie-validation", "sentiment-validation"]
