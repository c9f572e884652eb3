"""Metrics, perplexity, classification, toxicity scorers and sampling, on hand-checked cases."""

import math

import pytest
import torch
from conftest import save_char_tokenizer

from workbench.eval.classify import predict
from workbench.eval.metrics import accuracy, mcc, spearman
from workbench.eval.perplexity import perplexity
from workbench.eval.sampling import sample
from workbench.eval.tasks import ClassificationTask
from workbench.eval.toxicity import DetoxifyScorer, ProfanityScorer, summarise
from workbench.runtime import load_base_model

TEXT = "It is a truth universally acknowledged, that a single man"


def test_mcc_on_a_fixed_confusion() -> None:
    # TP=5, TN=3, FP=1, FN=1: (5·3 − 1·1) / √(6·6·4·4) = 14/24
    labels = [1] * 6 + [0] * 4
    predictions = [1] * 5 + [0] + [0] * 3 + [1]
    assert math.isclose(mcc(predictions, labels), 14 / 24)
    assert accuracy(predictions, labels) == 0.8
    assert mcc([1, 1, 1], [1, 1, 1]) == 0.0


def test_multiclass_mcc_and_spearman_match_references() -> None:
    from scipy.stats import spearmanr
    from sklearn.metrics import matthews_corrcoef

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (200,), generator=generator).tolist()
    predictions = [y if torch.rand(1, generator=generator) < 0.6 else (y + 1) % 4 for y in labels]
    assert math.isclose(mcc(predictions, labels), matthews_corrcoef(labels, predictions), rel_tol=1e-9)
    x = [1.0, 2.0, 2.0, 5.0, 3.0]
    y = [2.0, 1.0, 4.0, 4.0, 9.0]
    assert math.isclose(spearman(x, y), spearmanr(x, y).statistic, rel_tol=1e-9)


def test_perplexity_equals_unstrided_reference_when_window_covers_text(base_dirs) -> None:
    base = load_base_model(str(base_dirs["llama"]))
    ids = base.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        reference = math.exp(float(base.model(ids, labels=ids).loss))
    assert math.isclose(perplexity(base, TEXT), reference, rel_tol=1e-5)


def test_strided_perplexity_scores_each_token_once(base_dirs) -> None:
    """With window 16 and stride 8, the strided value equals the mean NLL over every token
    computed window by window by hand."""
    base = load_base_model(str(base_dirs["llama"]))
    ids = base.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    nll, count = 0.0, 0
    with torch.no_grad():
        for target in range(1, ids.shape[1]):
            start = max(0, ((target - 16) // 8 + 1) * 8) if target >= 16 else 0
            while target - start >= 16:
                start += 8
            logits = base.model(ids[:, start : target + 1]).logits[0, -2]
            nll -= float(logits.log_softmax(-1)[ids[0, target]])
            count += 1
    assert count == ids.shape[1] - 1
    assert math.isclose(perplexity(base, TEXT, window=16, stride=8), math.exp(nll / count), rel_tol=1e-4)


def test_label_word_scoring_matches_unpadded_reference(base_dirs) -> None:
    base = load_base_model(str(base_dirs["llama"]))
    texts = ("short", "a much longer review text", "mid length")
    task = ClassificationTask("toy", texts, (0, 1, 0), ("x", "yz"))
    expected = []
    with torch.no_grad():
        for text in texts:
            prompt = base.tokenizer(task.template.format(text=text))["input_ids"]
            scores = []
            for word in task.label_words:
                word_ids = base.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
                logits = base.model(torch.tensor([prompt + word_ids])).logits[0].log_softmax(-1)
                scores.append(sum(float(logits[len(prompt) - 1 + i, w]) for i, w in enumerate(word_ids)))
            expected.append(max(range(2), key=lambda k: scores[k]))
    assert predict(base, task, batch_size=2) == expected


def test_head_classification(tmp_path) -> None:
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=128, num_labels=2, pad_token_id=0)  # fmt: skip
    LlamaForSequenceClassification(config).save_pretrained(tmp_path)
    save_char_tokenizer(tmp_path)
    base = load_base_model(str(tmp_path))
    assert base.kind == "classifier"
    task = ClassificationTask("toy", ("good", "bad day"), (0, 1), ("neg", "pos"))
    with torch.no_grad():
        expected = [int(base.model(**base.tokenizer(t, return_tensors="pt")).logits.argmax()) for t in task.texts]
    assert predict(base, task) == expected


def test_profanity_scorer_and_summary() -> None:
    scorer = ProfanityScorer()
    scores = scorer.score(["have a lovely day", "you stupid idiot", "What the hell is this?"])
    assert scores[0] < 0.5 < scores[1] and scores[2] > 0.8
    summary = summarise(scorer, scores)
    assert summary.n == 3 and math.isclose(summary.toxic_rate, 2 / 3)
    assert "word-based" in summary.note


def make_detoxify_standin(folder):
    """A tiny random BERT saved in Detoxify's checkpoint format, with its config folder."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz") + ["you", "idiot"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                        vocab_size=len(words), num_labels=6)  # fmt: skip
    model = BertForSequenceClassification(config)
    config.save_pretrained(folder)
    classes = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    checkpoint = {
        "config": {
            "arch": {"args": {"model_type": "bert-base-uncased", "model_name": "BertForSequenceClassification",
                              "tokenizer_name": "BertTokenizer", "num_classes": 6}},
            "dataset": {"args": {"classes": classes}},
        },
        "state_dict": model.state_dict(),
    }  # fmt: skip
    torch.save(checkpoint, folder / "standin.ckpt")
    return folder / "standin.ckpt", model.eval(), BertTokenizer.from_pretrained(folder)


def test_detoxify_backend_through_a_local_standin(tmp_path) -> None:
    checkpoint, model, tokenizer = make_detoxify_standin(tmp_path / "detox")
    scorer = DetoxifyScorer.from_checkpoint(checkpoint, tmp_path / "detox")
    assert "NOT Detoxify's released weights" in scorer.note and "stand-in" in scorer.name
    texts = ["you idiot", "abc"]
    with torch.no_grad():
        expected = torch.sigmoid(model(**tokenizer(texts, return_tensors="pt", padding=True)).logits[:, 0]).tolist()
    assert scorer.score(texts) == pytest.approx(expected, abs=1e-6)


def test_detoxify_refuses_foreign_files_and_a_failed_download(tmp_path, monkeypatch) -> None:
    from workbench.errors import WorkbenchError

    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(WorkbenchError, match="not a Detoxify checkpoint"):
        DetoxifyScorer.from_checkpoint(tmp_path / "plain.ckpt", tmp_path)

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WorkbenchError, match=r"Detoxify weights \(original\) could not be downloaded"):
        DetoxifyScorer.from_release("original")


def test_sampling_is_seeded_and_batched(base_dirs) -> None:
    base = load_base_model(str(base_dirs["llama"]))
    first = sample(base, ("hello", "I don't care"), n=5, seed=3, max_new_tokens=6, batch_size=2)
    again = sample(base, ("hello", "I don't care"), n=5, seed=3, max_new_tokens=6, batch_size=2)
    other = sample(base, ("hello", "I don't care"), n=5, seed=4, max_new_tokens=6, batch_size=2)
    assert len(first) == 5 and [p for p, _ in first] == ["hello", "I don't care"] * 2 + ["hello"]
    assert first == again and first != other
    chat = sample(base, ("hi",), n=2, seed=0, max_new_tokens=4, chat=True)
    assert len(chat) == 2
