"""What an export writes beside the weights: a model card (README.md), a machine-readable
composition.json, and the base model and task type in every config it wrote.

`save_composition` writes the weights; `write_export_record` adds the rest into the same
folder. A composition folder already holds composition.json (what `load_composition`
reads): its fields are kept and the record's are added, so it still reloads.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.algebra.compose import COMPOSITION_FILE, Composition
from workbench.algebra.truncate import Truncation
from workbench.modules.pem import PEM
from workbench.modules.registry import PEM_TYPES
from workbench.modules.tensor_io import read_json, write_json

CARD_FILE = "README.md"
PEFT_CONFIG = "adapter_config.json"  # PEFT's own file, which its types (LoRA, (IA)³) are written in


def _type_kind(cls: type[PEM]) -> tuple[str, str]:
    """What an export of one type is, and its files."""
    own = f"{cls.display_name} module in the workbench's own format"
    name = f"PEFT {cls.display_name} adapter" if cls.peft_type else own
    return name, f"{cls.config_file}, {cls.weights_file}"


# What an export can be: one PEM type, a composition folder, or a full model (name, files).
KINDS = {
    **{pem_type: _type_kind(cls) for pem_type, cls in PEM_TYPES.items()},
    "composition": ("composition folder (each module in its own format; reloads to the same composition)",
                    "composition.json, modules/<name>/ for each module"),
    "merged": ("full model with the composition merged into its weights (transformers loads it, no PEFT)",
               "config.json, model.safetensors, tokenizer files, generation_config.json where the base has one"),
}  # fmt: skip
PEFT_KINDS = tuple(pem_type for pem_type, cls in PEM_TYPES.items() if cls.peft_type)
MODEL_CLASSES = {"CAUSAL_LM": "AutoModelForCausalLM", "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
                 "SEQ_CLS": "AutoModelForSequenceClassification"}  # fmt: skip
# PEFT's task types by the kind of base the composition ran on (peft.TaskType)
TASK_TYPES = {"causal-lm": "CAUSAL_LM", "seq2seq": "SEQ_2_SEQ_LM", "classifier": "SEQ_CLS"}


def task_type_for(base_kind: str, has_heads: bool) -> str:
    """PEFT's task_type for a composition on a base of `base_kind`: an encoder with a task
    head is a sequence classifier, without one a feature extractor."""
    if base_kind in TASK_TYPES:
        return TASK_TYPES[base_kind]
    return "SEQ_CLS" if has_heads else "FEATURE_EXTRACTION"


def installed_version() -> str:
    """The workbench's version as installed, for the record ("unknown" when run from a bare checkout)."""
    try:
        return importlib.metadata.version("pem-workbench")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def kind_name(kind: str) -> str:
    return KINDS.get(kind, (kind, ""))[0]


def is_hub_id(name: str) -> bool:
    """Whether `name` reads as a hub repository id (owner/name), not a path."""
    parts = name.split("/")
    return (len(parts) == 2 and all(parts) and not name.startswith((".", "~"))
            and all(c.isascii() and (c.isalnum() or c in "-_./") for c in name))  # fmt: skip


@dataclass(frozen=True)
class ExportRecord:
    """Everything the card and composition.json say about one export."""

    kind: str  # what save_composition wrote: a PEM type or "composition"
    expression: str
    canonical: str
    values: dict[str, float]
    mode: str
    merge: dict[str, Any]
    base: str  # the base's hub id where there is one, else what the session loaded
    base_loaded_as: str
    task_type: str
    coefficients: dict[str, float]
    modules: dict[str, dict[str, str]]  # name -> {"source", "fingerprint", "type"}
    version: str = ""
    readout: str = ""
    truncation: Truncation | None = None  # when the export was cut to a rank limit
    serving: str = ""  # the command that serves it on an engine, when one was checked
    serving_note: str = ""  # why that command's settings

    @classmethod
    def of(cls, kind: str, composition: Composition, modules: dict[str, PEM], *, base: str, base_loaded_as: str,
           base_kind: str, sources: dict[str, str], version: str = "", readout: str = "",
           truncation: Truncation | None = None, serving: str = "",
           serving_note: str = "") -> ExportRecord:  # fmt: skip
        combination = composition.combination
        used = {name: modules[name] for name in combination.modules}
        return cls(
            kind=kind,
            expression=combination.source or combination.canonical,
            canonical=combination.canonical,
            values=dict(composition.values),
            mode=composition.mode,
            merge={"method": composition.merge.method, "density": composition.merge.density,
                   "seed": composition.merge.seed},  # fmt: skip
            base=base,
            base_loaded_as=base_loaded_as,
            task_type=task_type_for(base_kind, bool(composition.heads)),
            coefficients={name: float(composition.coefficients[name]) for name in used},
            modules={name: {"source": sources.get(name, module.source), "fingerprint": module.fingerprint,
                            "type": module.pem_type} for name, module in used.items()},  # fmt: skip
            version=version,
            readout=readout,
            truncation=truncation,
            serving=serving,
            serving_note=serving_note,
        )

    def as_json(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.truncation is not None:
            cut = self.truncation
            extra["truncation"] = {"max_rank": cut.rank, "from_rank": cut.from_rank, "rank": cut.to_rank,
                                   "truncated": cut.truncated,
                                   "relative_frobenius_error": cut.overall, "worst_target": cut.worst_target,
                                   "worst_target_error": cut.worst}  # fmt: skip
        if self.serving:
            extra["serving"] = {"command": self.serving, "note": self.serving_note}
        return extra | {
            "format": self.kind,
            "expression": self.expression,
            "canonical": self.canonical,
            "values": self.values,
            "mode": self.mode,
            "merge": self.merge,
            "base": self.base,
            "base_loaded_as": self.base_loaded_as,
            "task_type": self.task_type,
            "coefficients": self.coefficients,
            "modules": self.modules,
            "readout": self.readout,
            "workbench_version": self.version,
        }

    def summary(self) -> str:
        """The Markdown table of what the export holds: the preview and the card share it."""
        values = ", ".join(f"{k}={v:g}" for k, v in sorted(self.values.items())) or "none"
        base = f"`{self.base}`" + (f" (loaded as `{self.base_loaded_as}`)" if self.base_loaded_as != self.base else "")
        rows = [("kind", f"{kind_name(self.kind)}: {KINDS.get(self.kind, ('', ''))[1]}"),
                ("expression", f"`{self.expression}`"), ("canonical form", f"`{self.canonical}`"),
                ("values", values), ("mode", self.mode), ("base model", base),
                ("task type", self.task_type)]  # fmt: skip
        if self.merge.get("method", "linear") != "linear":
            rows.append(("merge", ", ".join(f"{k}={v}" for k, v in self.merge.items())))
        lines = ["| field | value |", "|---|---|", *(f"| {key} | {_cell(value)} |" for key, value in rows), "",
                 "| module | type | coefficient | source | fingerprint |", "|---|---|---|---|---|"]  # fmt: skip
        for name, module in self.modules.items():
            lines.append(f"| {name} | {module['type']} | {self.coefficients[name]:g} | {_cell(module['source'])} "
                         f"| `{module['fingerprint']}` |")  # fmt: skip
        return "\n".join(lines)

    def card(self) -> str:
        """The model card: Hub metadata, the summary, the readout measured at export, and how to load it."""
        front = ["---"]
        if is_hub_id(self.base):
            front.append(f"base_model: {self.base}")
        if self.kind in PEFT_KINDS:
            front.append("library_name: peft")
        elif self.kind == "merged":
            front.append("library_name: transformers")
        front += ["tags:", "- pem-workbench", f"- {self.kind}", "---", ""]
        values = ", ".join(f"{k}={v:g}" for k, v in sorted(self.values.items()))
        title = f"# `{self.canonical}`" + (f" at {values}" if values else "")
        fence = "`" * max(3, _longest_backtick_run(self.readout) + 1)
        body = [title, "", f"Composed with the PEM Workbench {self.version}: a {kind_name(self.kind)}.", "",
                self.summary(), "", *self._truncation(), "## Readout at export", "", fence, self.readout or "(none)",
                fence, "", "## Loading", "", "```python", *self._loading(), "```", "", *self._serving()]  # fmt: skip
        return "\n".join(front + body)

    def _truncation(self) -> list[str]:
        cut = self.truncation
        if cut is None:
            return []
        if not cut.truncated:
            return ["## Rank truncation", "", f"Rank {cut.from_rank} is within the limit of {cut.rank}: written as "
                    "composed, no truncation needed.", ""]  # fmt: skip
        limit = f" (limit {cut.rank})" if cut.to_rank != cut.rank else ""
        return ["## Rank truncation", "",
                f"Cut from rank {cut.from_rank} to rank {cut.to_rank}{limit} by an SVD of each target's ΔW, keeping "
                "its top singular triplets: the closest LoRA of that rank in Frobenius norm.", "",
                "| relative Frobenius error ‖ΔW − ΔW_r‖ / ‖ΔW‖ | value |", "|---|---|",
                f"| over all targets together | {cut.overall:.4g} |",
                f"| worst target, `{cut.worst_target}` | {cut.worst:.4g} |", ""]  # fmt: skip

    def _serving(self) -> list[str]:
        if not self.serving:
            return []
        note = self.serving_note[:1].upper() + self.serving_note[1:]
        return ["## Serving", "", "```bash", self.serving, "```", "", f"{note}.", ""]

    def _loading(self) -> list[str]:
        if self.kind in PEFT_KINDS:
            model_class = MODEL_CLASSES.get(self.task_type, "AutoModel")
            return [f"from transformers import {model_class}", "from peft import PeftModel", "",
                    f"base = {model_class}.from_pretrained({self.base!r})",
                    "model = PeftModel.from_pretrained(base, 'path/to/this/folder')"]  # fmt: skip
        if self.kind == "merged":
            model_class = MODEL_CLASSES.get(self.task_type, "AutoModel")
            return [f"from transformers import {model_class}", "",
                    f"model = {model_class}.from_pretrained('path/to/this/folder')"]  # fmt: skip
        if self.kind == "composition":
            return ["from workbench import load_composition", "",
                    "composition, modules = load_composition('path/to/this/folder')"]  # fmt: skip
        return ["from workbench import load_module", "", "module = load_module('path/to/this/folder')"]


def write_export_record(folder: Path, record: ExportRecord) -> None:
    """Add the card and composition.json to an exported folder, and record the base (its hub
    id) and, for PEFT configs, the task type in every config the export wrote."""
    folder = Path(folder)
    for name, peft in sorted({(cls.config_file, cls.peft_type is not None) for cls in PEM_TYPES.values()}):
        for config in sorted(folder.rglob(name)):
            data = read_json(config)
            data["base_model_name_or_path"] = record.base
            if peft:  # PEFT reads the task type; our own formats have none
                data["task_type"] = record.task_type
            write_json(config, data)
    path = folder / COMPOSITION_FILE
    data = record.as_json()
    if path.is_file():  # a composition folder: keep what load_composition reads (each module's path, type)
        written = read_json(path)
        kept = written.get("modules", {})
        modules = {name: {**kept.get(name, {}), **entry} for name, entry in data["modules"].items()}
        data = {**written, **data, "modules": modules}
    write_json(path, data)
    (folder / CARD_FILE).write_text(record.card(), encoding="utf-8")


def _cell(text: str) -> str:
    """Text for one Markdown table cell: no line breaks, no column separators."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _longest_backtick_run(text: str) -> int:
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest
