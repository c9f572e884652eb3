"""Perplexity with a strided sliding window, every token scored exactly once.

Each window is the model's context limit (or less); tokens that overlap the previous
window are labelled -100, so they give context without being counted twice.
"""

from __future__ import annotations

import math

import torch

from workbench.errors import WorkbenchError
from workbench.runtime.fairness import between_batches
from workbench.runtime.generation import with_article
from workbench.runtime.loading import LoadedBase


def context_limit(base: LoadedBase) -> int:
    config = base.model.config
    for attribute in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1024


@torch.inference_mode()
def perplexity(base: LoadedBase, text: str, window: int | None = None, stride: int | None = None) -> float:
    """exp(mean negative log-likelihood) of `text`'s tokens under the model as it is now."""
    if base.kind != "causal-lm":
        kind = with_article(base.kind)
        raise WorkbenchError(f"perplexity needs a causal language model; {base.name} is {kind} model")
    if base.tokenizer is None:
        raise WorkbenchError(f"base {base.name} has no tokenizer")
    ids = base.tokenizer(text, return_tensors="pt")["input_ids"].to(base.device)
    total_tokens = ids.shape[1]
    if total_tokens < 2:
        raise WorkbenchError("the perplexity text needs at least two tokens")
    window = min(window or context_limit(base), context_limit(base))
    stride = stride or min(512, window // 2)
    if not 0 < stride <= window:
        raise WorkbenchError(f"the stride must be in 1..{window}, got {stride}")
    nll_sum, counted, previous_end = 0.0, 0, 0
    for start in range(0, total_tokens, stride):
        between_batches()  # a waiting model call runs between two windows
        end = min(start + window, total_tokens)
        chunk = ids[:, start:end]
        labels = chunk.clone()
        labels[:, : previous_end - start] = -100  # already scored in the previous window
        logits = base.model(chunk).logits[:, :-1].float()
        targets = labels[:, 1:]
        mask = targets != -100
        if mask.any():
            losses = torch.nn.functional.cross_entropy(logits[mask], targets[mask], reduction="sum")
            nll_sum += float(losses)
            counted += int(mask.sum())
        previous_end = end
        if end == total_tokens:
            break
    return math.exp(nll_sum / counted)
