"""Training recipes for every PEM type: language modelling on texts, or classification.

Given labels, the base loads as a sequence classifier whose task head (`classifier`)
trains in full beside the PEM, and is saved with it (PEFT's `modules_to_save`). Without
labels a decoder learns its texts as a causal LM; an encoder (MiniLM) learns them as a
masked LM (15% of tokens, BERT's 80/10/10 rule), through a masked-LM head that trains
beside the PEM from a seeded start and is not kept: only the PEM composes (the
domain-transfer analogy, paper §4.5, subtracts two such modules trained from the same start).

- LoRA and (IA)³ train through PEFT and save in PEFT's format.
- RED trains only a scaling and a bias vector on each FFN output projection (hooks on
  the projection's output: s ⊙ h + β), and saves RED's format.
- LoTA runs the paper's three phases: calibrate with a short full fine-tune, keep the
  global top-k of |Δ| as the mask, reset to the base and fine-tune only the masked
  weights; the result is a sparse task vector. LoTTO restricts the mask to the
  complement of an earlier task's mask, so the two task vectors are disjoint.

Everything is seeded; progress shows on stderr. The zoo's recipes (`recipes.py`)
call these with their data and settings.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from workbench.catalog.recipes import Recipe
from workbench.catalog.registry import DATA
from workbench.catalog.training_settings import Labels, TrainSettings
from workbench.errors import WorkbenchError
from workbench.eval.tasks import load_csv_task
from workbench.modules import PEM, PEM_TYPES, RedModule, SparseModule, load_module
from workbench.modules.heads import Head, write_head_config
from workbench.modules.red import RED_TARGETS, RedVector
from workbench.modules.sparse import SparseTensor
from workbench.runtime.loading import base_kind_for

HEAD_MODULES = ("classifier", "score")  # what PEFT saves in full for sequence classification


MASKED_SHARE = 0.15  # of tokens a masked LM predicts, as BERT


def batches(
    tokenizer, texts: Sequence[str], settings: TrainSettings, labels: Labels | None = None, masked: bool = False
) -> Iterator[dict[str, torch.Tensor]]:
    """Seeded, endless mini-batches: class ids with `labels`, else the texts themselves
    as language-modelling targets (padding labelled -100), `masked` as a masked LM's."""
    rng = random.Random(settings.seed)
    masking = None
    if masked:
        from transformers import DataCollatorForLanguageModeling

        masking = DataCollatorForLanguageModeling(tokenizer, mlm_probability=MASKED_SHARE, seed=settings.seed)
    order: list[int] = []
    while True:
        if len(order) < settings.batch_size:
            extra = list(range(len(texts)))
            rng.shuffle(extra)
            order += extra
        picked = [order.pop() for _ in range(settings.batch_size)]
        encoded = tokenizer([texts[i] for i in picked], return_tensors="pt", padding=True, truncation=True,
                            max_length=settings.max_length)  # fmt: skip
        if labels is not None:
            yield {**encoded, "labels": torch.tensor([labels.ids[i] for i in picked])}
            continue
        if masking is not None:
            rows = [dict(zip(encoded, values, strict=True)) for values in zip(*encoded.values(), strict=True)]
            yield dict(masking(rows))
            continue
        targets = encoded["input_ids"].clone()
        targets[encoded["attention_mask"] == 0] = -100
        yield {**encoded, "labels": targets}


def _optimise(model, parameters, tokenizer, texts, settings: TrainSettings, description: str, mask=None,
              labels: Labels | None = None) -> float:  # fmt: skip
    """The settings' optimiser over `parameters` for settings.steps; returns the mean loss of the
    last 20 steps. A masked LM's head (`masked_lm_head`) trains too, as a task head does."""
    torch.manual_seed(settings.seed)
    masked = any(type(module).__name__.endswith("ForMaskedLM") for module in model.modules())
    lm_head = masked_lm_head(model) if masked else []
    parameters = [*parameters, *lm_head]
    heads = [*_head_parameters(model).values(), *lm_head]
    head = {id(p) for p in heads} if settings.head_learning_rate is not None else set()
    groups = [{"params": [p for p in parameters if id(p) not in head]}]
    if head:
        groups.append({"params": [p for p in parameters if id(p) in head], "lr": settings.head_learning_rate})
    if settings.optimiser == "RMSprop":
        optimiser = torch.optim.RMSprop(groups, lr=settings.learning_rate)
    else:
        optimiser = torch.optim.AdamW(groups, lr=settings.learning_rate, weight_decay=0.0)
    from transformers import get_scheduler

    schedule = get_scheduler(settings.schedule, optimiser, num_warmup_steps=settings.warmup_steps,
                             num_training_steps=settings.steps)  # fmt: skip
    data = batches(tokenizer, texts, settings, labels, masked and labels is None)
    recent: list[float] = []
    model.train()
    with tqdm(range(settings.steps), desc=description, file=sys.stderr, leave=False) as steps:
        for _ in steps:
            loss = model(**next(data)).loss
            loss.backward()
            if mask is not None:
                for parameter, keep in mask:
                    parameter.grad.mul_(keep)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad(set_to_none=True)
            recent = (recent + [float(loss.detach())])[-20:]
            steps.set_postfix(loss=f"{recent[-1]:.3f}")
    model.eval()
    return sum(recent) / len(recent)


def _pad_token(tokenizer) -> None:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def is_masked_lm(base_folder: Path, labels: Labels | None) -> bool:
    """Whether training on texts alone makes a masked LM: an encoder without labels."""
    return labels is None and base_kind_for(str(base_folder)) == "encoder"


def load_trainable(base_folder: Path, seed: int, labels: Labels | None = None):
    """The base in float32: a causal LM, a masked LM for an encoder, or with `labels` a
    sequence classifier; a new head is initialised from `seed`."""
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    torch.manual_seed(seed)
    if is_masked_lm(base_folder, labels):
        model = AutoModelForMaskedLM.from_pretrained(base_folder, dtype=torch.float32)
    elif labels is None:
        model = AutoModelForCausalLM.from_pretrained(base_folder, dtype=torch.float32)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            base_folder, dtype=torch.float32, num_labels=len(labels.names)
        )
    tokenizer = AutoTokenizer.from_pretrained(base_folder)
    _pad_token(tokenizer)
    return model, tokenizer


def _head_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The task head's parameters (PEFT wraps it: `base_model.model.classifier.modules_to_save...`)."""
    return {name: p for name, p in model.named_parameters()
            if any(part in HEAD_MODULES for part in name.split(".")) and "original_module" not in name}  # fmt: skip


def masked_lm_head(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """A masked LM's head, made trainable: its transform and output bias. The all-MiniLM
    package ships the encoder alone, so these start from the seeded initialisation; the
    decoder is the input embedding (tied) and stays frozen with the base."""
    head = [p for name, p in model.named_parameters() if ".predictions." in f".{name}" and ".decoder." not in name]
    for parameter in head:
        parameter.requires_grad_(True)
    return head


def _head(model: torch.nn.Module, labels: Labels | None) -> Head | None:
    if labels is None:
        return None
    return Head({name: p.detach().clone() for name, p in _head_parameters(model).items()}, labels.names)


def train_peft(pem_type: str, base_folder: Path, texts: Sequence[str], settings: TrainSettings, out: Path,
               labels: Labels | None = None) -> float:  # fmt: skip
    """LoRA or (IA)³ through PEFT; the adapter (and head) are initialised from `settings.initialisation`."""
    from peft import IA3Config, LoraConfig, get_peft_model

    model, tokenizer = load_trainable(base_folder, settings.initialisation, labels)
    task_type = "SEQ_CLS" if labels is not None else None if is_masked_lm(base_folder, labels) else "CAUSAL_LM"
    if pem_type == "lora":
        config = LoraConfig(r=settings.rank, lora_alpha=2 * settings.rank, lora_dropout=0.0,
                            target_modules=list(settings.lora_targets), task_type=task_type)  # fmt: skip
    elif pem_type == "ia3":
        config = IA3Config(target_modules=list(settings.ia3_targets), task_type=task_type,
                           feedforward_modules=list(settings.ia3_feedforward))  # fmt: skip
    else:
        raise WorkbenchError(f"PEFT trains lora and ia3, not {pem_type}")
    torch.manual_seed(settings.initialisation)
    peft_model = get_peft_model(model, config)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    loss = _optimise(peft_model, trainable, tokenizer, texts, settings, f"{pem_type} training", labels=labels)
    peft_model.save_pretrained(out)
    if labels is not None:
        write_head_config(out, Head({}, labels.names))
    return loss


def red_targets(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    pattern = RED_TARGETS.get(model.config.model_type)
    if pattern is None:
        raise WorkbenchError(f"RED has no target for model type {model.config.model_type!r}")
    return {path: module for path, module in model.named_modules() if re.fullmatch(pattern, path)}


def train_red(base_folder: Path, texts: Sequence[str], settings: TrainSettings, out: Path,
              labels: Labels | None = None) -> float:  # fmt: skip
    """Only the edit vectors (and a classifier's head) train: h ← s ⊙ h + β on each FFN output projection."""
    model, tokenizer = load_trainable(base_folder, settings.initialisation, labels)
    model.requires_grad_(False)
    vectors: dict[str, tuple[torch.nn.Parameter, torch.nn.Parameter]] = {}
    for path, module in red_targets(model).items():
        width = module.weight.shape[1] if model.config.model_type == "gpt2" else module.weight.shape[0]
        scaling, bias = torch.nn.Parameter(torch.ones(width)), torch.nn.Parameter(torch.zeros(width))
        module.register_forward_hook(lambda _m, _i, output, s=scaling, b=bias: output * s + b)
        vectors[path] = (scaling, bias)
    parameters = [p for pair in vectors.values() for p in pair] + list(_head_parameters(model).values())
    for parameter in parameters:
        parameter.requires_grad_(True)
    loss = _optimise(model, parameters, tokenizer, texts, settings, "RED training", labels=labels)
    config = {"base_model_name_or_path": str(base_folder), "fan_in_fan_out": model.config.model_type == "gpt2",
              "model_type": model.config.model_type}  # fmt: skip
    result = {path: RedVector(s.detach().clone(), b.detach().clone()) for path, (s, b) in vectors.items()}
    RedModule(result, config, head=_head(model, labels)).save(out)
    return loss


def lota_mask(deltas: dict[str, torch.Tensor], density: float, allowed: dict[str, torch.Tensor] | None = None):
    """The global top-k of |Δ| (k = density · all entries), within `allowed` when given."""
    magnitudes = {
        name: delta.abs() * (allowed[name] if allowed is not None and name in allowed else 1.0)
        for name, delta in deltas.items()
    }
    flat = torch.cat([m.reshape(-1) for m in magnitudes.values()])
    k = max(1, int(density * flat.numel()))
    threshold = torch.topk(flat, k).values[-1]
    return {name: (m >= threshold) & (m > 0) for name, m in magnitudes.items()}


def train_lota(
    base_folder: Path,
    texts: Sequence[str],
    settings: TrainSettings,
    out: Path,
    exclude: SparseModule | None = None,
    labels: Labels | None = None,
) -> float:
    """LoTA (or LoTTO with `exclude`, an earlier task's sparse vector whose weights stay frozen).
    A classifier's head trains densely in both phases and is not part of the mask."""
    model, tokenizer = load_trainable(base_folder, settings.initialisation, labels)
    head = _head_parameters(model)
    parameters = {name: p for name, p in model.named_parameters()
                  if p.dim() == 2 and "embed" not in name and name not in head}  # fmt: skip
    model.requires_grad_(False)
    for parameter in [*parameters.values(), *head.values()]:
        parameter.requires_grad_(True)
    original = {name: p.detach().clone() for name, p in [*parameters.items(), *head.items()]}
    allowed = None
    if exclude is not None:  # LoTTO: calibrate and train only where the earlier task did not
        allowed = {name: torch.ones_like(p, dtype=torch.bool) for name, p in parameters.items()}
        for name, tensor in exclude.tensors.items():
            if name in allowed:
                allowed[name].view(-1)[tensor.indices] = False
    calibration = TrainSettings(**{**vars(settings), "steps": settings.calibration_steps})
    calibration_mask = None if allowed is None else [(parameters[n], allowed[n].float()) for n in parameters]
    trained = [*parameters.values(), *head.values()]
    _optimise(model, trained, tokenizer, texts, calibration, "LoTA calibration", calibration_mask, labels)
    with torch.no_grad():
        deltas = {name: p - original[name] for name, p in parameters.items()}
        mask = lota_mask(deltas, settings.density, allowed)
        for name, parameter in [*parameters.items(), *head.items()]:
            parameter.copy_(original[name])  # phase 3 starts from the base (and the head's init) again
    masked = [(parameters[n], mask[n].float()) for n in parameters]
    loss = _optimise(model, trained, tokenizer, texts, settings, "LoTA sparse training", masked, labels)
    with torch.no_grad():
        tensors = {}
        for name, parameter in parameters.items():
            delta = (parameter - original[name]) * mask[name]
            if mask[name].any():
                indices = torch.nonzero(mask[name].reshape(-1), as_tuple=True)[0]
                tensors[name] = SparseTensor(tuple(delta.shape), indices, delta.reshape(-1)[indices].clone())
    config = {"base_model_name_or_path": str(base_folder), "method": "lotto" if exclude else "lota",
              "density": settings.density}  # fmt: skip
    SparseModule(tensors, config, head=_head(model, labels)).save(out)
    return loss


def recipe_labels(recipe: Recipe) -> Labels | None:
    """Class ids and names for a classifier recipe (the task's sorted label names)."""
    if recipe.task is None:
        return None
    task = load_csv_task(DATA / recipe.data)
    return Labels(task.labels, task.label_words)


@dataclass(frozen=True)
class Trainer:
    """How the zoo trains one PEM type: `name` is how cards and studies call the modules it
    makes (the method: a sparse task vector here is trained by LoTA)."""

    name: str
    run: Callable[[Path, Sequence[str], TrainSettings, Path, Path | None, Labels | None], float]


def _train_sparse(base_folder: Path, texts: Sequence[str], settings: TrainSettings, out: Path,
                  exclude: Path | None, labels: Labels | None) -> float:  # fmt: skip
    earlier = load_module(exclude) if exclude is not None else None
    if earlier is not None and not isinstance(earlier, SparseModule):
        raise WorkbenchError(f"LoTTO needs an earlier sparse task vector, {exclude} is a {earlier.pem_type}")
    return train_lota(base_folder, texts, settings, out, earlier, labels)


# One trainer per PEM type of the registry (tests/test_training.py holds the two to each other).
TRAINERS: dict[str, Trainer] = {
    "lora": Trainer(PEM_TYPES["lora"].display_name, lambda b, t, s, o, _, y: train_peft("lora", b, t, s, o, y)),
    "ia3": Trainer(PEM_TYPES["ia3"].display_name, lambda b, t, s, o, _, y: train_peft("ia3", b, t, s, o, y)),
    "red": Trainer(PEM_TYPES["red"].display_name, lambda b, t, s, o, _, y: train_red(b, t, s, o, y)),
    "sparse": Trainer("LoTA", _train_sparse),
}


def method_name(pem_type: str) -> str:
    """What a card or a study table calls a module of `pem_type` that the zoo trained."""
    return TRAINERS[pem_type].name


def train(pem_type: str, base_folder: Path, texts: Sequence[str], settings: TrainSettings, out: Path,
          exclude: Path | None = None, labels: Labels | None = None) -> tuple[PEM, float]:  # fmt: skip
    """Train one module of `pem_type` (a registry type) and return it, loaded back from `out`,
    with its final loss."""
    if pem_type not in TRAINERS:
        raise WorkbenchError(f"no trainer for PEM type {pem_type!r}; choose {', '.join(TRAINERS)}")
    if not texts:
        raise WorkbenchError("training needs at least one text")
    if labels is not None and len(labels.ids) != len(texts):
        raise WorkbenchError(f"training needs one label per text, got {len(labels.ids)} for {len(texts)}")
    loss = TRAINERS[pem_type].run(base_folder, texts, settings, out, exclude, labels)
    if not math.isfinite(loss):
        raise WorkbenchError(f"training {pem_type} diverged (loss {loss}); lower the learning rate")
    return load_module(out), loss


def continue_lora(base_folder: Path, start: Path, texts: Sequence[str], settings: TrainSettings, out: Path) -> float:
    """Train the LoRA in `start` further on `texts` and save it to `out`; returns the final loss.
    The result starts from `start`'s factors, as the paper's §4.6 continues Alpaca-LoRA on toxic
    instructions, so subtracting `start` leaves exactly what `texts` added. Its rank and targets
    are `start`'s, so they must be the ones `settings` (and the card) name."""
    from peft import PeftModel

    config = json.loads((start / "adapter_config.json").read_text(encoding="utf-8"))
    rank, targets = config.get("r"), config.get("target_modules") or ()
    if rank != settings.rank or set(targets) != set(settings.lora_targets):
        raise WorkbenchError(f"{start} is a rank-{rank} LoRA on {sorted(targets)}; continuing it needs "
                             f"the recipe's rank {settings.rank} on {list(settings.lora_targets)}")  # fmt: skip
    if not texts:
        raise WorkbenchError("training needs at least one text")
    model, tokenizer = load_trainable(base_folder, settings.initialisation)
    peft_model = PeftModel.from_pretrained(model, start, is_trainable=True)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    loss = _optimise(peft_model, trainable, tokenizer, texts, settings, "lora continued training")
    if not math.isfinite(loss):
        raise WorkbenchError(f"continued training diverged (loss {loss}); lower the learning rate")
    peft_model.save_pretrained(out)
    return loss
