"""Text generation with whatever composition is live: the CLI's `generate` and the UI's chat.

Sampling defaults follow the paper's toxicity protocol: top-k 50, temperature 1.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from workbench.algebra.merging import check_seed
from workbench.errors import WorkbenchError
from workbench.runtime.loading import LoadedBase

MAX_NEW_TOKENS = 1024
MIN_TEMPERATURE = 0.05  # near 0 is greedy decoding, which is its own switch (the CLI's --greedy)
MAX_TEMPERATURE = 2.0
EMPTY_PROMPT = "the prompt is empty (it gives no tokens); write some text to complete"


def with_article(word: str) -> str:
    """'an encoder', 'a causal-lm': messages name a model's kind with the right article."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def encode_prompt(base: LoadedBase, prompt: str, chat: bool,
                  history: Sequence[Mapping[str, str]] = ()) -> dict[str, torch.Tensor]:  # fmt: skip
    """Token ids for `prompt`, through the chat template when `chat` is set. `history` is
    the conversation before it (role and content per message, oldest first); it needs the
    chat template, since a plain completion has no turns."""
    tokenizer = base.tokenizer
    if not prompt.strip():
        raise WorkbenchError(EMPTY_PROMPT)
    if tokenizer is None:
        raise WorkbenchError(f"base {base.name} has no tokenizer, so it cannot generate text")
    if base.kind not in ("causal-lm", "seq2seq"):
        raise WorkbenchError(f"base {base.name} is {with_article(base.kind)} model; generation needs a language model")
    if history and not chat:
        raise WorkbenchError("earlier turns of a conversation need the chat template; send the message on its own")
    if chat:
        if not base.has_chat_template:
            raise WorkbenchError(f"base {base.name} has no chat template; drop --chat")
        messages = [{"role": m["role"], "content": m["content"]} for m in history]
        messages.append({"role": "user", "content": prompt})
        encoded = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    else:
        encoded = tokenizer(prompt, return_tensors="pt")
    if encoded["input_ids"].shape[-1] == 0:
        raise WorkbenchError(EMPTY_PROMPT)
    return {name: tensor.to(base.device) for name, tensor in encoded.items()}


def check_temperature(temperature: object) -> float:
    """A sampling temperature from MIN_TEMPERATURE to MAX_TEMPERATURE, refused in one line otherwise."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
        MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE  # NaN fails both comparisons
    ):
        raise WorkbenchError(
            f"temperature must be a number from {MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}, got {temperature!r}"
        )
    return float(temperature)


def generation_settings(base: LoadedBase, max_new_tokens: int, greedy: bool, seed: int,
                        temperature: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """The keyword arguments of `generate`, the one place they are built (CLI and chat).
    Seeds torch's generator; `temperature` applies when sampling."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or not (
        1 <= max_new_tokens <= MAX_NEW_TOKENS
    ):
        raise WorkbenchError(f"max new tokens must be between 1 and {MAX_NEW_TOKENS}, got {max_new_tokens!r}")
    if not greedy:
        temperature = check_temperature(temperature)
    torch.manual_seed(check_seed(seed))
    pad = base.tokenizer.pad_token_id if base.tokenizer.pad_token_id is not None else base.tokenizer.eos_token_id
    settings: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": pad}
    if greedy:
        settings.update(do_sample=False, top_k=None, top_p=None, temperature=None)
    else:
        settings.update(do_sample=True, top_k=50, top_p=1.0, temperature=temperature)
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


class ReplyStreamer:
    """A `generate` streamer that hands `emit` the whole reply decoded so far after every
    new token, so a reader sees each token rather than each finished word (transformers'
    TextStreamer holds text back to word ends). The prompt (generate's first `put`) is
    skipped; a character cut across two tokens waits for its second half."""

    def __init__(self, tokenizer: Any, emit: Callable[[str], None]) -> None:
        self.tokenizer = tokenizer
        self.emit = emit
        self.ids: list[int] = []
        self.prompt = True
        self.shown = ""

    def put(self, value: torch.Tensor) -> None:
        if self.prompt:  # the prompt, or an encoder-decoder's start token
            self.prompt = False
            return
        self.ids.extend(value.reshape(-1).tolist())
        self._show(final=False)

    def end(self) -> None:
        self._show(final=True)

    def _show(self, final: bool) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text != self.shown and (final or not text.endswith("\ufffd")):
            self.shown = text
            self.emit(text)
