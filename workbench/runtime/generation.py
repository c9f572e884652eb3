"""Text generation with whatever composition is live: the CLI's `generate` and the UI's chat.

Sampling defaults follow the paper's toxicity protocol: top-k 50, temperature 1.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

from workbench.algebra.merging import check_seed
from workbench.errors import WorkbenchError
from workbench.runtime.loading import LoadedBase

MAX_NEW_TOKENS = 1024
EMPTY_PROMPT = "the prompt is empty (it gives no tokens); write some text to complete"


def encode_prompt(base: LoadedBase, prompt: str, chat: bool) -> dict[str, torch.Tensor]:
    """Token ids for `prompt`, through the chat template when `chat` is set."""
    tokenizer = base.tokenizer
    if not prompt.strip():
        raise WorkbenchError(EMPTY_PROMPT)
    if tokenizer is None:
        raise WorkbenchError(f"base {base.name} has no tokenizer, so it cannot generate text")
    if base.kind not in ("causal-lm", "seq2seq"):
        raise WorkbenchError(f"base {base.name} is a {base.kind} model; generation needs a language model")
    if chat:
        if not base.has_chat_template:
            raise WorkbenchError(f"base {base.name} has no chat template; drop --chat")
        messages = [{"role": "user", "content": prompt}]
        encoded = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    else:
        encoded = tokenizer(prompt, return_tensors="pt")
    if encoded["input_ids"].shape[-1] == 0:
        raise WorkbenchError(EMPTY_PROMPT)
    return {name: tensor.to(base.device) for name, tensor in encoded.items()}


def generation_settings(base: LoadedBase, max_new_tokens: int, greedy: bool, seed: int) -> dict[str, Any]:
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise WorkbenchError(f"max new tokens must be between 1 and {MAX_NEW_TOKENS}, got {max_new_tokens}")
    torch.manual_seed(check_seed(seed))
    pad = base.tokenizer.pad_token_id if base.tokenizer.pad_token_id is not None else base.tokenizer.eos_token_id
    settings: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": pad}
    if greedy:
        settings.update(do_sample=False, top_k=None, top_p=None, temperature=None)
    else:
        settings.update(do_sample=True, top_k=50, top_p=1.0, temperature=1.0)
    return settings


@torch.inference_mode()
def generate_text(
    base: LoadedBase,
    prompt: str,
    max_new_tokens: int = 64,
    greedy: bool = False,
    seed: int = 0,
    chat: bool = False,
    streamer: Any = None,
) -> str:
    """The completion of `prompt` by the model as it is now (call inside `model_for`)."""
    inputs = encode_prompt(base, prompt, chat)
    settings = generation_settings(base, max_new_tokens, greedy, seed)
    output = base.model.generate(**inputs, **settings, streamer=streamer)
    new_tokens = output[0] if base.kind == "seq2seq" else output[0, inputs["input_ids"].shape[1] :]
    return base.tokenizer.decode(new_tokens, skip_special_tokens=True)


class StopOnEvent:
    """A stopping criterion for `generate`: stop every sequence once `event` is set, so a
    reply nobody reads any more (the chat was closed) frees the model at the next token."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)
