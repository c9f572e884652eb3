"""Helpfulness of an instruction model on questions with reference answers, offline.

The paper scores helpfulness with GPT-4; without it, two measures a reader can re-run:
- the perplexity of the reference answer after the chat prompt (only the answer's tokens,
  its end-of-turn marker included, are scored: the question is given, not predicted);
- the token F1 of the model's greedy answer against the reference (SQuAD's overlap score:
  lower-cased words without punctuation or articles, as multisets).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import torch

from workbench.errors import WorkbenchError
from workbench.runtime.fairness import StepAsideEachToken, between_batches
from workbench.runtime.loading import LoadedBase

BATCH_SIZE = 20


def _check(base: LoadedBase, what: str) -> None:
    if base.tokenizer is None or base.kind != "causal-lm" or not base.has_chat_template:
        raise WorkbenchError(f"{what} needs a causal language model with a chat template; {base.name} is not one")


def _prompt(base: LoadedBase, question: str) -> str:
    return base.tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                              tokenize=False)  # fmt: skip


def _answer_ids(base: LoadedBase, question: str, reference: str) -> tuple[list[int], list[int]]:
    """The prompt's ids, and the reference's as the chat template ends a turn (what follows the prompt)."""
    prompt = _prompt(base, question)
    full = base.tokenizer.apply_chat_template(
        [{"role": "user", "content": question}, {"role": "assistant", "content": reference}], tokenize=False
    )
    if not full.startswith(prompt):
        raise WorkbenchError(f"base {base.name}'s chat template does not continue its generation prompt")
    ids = [base.tokenizer(part, add_special_tokens=False)["input_ids"] for part in (prompt, full[len(prompt) :])]
    return ids[0], ids[1]


@torch.inference_mode()
def answer_perplexity(base: LoadedBase, pairs: Sequence[tuple[str, str]], batch_size: int = BATCH_SIZE) -> float:
    """exp(mean negative log-likelihood) of the reference answers' tokens, each after its question."""
    _check(base, "answer perplexity")
    if not pairs:
        raise WorkbenchError("answer perplexity needs at least one question and answer")
    nll_sum, counted = 0.0, 0
    for start in range(0, len(pairs), batch_size):
        between_batches()
        encoded = [_answer_ids(base, q, a) for q, a in pairs[start : start + batch_size]]
        width = max(len(p) + len(a) for p, a in encoded)
        ids = torch.zeros((len(encoded), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for row, (prompt, answer) in enumerate(encoded):  # right-padded: positions are the unpadded ones
            length = len(prompt) + len(answer)
            ids[row, :length] = torch.tensor(prompt + answer)
            mask[row, :length] = 1
            labels[row, len(prompt) : length] = torch.tensor(answer)
        logits = base.model(input_ids=ids.to(base.device), attention_mask=mask.to(base.device)).logits[:, :-1].float()
        targets = labels[:, 1:].to(base.device)
        scored = targets != -100
        nll_sum += float(torch.nn.functional.cross_entropy(logits[scored], targets[scored], reduction="sum"))
        counted += int(scored.sum())
    return math.exp(nll_sum / counted)


@torch.inference_mode()
def greedy_answers(base: LoadedBase, questions: Sequence[str], max_new_tokens: int = 32,
                   batch_size: int = BATCH_SIZE) -> list[str]:  # fmt: skip
    """The model's greedy answer to each question, through the chat template, in batches."""
    _check(base, "answering")
    tokenizer = base.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[str] = []
    for start in range(0, len(questions), batch_size):
        encoded = [tokenizer(_prompt(base, q), add_special_tokens=False)["input_ids"]
                   for q in questions[start : start + batch_size]]  # fmt: skip
        width = max(len(ids) for ids in encoded)
        ids = torch.tensor([[pad] * (width - len(row)) + row for row in encoded])  # left-padded for generation
        mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in encoded])
        output = base.model.generate(input_ids=ids.to(base.device), attention_mask=mask.to(base.device),
                                     do_sample=False, top_k=None, top_p=None, temperature=None,
                                     max_new_tokens=max_new_tokens, pad_token_id=pad,
                                     stopping_criteria=[StepAsideEachToken()])  # fmt: skip
        answers += tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
    return [answer.strip() for answer in answers]


ARTICLES = {"a", "an", "the"}


def words(text: str) -> list[str]:
    """SQuAD's normalisation: lower case, no punctuation, no articles."""
    return [word for word in re.findall(r"[a-z0-9]+", text.lower()) if word not in ARTICLES]


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's F1: the harmonic mean of word precision and recall, words counted as multisets."""
    predicted, wanted = words(prediction), words(reference)
    common = sum((Counter(predicted) & Counter(wanted)).values())
    if not predicted or not wanted or common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)
