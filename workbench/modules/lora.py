"""LoRA in PEFT's format: W + s·B·A per target, s = α/r (α/√r for rsLoRA).

Exact mode sums the products: Σ cᵢsᵢBᵢAᵢ, written as one LoRA of rank Σrᵢ by stacking
the factors (A on rows, cᵢsᵢBᵢ on columns), so its scaling is 1. Paper mode follows the
paper's released code, which does two different things:
- one LoRA alone (its unlearning script, `-λ*toxic`): only B is scaled, B = cB, so
  ΔW = c·s·BA, linear in c. Here the two modes give the same ΔW.
- two or more (its merge and analogy scripts, eq. 6 and 8): A = Σ|cᵢ|Aᵢ, B = Σ cᵢBᵢ, which
  needs identical targets, ranks and scalings; negation flips B and λ weights scale both
  factors, so ΔW = Σᵢⱼ cᵢ|cⱼ|·s·BᵢAⱼ, cross terms included, where exact mode has Σ cᵢsᵢBᵢAᵢ.
This is the only place the modes differ: (IA)³, RED and sparse vectors combine their
delta forms in both modes. Naive mode, an ablation, scales both factors by cᵢ (see pem.MODES).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Self

import torch

from workbench.errors import IncompatibleError, ModuleFormatError
from workbench.modules.edits import Edits, LowRankDelta
from workbench.modules.heads import PEFT_PREFIX, read_head, split_head
from workbench.modules.pem import PEM, Mode, strip_prefix
from workbench.modules.tensor_io import ConfigFields, read_safetensors, require_file

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class LoraFactor:
    A: torch.Tensor  # (r, in)
    B: torch.Tensor  # (out, r)
    scale: float

    @property
    def rank(self) -> int:
        return self.A.shape[0]

    def unit_scaled(self) -> LoraFactor:
        """The same s·B·A with s folded into B, so its scaling is 1."""
        return self if self.scale == 1.0 else LoraFactor(self.A, self.scale * self.B, 1.0)


@dataclass(frozen=True)
class LoraSettings:
    """A LoRA config's numbers, checked on reading: rank, alpha, their per-target patterns."""

    r: int
    alpha: float
    rank_pattern: dict[str, int]
    alpha_pattern: dict[str, float]
    rslora: bool

    @staticmethod
    def read(fields: ConfigFields) -> LoraSettings:
        return LoraSettings(
            r=fields.positive_int("r", 8),
            alpha=fields.positive_number("lora_alpha", 8),
            rank_pattern=fields.patterns("rank_pattern", lambda name, value: fields.positive_int(name, value=value)),
            alpha_pattern=fields.patterns(
                "alpha_pattern", lambda name, value: fields.positive_number(name, value=value)
            ),
            rslora=fields.flag("use_rslora"),
        )

    def rank(self, target: str) -> int:
        return pattern_value(self.rank_pattern, target, self.r)

    def scale(self, target: str) -> float:
        """α/r, or α/√r for rsLoRA, with the target's own rank and alpha."""
        alpha, rank = pattern_value(self.alpha_pattern, target, self.alpha), self.rank(target)
        return alpha / math.sqrt(rank) if self.rslora else alpha / rank


def check_peft_fields(fields: ConfigFields) -> None:
    """Type-check the fields LoRA and (IA)³ configs share, before anything reads them."""
    fields.text("base_model_name_or_path")
    fields.text("task_type")
    fields.flag("fan_in_fan_out")
    fields.targets("target_modules")
    fields.name_list("modules_to_save")


def pattern_value(patterns: dict[str, Any], target: str, default: Any) -> Any:
    """PEFT's rank_pattern/alpha_pattern lookup (its `get_pattern_key`): a key matches a
    suffix of the module path."""
    from peft.utils.other import get_pattern_key  # importing PEFT takes seconds: only when a config is read

    return patterns.get(get_pattern_key(patterns.keys(), target), default)


def matches_targets(path: str, target_modules: str | list[str] | None) -> bool:
    """Whether PEFT would put an adapter on `path` for this target_modules (its
    `check_target_module_exists`); null and "all-linear" match any path, since the
    Linears they stand for are known only from the model."""
    if target_modules is None or target_modules == "all-linear":
        return True
    from peft.tuners.tuners_utils import check_target_module_exists  # importing PEFT takes seconds

    return bool(check_target_module_exists(SimpleNamespace(target_modules=target_modules), path))


def peft_base_config(config: dict[str, Any]) -> dict[str, Any]:
    """The fields an exported adapter keeps from its source: base model and task type."""
    return {
        "base_model_name_or_path": config.get("base_model_name_or_path"),
        "task_type": config.get("task_type"),
        "inference_mode": True,
        "fan_in_fan_out": bool(config.get("fan_in_fan_out", False)),
    }


class LoraModule(PEM[LoraFactor]):
    pem_type = "lora"
    display_name = "LoRA"
    description = "a low-rank update s·B·A added to each target Linear's weight"
    config_file, weights_file, peft_type = CONFIG, WEIGHTS, "LORA"
    merge_methods = ("knots", "tsv_m", "iso_c")

    @property
    def factors(self) -> dict[str, LoraFactor]:
        """Per target, its A, B and scaling (`parts`, by their LoRA name)."""
        return self.parts

    @classmethod
    def load(cls, folder: Path) -> Self:
        fields = ConfigFields(require_file(folder, CONFIG, "LoRA adapter"))
        config = fields.data
        for flag, what in (("use_dora", "DoRA"), ("lora_bias", "LoRA bias")):
            if fields.flag(flag):
                raise ModuleFormatError(f"{folder}: {what} adapters are not supported; use a plain LoRA")
        check_peft_fields(fields)
        settings = LoraSettings.read(fields)
        path = require_file(folder, WEIGHTS, "LoRA adapter")
        tensors = read_safetensors(path)
        parts: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in tensors.items():
            match = re.fullmatch(r"(.+)\.lora_([AB])(?:\.[^.]+)?\.weight", strip_prefix(key))
            if match is None:
                if "lora_embedding" in key:
                    raise ModuleFormatError(f"{path}: LoRA on embeddings ({key}) is not supported")
                continue  # a modules_to_save head, read below
            parts.setdefault(match.group(1), {})[match.group(2)] = tensor
        if not parts:
            raise ModuleFormatError(f"{path} holds no lora_A/lora_B tensors")
        factors = {}
        for target, pair in parts.items():
            if set(pair) != {"A", "B"}:
                missing = "lora_B" if "A" in pair else "lora_A"
                raise ModuleFormatError(f"{path}: {target} has no {missing} tensor")
            A, B = pair["A"], pair["B"]
            if A.dim() != 2 or B.dim() != 2 or A.shape[0] != B.shape[1]:
                raise ModuleFormatError(f"{path}: {target} has lora_A {tuple(A.shape)} and lora_B {tuple(B.shape)}")
            if not matches_targets(target, config.get("target_modules")):
                raise ModuleFormatError(f"{path}: {target} is not among the config's target_modules")
            rank = settings.rank(target)
            if rank != A.shape[0]:
                raise ModuleFormatError(
                    f"{folder}: the config says r={rank} for {target}, the tensors have {A.shape[0]}"
                )
            factors[target] = LoraFactor(A, B, settings.scale(target))
        head = read_head(folder, split_head(tensors, PEFT_PREFIX, config.get("modules_to_save") or []))
        return cls(factors, config, str(folder), head)

    def save(self, folder: Path) -> None:
        tensors = {}
        for target, factor in self.factors.items():
            tensors[f"base_model.model.{target}.lora_A.weight"] = factor.A
            tensors[f"base_model.model.{target}.lora_B.weight"] = factor.B
        ranks = [factor.rank for factor in self.factors.values()]
        r = max(set(ranks), key=ranks.count)
        config = peft_base_config(self.config) | {
            "peft_type": "LORA",
            "r": r,
            "lora_alpha": r,
            "use_rslora": False,
            "lora_dropout": 0.0,
            "bias": "none",
            "target_modules": list(self.factors),
            "rank_pattern": {t: f.rank for t, f in self.factors.items() if f.rank != r},
            # alpha = scale·r reproduces each target's scaling exactly
            "alpha_pattern": {t: f.scale * f.rank for t, f in self.factors.items() if f.scale * f.rank != r},
            "modules_to_save": self.head.modules if self.head else None,
        }
        self.write_files(folder, config, tensors)

    def unit_scaled(self) -> Self:
        """The same ΔW with every target's scaling 1 (folded into B). Its config's α/r is then 1
        for every target, whether an engine reads alpha_pattern (PEFT) or only lora_alpha and r
        (older vLLM, which ignores alpha_pattern and would scale some targets wrongly)."""
        factors = {target: factor.unit_scaled() for target, factor in self.factors.items()}
        return type(self)(factors, self.config, self.source, self.head)

    @property
    def num_parameters(self) -> int:
        return sum(f.A.numel() + f.B.numel() for f in self.factors.values())

    def expected_shapes(self) -> dict[str, tuple[int | None, ...]]:
        shapes = {}
        for target, factor in self.factors.items():
            out_features, in_features = factor.B.shape[0], factor.A.shape[1]
            shape = (in_features, out_features) if self.layout == "in_out" else (out_features, in_features)
            shapes[f"{target}.weight"] = shape
        return shapes

    def edits(self) -> Edits:
        return Edits(
            deltas={
                f"{target}.weight": [LowRankDelta(factor.B, factor.A, factor.scale, self.layout)]
                for target, factor in self.factors.items()
            }
        )

    def delta_tensors(self) -> list[torch.Tensor]:
        return [factor.scale * factor.B @ factor.A for factor in self.factors.values()]

    @classmethod
    def check_combinable(cls, terms: Sequence[tuple[float, Self]], mode: Mode) -> None:
        super().check_combinable(terms, mode)
        if mode in ("paper", "naive"):
            _check_paper_compatible(terms, mode)

    @classmethod
    def combine(cls, terms: Sequence[tuple[float, Self]], mode: Mode) -> Self:
        cls.check_combinable(terms, mode)
        config = peft_base_config(terms[0][1].config)
        if mode == "naive":  # the ablation: both factors scaled, so ΔW = Σᵢⱼ cᵢcⱼ·s·BᵢAⱼ (c² for one LoRA)
            first = terms[0][1]
            return cls({target: LoraFactor(sum(c * m.factors[target].A for c, m in terms),
                                           sum(c * m.factors[target].B for c, m in terms), ref.scale)
                        for target, ref in first.factors.items()}, config)  # fmt: skip
        if mode == "paper" and len(terms) == 1:  # the paper's unlearning code scales B only
            c, module = terms[0]
            return cls({t: LoraFactor(f.A, c * f.B, f.scale) for t, f in module.factors.items()}, config)
        if mode == "paper":
            first = terms[0][1]
            factors = {
                target: LoraFactor(
                    sum(abs(c) * module.factors[target].A for c, module in terms),
                    sum(c * module.factors[target].B for c, module in terms),
                    ref.scale,
                )
                for target, ref in first.factors.items()
            }
            return cls(factors, config)
        factors = {}
        for target, present in cls.by_target(terms).items():
            A = torch.cat([f.A for _, f in present], dim=0)
            B = torch.cat([c * f.scale * f.B for c, f in present], dim=1)
            factors[target] = LoraFactor(A, B, 1.0)
        return cls(factors, config)


def _check_paper_compatible(terms: Sequence[tuple[float, LoraModule]], mode: Mode) -> None:
    first = terms[0][1]
    for _, module in terms[1:]:
        if set(module.factors) != set(first.factors):
            extra = sorted(set(module.factors) ^ set(first.factors))[0]
            raise IncompatibleError(
                f"{mode} mode needs LoRAs with the same targets, but only some have {extra}; use exact mode"
            )
        for target, factor in module.factors.items():
            ref = first.factors[target]
            if factor.A.shape != ref.A.shape or factor.B.shape != ref.B.shape:
                raise IncompatibleError(
                    f"{mode} mode needs equal shapes, but {target} has rank {ref.rank} in one LoRA "
                    f"and {factor.rank} in another; use exact mode"
                )
            if not math.isclose(factor.scale, ref.scale, rel_tol=1e-6):
                raise IncompatibleError(
                    f"{mode} mode needs equal scalings, but {target} has α/r {ref.scale:g} and {factor.scale:g}; "
                    "use exact mode"
                )
