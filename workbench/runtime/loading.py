"""Loading base models: once per (id, dtype, device), with their tokenizer and head.

A base id is a zoo name, a local folder, or a hub id. A hub id reaches the network
only because the user typed it; offline it fails with one line. `trust_remote_code`
is never enabled.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError

from workbench.catalog.bases import ZOO_BASES, zoo_base_source
from workbench.errors import WorkbenchError
from workbench.modules import BaseShapes
from workbench.modules.heads import Head
from workbench.modules.tensor_io import first_non_finite
from workbench.runtime.fairness import FairLock

Kind = Literal["causal-lm", "seq2seq", "classifier", "encoder"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def choose_device(device: str = "auto") -> torch.device:
    """auto, cpu, cuda or cuda:N (mps where there is one). Anything else is refused in one
    line: torch knows device names that cannot run a model here (tpu, xla) or hold no
    numbers at all (meta)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" or (device == "mps" and torch.backends.mps.is_available()):
        return torch.device(device)
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if match is None:
        raise WorkbenchError(f"unknown device {device!r}; choose auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise WorkbenchError(f"device {device} was asked for, but no CUDA GPU is available; use cpu")
    count = torch.cuda.device_count()
    if match.group(1) is not None and int(match.group(1)) >= count:
        raise WorkbenchError(
            f"device {device} does not exist: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
        )
    return torch.device(device)


def choose_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """float32 on the CPU (half-precision matmuls are slow there); on a GPU as asked."""
    if dtype == "auto":
        return torch.float32
    if dtype not in DTYPES:
        raise WorkbenchError(f"unknown dtype {dtype!r}; choose one of auto, {', '.join(DTYPES)}")
    if device.type == "cpu" and dtype != "float32":
        raise WorkbenchError(f"dtype {dtype} is for GPUs; on the CPU use float32")
    return DTYPES[dtype]


@dataclass
class LoadedBase:
    """A base model in memory, with the original tensors that every composition folds onto.

    `base_tensors` holds references to the parameters' original storages (no copy):
    activation swaps storages and never writes into these, so they stay the true base.
    `lock` serialises model calls: one composition is live at a time. `heads` are the live
    composition's task heads, by task (label names), for an encoder base without its own.
    """

    name: str
    model: torch.nn.Module
    tokenizer: Any
    kind: Kind
    device: torch.device
    dtype: torch.dtype
    base_tensors: dict[str, torch.Tensor]
    shapes: BaseShapes
    lock: FairLock = field(default_factory=FairLock)
    heads: Mapping[tuple[str, ...], Head] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.name, str(self.dtype), str(self.device))

    def lookup(self, name: str) -> torch.Tensor | None:
        return self.base_tensors.get(name)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))


def resolve_folder(base: str) -> tuple[str | Path, str]:
    """(what from_pretrained gets, a display name) for a zoo name, folder or hub id."""
    if base in ZOO_BASES:
        return zoo_base_source(base), base
    path = Path(base).expanduser()
    if path.is_dir():
        return path, str(path)
    if path.exists() or base.startswith((".", "/", "~")) or base.count("/") > 1:
        raise WorkbenchError(f"base model folder {base!r} does not exist")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        zoo = ", ".join(ZOO_BASES)
        raise WorkbenchError(f"{base!r} is neither a zoo base ({zoo}) nor a local folder, and the hub is offline")
    return base, base


def model_kind(config: Any) -> Kind:
    architectures = " ".join(getattr(config, "architectures", None) or [])
    if "ForSequenceClassification" in architectures:
        return "classifier"
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    if "ForCausalLM" in architectures or "LMHeadModel" in architectures:
        return "causal-lm"
    return "encoder"


def _model_class(kind: Kind) -> Any:
    import transformers

    return {
        "causal-lm": transformers.AutoModelForCausalLM,
        "seq2seq": transformers.AutoModelForSeq2SeqLM,
        "classifier": transformers.AutoModelForSequenceClassification,
        "encoder": transformers.AutoModel,
    }[kind]


def load_base_model(base: str, dtype: str = "auto", device: str = "auto") -> LoadedBase:
    """Load `base` for inference. Raises WorkbenchError with one line for anything a
    user can fix (missing folder, offline hub, unknown model type)."""
    from transformers import AutoConfig, AutoTokenizer

    source, name = resolve_folder(base)
    target_device = choose_device(device)
    torch_dtype = choose_dtype(dtype, target_device)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
        kind = model_kind(config)
        model = _model_class(kind).from_pretrained(source, dtype=torch_dtype, trust_remote_code=False)
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
        raise _not_loaded(name, exc) from None
    tokenizer = None  # a folder without tokenizer files has none; generation then says so
    if not isinstance(source, Path) or any((source / f).is_file() for f in TOKENIZER_FILES):
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
        except (OSError, ValueError, TypeError):
            tokenizer = None
    model.to(target_device).eval()
    model.requires_grad_(False)
    tensors = {n: p.data for n, p in model.named_parameters(remove_duplicate=False)}
    broken = first_non_finite(tensors)  # such a base generates garbage with no error at all
    if broken is not None:
        raise WorkbenchError(f"base model {name!r}: parameter {broken} holds NaN or Inf values; its weights are broken")
    model_type = getattr(config, "model_type", None)
    shapes = BaseShapes.from_named_shapes(name, {n: tuple(t.shape) for n, t in tensors.items()}, model_type)
    return LoadedBase(name, model, tokenizer, kind, target_device, torch_dtype, tensors, shapes)


def base_kind_for(base: str) -> Kind:
    """The kind of `base` (zoo name, folder or hub id) from its config alone, no weights:
    what an export's record needs (its task type) when no model was loaded."""
    from transformers import AutoConfig

    source, name = resolve_folder(base)
    try:
        return model_kind(AutoConfig.from_pretrained(source, trust_remote_code=False))
    except (OSError, ValueError, KeyError) as exc:
        raise _not_loaded(name, exc) from None


def _not_loaded(name: str, exc: Exception) -> WorkbenchError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return WorkbenchError(f"could not load base model {name!r}: {first}")


def base_shapes_for(base: str) -> BaseShapes:
    """Parameter shapes of `base` (zoo name, folder or hub id) without loading its weights."""
    source, name = resolve_folder(base)
    if isinstance(source, Path):
        shapes = BaseShapes.from_folder(source)
        return BaseShapes(name=name, shapes=shapes.shapes, model_type=shapes.model_type)
    return BaseShapes.from_hub(source)
