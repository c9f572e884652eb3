"""Predicting labels under the live composition: a task head, or label-word scoring.

Encoders with a classification head predict with the head: their own, or, for a bare
encoder, the head the live composition carries for the task (matched by label names).
Causal and seq2seq language models score each label word's log-likelihood after the
prompt and pick the best, the paper's constrained decoding for T5, so the model can only
answer with a label.
"""

from __future__ import annotations

import torch

from workbench.errors import WorkbenchError
from workbench.eval.metrics import compute
from workbench.eval.tasks import ClassificationTask
from workbench.modules.heads import Head
from workbench.runtime.fairness import between_batches
from workbench.runtime.loading import LoadedBase

BATCH_SIZE = 32
MAX_LENGTH = 128  # tokens per text; the zoo's classifiers train at this length


def evaluate(base: LoadedBase, task: ClassificationTask, batch_size: int = BATCH_SIZE) -> float:
    """The task's metric for the model as it is now (call inside `model_for`)."""
    return compute(task.metric, predict(base, task, batch_size), task.labels)


@torch.inference_mode()
def predict(base: LoadedBase, task: ClassificationTask, batch_size: int = BATCH_SIZE) -> list[int]:
    if base.tokenizer is None:
        raise WorkbenchError(f"base {base.name} has no tokenizer")
    if base.kind in ("classifier", "encoder"):
        return _predict_with_head(base, task, batch_size)
    if base.kind in ("causal-lm", "seq2seq"):
        return _predict_by_label_words(base, task, batch_size)
    raise WorkbenchError(f"{base.name} has no classification head and is not a language model; load a classifier")


def task_head(base: LoadedBase, task: ClassificationTask) -> Head:
    """The live composition's head for `task`: the one named by its labels, else the only
    unnamed head with as many outputs."""
    head = base.heads.get(task.label_words)
    if head is None:
        unnamed = [h for h in base.heads.values() if h.labels is None and h.num_labels == len(task.label_words)]
        head = unnamed[0] if len(unnamed) == 1 else None
    if head is None:
        raise WorkbenchError(
            f"{base.name} is an encoder without a task head, and no module in the composition carries one for "
            f"{task.name} ({', '.join(task.label_words)}); compose a module trained on that task"
        )
    return head


def _predict_with_head(base: LoadedBase, task: ClassificationTask, batch_size: int) -> list[int]:
    head = task_head(base, task) if base.kind == "encoder" else None
    labels = head.num_labels if head is not None else getattr(base.model.config, "num_labels", 0)
    if labels != len(task.label_words):
        raise WorkbenchError(f"{base.name} has {labels} labels, task {task.name} has {len(task.label_words)}")
    predictions: list[int] = []
    length = min(MAX_LENGTH, getattr(base.model.config, "max_position_embeddings", MAX_LENGTH))
    for start in range(0, len(task.texts), batch_size):
        between_batches()  # a waiting model call runs between two batches
        batch = list(task.texts[start : start + batch_size])
        inputs = base.tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=length)
        outputs = base.model(**inputs.to(base.device))
        if head is None:
            logits = outputs.logits
        elif getattr(outputs, "pooler_output", None) is not None:
            logits = head.logits(outputs.pooler_output)
        else:
            raise WorkbenchError(f"{base.name} has no pooler output for the task head; load a BERT-style encoder")
        predictions.extend(logits.argmax(-1).tolist())
    return predictions


def _predict_by_label_words(base: LoadedBase, task: ClassificationTask, batch_size: int) -> list[int]:
    """Sum of log-probabilities of each label word's tokens after the prompt."""
    tokenizer = base.tokenizer
    word_ids = [tokenizer(" " + word, add_special_tokens=False)["input_ids"] for word in task.label_words]
    scores = torch.zeros(len(task.texts), len(word_ids))
    prompts = [task.template.format(text=text) for text in task.texts]
    for label, ids in enumerate(word_ids):
        for start in range(0, len(prompts), batch_size):
            between_batches()
            batch = prompts[start : start + batch_size]
            scores[start : start + len(batch), label] = _label_logprob(base, batch, ids)
    return scores.argmax(-1).tolist()


def _label_logprob(base: LoadedBase, prompts: list[str], word_ids: list[int]) -> torch.Tensor:
    tokenizer = base.tokenizer
    word = torch.tensor(word_ids, device=base.device)
    if base.kind == "seq2seq":
        inputs = tokenizer(prompts, return_tensors="pt", padding=True, truncation=True, max_length=256).to(base.device)
        start = base.model.config.decoder_start_token_id or 0
        decoder = torch.cat([torch.full((1,), start, device=base.device), word]).expand(len(prompts), -1)
        logits = base.model(**inputs, decoder_input_ids=decoder).logits[:, :-1].float()
        return logits.log_softmax(-1).gather(2, word.expand(len(prompts), -1).unsqueeze(-1)).squeeze(-1).sum(-1).cpu()
    encoded = [tokenizer(p, add_special_tokens=True)["input_ids"][-256:] + word_ids for p in prompts]
    width = max(len(ids) for ids in encoded)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(encoded), width), pad, device=base.device)
    mask = torch.zeros_like(ids)
    for row, sequence in enumerate(encoded):  # left padding keeps the label word at the end
        ids[row, width - len(sequence) :] = torch.tensor(sequence, device=base.device)
        mask[row, width - len(sequence) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = base.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits.float()
    n = len(word_ids)
    predicted = logits[:, -n - 1 : -1].log_softmax(-1)
    return predicted.gather(2, word.expand(len(prompts), -1).unsqueeze(-1)).squeeze(-1).sum(-1).cpu()
