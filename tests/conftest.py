"""Tiny random base models (GPT-2, LLaMA, BERT, T5; hidden size 32, 2 layers) and PEMs
made for them with PEFT itself, in a temp dir built once per test session.

Adapters are perturbed away from their init (B ≠ 0, l ≠ 1), so a test that composes
them can tell a right answer from a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import transformers  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
)

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

from workbench.modules.red import RED_TARGETS, RedModule, RedVector  # noqa: E402
from workbench.modules.sparse import SparseModule, SparseTensor  # noqa: E402
from workbench.tiny import save_char_tokenizer  # noqa: E402


@dataclass(frozen=True)
class BaseKind:
    name: str
    make: Callable[[], torch.nn.Module]
    lora_targets: list[str]
    ia3_targets: list[str]
    ia3_feedforward: list[str]
    fan_in_fan_out: bool = False


def _llama() -> torch.nn.Module:
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config)


def _gpt2() -> torch.nn.Module:
    return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=128, n_positions=64, n_inner=64))


def _bert() -> torch.nn.Module:
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        vocab_size=128,
        max_position_embeddings=64,
    )
    return BertModel(config)


def _t5() -> torch.nn.Module:
    config = T5Config(d_model=32, d_ff=64, d_kv=8, num_layers=2, num_heads=4, vocab_size=128, decoder_start_token_id=0)
    return T5ForConditionalGeneration(config)


KINDS = {
    "llama": BaseKind(
        "llama", _llama, ["q_proj", "v_proj", "down_proj"], ["k_proj", "v_proj", "down_proj"], ["down_proj"]
    ),
    "gpt2": BaseKind(
        "gpt2", _gpt2, ["c_attn", "c_proj"], ["c_attn", "mlp.c_proj"], ["mlp.c_proj"], fan_in_fan_out=True
    ),
    "bert": BaseKind("bert", _bert, ["query", "value", "dense"], ["key", "value", "output.dense"], ["output.dense"]),
    "t5": BaseKind("t5", _t5, ["q", "v", "wo"], ["k", "v", "wo"], ["wo"]),
}


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workbench")


@pytest.fixture(scope="session")
def base_dirs(workdir: Path) -> dict[str, Path]:
    """Each kind's tiny model, saved once with a fixed seed."""
    dirs = {}
    for name, kind in KINDS.items():
        torch.manual_seed(0)
        model = kind.make()
        perturb(model, 0, "bias", 0.0, 0.1)  # random init leaves biases at zero, which hides bias bugs
        folder = workdir / "bases" / name
        model.save_pretrained(folder)
        if name in ("llama", "gpt2", "t5"):
            save_char_tokenizer(folder)
        dirs[name] = folder
    return dirs


def load_base(base_dirs: dict[str, Path], kind: str) -> torch.nn.Module:
    model_class = type(KINDS[kind].make())
    model = model_class.from_pretrained(base_dirs[kind])
    return model.eval()


def model_inputs(kind: str, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 128, (2, 7), generator=generator)
    if kind == "t5":
        return {"input_ids": ids, "decoder_input_ids": torch.randint(1, 128, (2, 5), generator=generator)}
    return {"input_ids": ids}


@torch.no_grad()
def outputs(model: torch.nn.Module, kind: str) -> torch.Tensor:
    result = model(**model_inputs(kind))
    return result.logits if hasattr(result, "logits") else result.last_hidden_state


def perturb(model: torch.nn.Module, seed: int, keyword: str, around: float, spread: float) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if keyword in name:
                parameter.copy_(around + spread * torch.randn(parameter.shape, generator=generator))


def make_lora(base_dirs, workdir, kind: str, name: str, seed: int, r: int = 4, alpha: float = 8, **extra) -> Path:
    from peft import LoraConfig, get_peft_model

    model = load_base(base_dirs, kind)
    spec = KINDS[kind]
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        target_modules=spec.lora_targets,
        fan_in_fan_out=spec.fan_in_fan_out,
        lora_dropout=0.0,
        **extra,
    )
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, config)
    perturb(peft_model, seed, "lora_B", 0.0, 0.3)
    perturb(peft_model, seed + 1000, "lora_A", 0.0, 0.3)
    folder = workdir / "adapters" / kind / name
    peft_model.save_pretrained(folder)
    return folder


def make_ia3(base_dirs, workdir, kind: str, name: str, seed: int) -> Path:
    from peft import IA3Config, get_peft_model

    model = load_base(base_dirs, kind)
    spec = KINDS[kind]
    config = IA3Config(
        target_modules=spec.ia3_targets, feedforward_modules=spec.ia3_feedforward, fan_in_fan_out=spec.fan_in_fan_out
    )
    peft_model = get_peft_model(model, config)
    perturb(peft_model, seed, "ia3_l", 1.0, 0.3)
    folder = workdir / "adapters" / kind / name
    peft_model.save_pretrained(folder)
    return folder


def make_red(base_dirs, workdir, kind: str, name: str, seed: int) -> Path:
    import re

    model = load_base(base_dirs, kind)
    generator = torch.Generator().manual_seed(seed)
    pattern = RED_TARGETS[model.config.model_type]
    vectors = {}
    for path, module in model.named_modules():
        if re.fullmatch(pattern, path):
            out_features = module.weight.shape[1] if kind == "gpt2" else module.weight.shape[0]
            vectors[path] = RedVector(
                1 + 0.3 * torch.randn(out_features, generator=generator),
                0.3 * torch.randn(out_features, generator=generator),
            )
    config = {"base_model_name_or_path": str(base_dirs[kind]), "fan_in_fan_out": kind == "gpt2"}
    folder = workdir / "adapters" / kind / name
    RedModule(vectors, config).save(folder)
    return folder


def make_sparse(base_dirs, workdir, kind: str, name: str, seed: int, density: float = 0.2) -> Path:
    model = load_base(base_dirs, kind)
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for parameter_name, parameter in list(model.named_parameters())[:6]:
        dense = 0.3 * torch.randn(parameter.shape, generator=generator)
        dense = dense * (torch.rand(parameter.shape, generator=generator) < density)
        tensors[parameter_name] = SparseTensor.from_dense(dense)
    folder = workdir / "adapters" / kind / name
    SparseModule(tensors, {"base_model_name_or_path": str(base_dirs[kind]), "density": density}).save(folder)
    return folder


@pytest.fixture(scope="session")
def adapters(base_dirs, workdir) -> dict[str, dict[str, Path]]:
    """Per kind: two LoRAs, an rsLoRA with a rank pattern, two (IA)³, two RED, two sparse."""
    made: dict[str, dict[str, Path]] = {}
    for kind in KINDS:
        made[kind] = {
            "lora_a": make_lora(base_dirs, workdir, kind, "lora_a", seed=1),
            "lora_b": make_lora(base_dirs, workdir, kind, "lora_b", seed=2),
            "lora_c": make_lora(
                base_dirs,
                workdir,
                kind,
                "lora_c",
                seed=3,
                r=2,
                alpha=3,
                use_rslora=True,
                rank_pattern={KINDS[kind].lora_targets[0]: 6},
                alpha_pattern={KINDS[kind].lora_targets[0]: 5},
            ),
            "ia3_a": make_ia3(base_dirs, workdir, kind, "ia3_a", seed=4),
            "ia3_b": make_ia3(base_dirs, workdir, kind, "ia3_b", seed=5),
            "red_a": make_red(base_dirs, workdir, kind, "red_a", seed=6),
            "red_b": make_red(base_dirs, workdir, kind, "red_b", seed=7),
            "sparse_a": make_sparse(base_dirs, workdir, kind, "sparse_a", seed=8),
            "sparse_b": make_sparse(base_dirs, workdir, kind, "sparse_b", seed=9),
        }
    return made


@pytest.fixture
def tiny_controller(base_dirs, adapters, monkeypatch) -> Callable[..., object]:
    """Makes the UI's Controller with one session on the tiny LLaMA holding two LoRAs, `a`
    and `toxic`, as the tabs' tests need it."""
    from workbench.ui.controller import Controller

    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", str(base_dirs["llama"].parent.parent))

    def make(session: str = "s") -> Controller:
        controller = Controller()
        controller.start(session, base=str(base_dirs["llama"]))
        controller.add_adapter(session, "a", str(adapters["llama"]["lora_a"]))
        controller.add_adapter(session, "toxic", str(adapters["llama"]["lora_b"]))
        return controller

    return make
