"""Tiny random models for trying the CLI in seconds and for the test suite.

They carry no skill. A character-level tokenizer with a chat template makes them usable
by every command (generation, perplexity, label-word scoring).
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def save_char_tokenizer(folder: str | Path, mask: bool = False) -> None:
    """A character-level tokenizer over a 128-token vocabulary, with a chat template; with
    `mask`, a mask token too (in place of `~`), as an encoder's tokenizer has."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"] + (["<mask>"] if mask else [])
    characters = [chr(c) for c in range(32, 127)][: 128 - len(specials)]
    vocab = {token: index for index, token in enumerate(specials + characters)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                        mask_token="<mask>" if mask else None)  # fmt: skip
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
