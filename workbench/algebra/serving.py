"""Serving engines' limits on LoRA adapters, and the check of an export against them.

An engine refuses an adapter when it starts serving it, long after the export: vLLM
takes only ranks up to a `max_lora_rank` chosen from a few values, and no DoRA, LoRA
bias or `modules_to_save`. Checking the adapter config the export wrote against the
same rules says so at export time, with the flags to serve it. `ENGINES` holds every
engine's limits in one table: another engine is one more entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workbench.algebra.compose import Composition, export_kind, export_label
from workbench.errors import IncompatibleError


@dataclass(frozen=True)
class Engine:
    """What one serving engine accepts in a PEFT LoRA adapter config."""

    title: str
    rank_buckets: tuple[int, ...]  # the values its rank cap may take, ascending
    rank_flag: str  # how to pass the cap, formatted with {rank}
    refused_flags: Mapping[str, str]  # config field that must be false or empty -> what it is
    command: str  # how to serve an adapter, formatted with {base}, {name}, {folder} and {flags}


ENGINES: dict[str, Engine] = {
    "vllm": Engine(
        title="vLLM",
        rank_buckets=(1, 8, 16, 32, 64, 128, 256, 320, 512),  # vllm.config.LoRAConfig.max_lora_rank
        rank_flag="--enable-lora --max-lora-rank {rank}",
        refused_flags={"use_dora": "DoRA (use_dora)", "lora_bias": "LoRA bias (lora_bias)",
                       "modules_to_save": "a task head or other full modules (modules_to_save)"},  # fmt: skip
        command="vllm serve {base} {flags} --lora-modules {name}={folder}",
    ),
}


@dataclass(frozen=True)
class ServingPlan:
    """How to serve an export: its rank, the engine's smallest rank cap that holds it, the flags."""

    engine: Engine
    rank: int
    bucket: int

    @property
    def flags(self) -> str:
        return self.engine.rank_flag.format(rank=self.bucket)

    def command(self, base: str, name: str, folder: str) -> str:
        """The shell command that serves the adapter at `folder` under `name` on `base`."""
        return self.engine.command.format(base=base, name=name, folder=folder, flags=self.flags)

    def reason(self, truncated: bool = False) -> str:
        """Why the cap is what it is. The engine reserves the whole cap for any adapter, so a
        truncation to a rank below the cap could have kept more of ΔW at no cost: `truncated` says so."""
        title = self.engine.title
        if self.rank == self.bucket:
            return f"rank {self.rank} is one of {title}'s max_lora_rank values"
        why = f"rank {self.rank} is not one of {title}'s max_lora_rank values; the next one up is {self.bucket}"
        if truncated:
            why += f", so truncating to rank {self.bucket} would keep more of ΔW at the same serving cost"
        return why


def engine_named(name: str) -> Engine:
    engine = ENGINES.get(name)
    if engine is None:
        raise IncompatibleError(f"unknown serving engine {name!r}; known: {', '.join(ENGINES)}")
    return engine


def adapter_rank(config: Mapping[str, Any]) -> int:
    """The largest rank a PEFT LoRA config gives any target: what an engine's cap must hold."""
    return max([int(config.get("r", 8)), *(int(rank) for rank in (config.get("rank_pattern") or {}).values())])


def require_lora(engine_name: str, composition: Composition) -> Engine:
    """The engine, once `composition` is known to export as a LoRA adapter, the only kind
    the engines here serve: checked before anything is written."""
    engine = engine_named(engine_name)
    if export_kind(composition) != "lora":
        raise IncompatibleError(f"{engine.title} serves LoRA adapters only, and this composition exports as "
                                f"{export_label(composition)}; write the merged model instead (--merged), "
                                f"which {engine.title} serves as a plain model")  # fmt: skip
    return engine


def plan_serving(engine_name: str, composition: Composition, config: Mapping[str, Any]) -> ServingPlan:
    """Check the export of `composition`, whose written adapter config is `config`, against
    the engine's limits. Raises IncompatibleError with one line naming the first limit it
    breaks and what to do instead."""
    engine = require_lora(engine_name, composition)
    for field, what in engine.refused_flags.items():
        if config.get(field):
            raise IncompatibleError(f"{engine.title} does not serve LoRA adapters with {what}: this one has "
                                    f"{field}={config[field]}; serve it with PEFT instead")  # fmt: skip
    if config.get("bias", "none") != "none":
        raise IncompatibleError(f"{engine.title} does not serve LoRA adapters with trained biases "
                                f"(bias={config['bias']!r}); serve it with PEFT")  # fmt: skip
    rank = adapter_rank(config)
    largest = engine.rank_buckets[-1]
    if rank > largest:
        raise IncompatibleError(f"the adapter's rank {rank} is above {engine.title}'s largest max_lora_rank, "
                                f"{largest}; truncate it to rank {largest} or less (--max-rank {largest})")  # fmt: skip
    return ServingPlan(engine, rank, next(bucket for bucket in engine.rank_buckets if bucket >= rank))

