"""Task heads carried by classification modules (PEFT's `modules_to_save`).

A module trained for classification carries its task's head: full tensors, not deltas
(`classifier.weight`, `classifier.bias`). Heads are not folded into the backbone; the
algebra combines them per task (see `combine_heads`) and evaluation puts the head of
the task being measured on top of the composed backbone.

A head is stored beside the module's own tensors in its weights file: under
`base_model.model.` in PEFT's format (as PEFT writes `modules_to_save`), under `head.`
in ours. Its label names live in `head_config.json`, so a head is matched to a task by
its labels; without that file it is known only by its number of labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.errors import ModuleFormatError
from workbench.modules.tensor_io import read_json, write_json

HEAD_CONFIG = "head_config.json"
PEFT_PREFIX = "base_model.model."
OUR_PREFIX = "task_head."


@dataclass(frozen=True)
class Head:
    """One task's classification head: its tensors (base-relative names) and label names."""

    tensors: Mapping[str, torch.Tensor]
    labels: tuple[str, ...] | None = None

    @property
    def num_labels(self) -> int:
        weight = next((t for name, t in self.tensors.items() if name.endswith("weight") and t.dim() == 2), None)
        return 0 if weight is None else weight.shape[0]

    @property
    def key(self) -> tuple[str, ...]:
        """What identifies the task: its label names, else its number of labels."""
        return self.labels if self.labels is not None else (f"{self.num_labels} unnamed labels",)

    @property
    def modules(self) -> list[str]:
        """The module paths the head replaces, as PEFT's `modules_to_save` lists them."""
        return sorted({name.rpartition(".")[0] for name in self.tensors})

    def logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """The head on a pooled representation: a single Linear (BERT-style `classifier`)."""
        if len(self.tensors) > 2 or self.num_labels == 0:
            raise ModuleFormatError(
                f"the head {', '.join(self.tensors)} is not one Linear layer; only BERT-style heads are supported"
            )
        weight = next(t for name, t in self.tensors.items() if name.endswith("weight"))
        bias = next((t for name, t in self.tensors.items() if name.endswith("bias")), None)
        return torch.nn.functional.linear(pooled, weight.to(pooled), None if bias is None else bias.to(pooled))


def split_head(
    tensors: Mapping[str, torch.Tensor], prefix: str, modules: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """The head tensors among a weights file's tensors, renamed base-relative: those under
    `prefix` and, when `modules` is given (PEFT's modules_to_save), inside one of them."""
    head = {}
    for key, tensor in tensors.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        if modules is None or any(f".{m}." in f".{name}" for m in modules):
            head[name] = tensor
    return head


def read_head(folder: Path, tensors: Mapping[str, torch.Tensor]) -> Head | None:
    """The head from `tensors` (already split out of the weights file) and its labels."""
    if not tensors:
        return None
    labels = None
    if (folder / HEAD_CONFIG).is_file():
        raw = read_json(folder / HEAD_CONFIG).get("labels")
        if not isinstance(raw, list) or not all(isinstance(label, str) for label in raw):
            raise ModuleFormatError(f"{folder / HEAD_CONFIG}: 'labels' must be a list of label names")
        labels = tuple(raw)
    head = Head(dict(tensors), labels)
    if labels is not None and head.num_labels not in (0, len(labels)):
        raise ModuleFormatError(f"{folder}: the head has {head.num_labels} outputs, {HEAD_CONFIG} names {len(labels)}")
    return head


def head_tensors(head: Head | None, prefix: str) -> dict[str, torch.Tensor]:
    """What `save` adds to the weights file for `head`."""
    return {} if head is None else {prefix + name: tensor for name, tensor in head.tensors.items()}


def write_head_config(folder: Path, head: Head | None) -> None:
    if head is not None and head.labels is not None:
        write_json(folder / HEAD_CONFIG, {"labels": list(head.labels)})


def loaded_heads(heads: Sequence[Head]) -> dict[tuple[str, ...], Head]:
    """The heads of a set of loaded modules with no composition over them: each task's
    heads averaged. It is what the bare base (or a module composed alone) is read through
    for a task that no module in the composition carries."""
    counts: dict[tuple[str, ...], int] = {}
    for head in heads:
        counts[head.key] = counts.get(head.key, 0) + 1
    return combine_heads([(1.0 / counts[head.key], head) for head in heads])


def combine_heads(terms: Sequence[tuple[float, Head]]) -> dict[tuple[str, ...], Head]:
    """One head per task. Modules of the same task combine their heads linearly with the
    expression's coefficients (the reference code's optional head merge); a task with a
    single module keeps that module's head as it is, so in a multi-task composition each
    task is read out through its own head."""
    by_task: dict[tuple[str, ...], list[tuple[float, Head]]] = {}
    for coefficient, head in terms:
        by_task.setdefault(head.key, []).append((coefficient, head))
    combined = {}
    for key, group in by_task.items():
        if len(group) == 1:
            combined[key] = group[0][1]
            continue
        names = set(group[0][1].tensors)
        if any(set(head.tensors) != names for _, head in group):
            raise ModuleFormatError(f"the heads for task {', '.join(key)} hold different tensors; they cannot combine")
        tensors = {name: sum(c * head.tensors[name] for c, head in group) for name in sorted(names)}
        combined[key] = Head(tensors, group[0][1].labels)
    return combined
