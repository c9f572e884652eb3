"""Rank truncation for serving engines: what cutting a zoo composition's LoRA costs.

    .venv/bin/python bench/truncation.py [--preset NAME ...] [--ranks 2,4,8,16] [--out bench/out/truncation.html]

For each preset (default: the two sentiment LoRAs on MiniLM at λ=0.5, whose exact sum
has rank 16, and the negated toxic LoRA on SmolLM2 at its card's λ=0.2, rank 8), the
composition's LoRA is truncated (`workbench.algebra.truncate`) to each rank of --ranks
below its own, and to its own rank Σr (no truncation: the reference row). It prints a
markdown table of the relative Frobenius error ‖ΔW − ΔW_r‖_F/‖ΔW‖_F over all targets and
at the worst one, the time the truncation took, and the max and mean absolute logit
difference from the untruncated composition on the first 8 texts of the preset's data
(the task head's logits for MiniLM, every real token's vocabulary logits for SmolLM2).
It writes a plotly figure of the errors to --out.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.algebra import compose
from workbench.algebra.compose import export_part
from workbench.algebra.truncate import Truncation, truncate_lora
from workbench.catalog.presets import PRESETS
from workbench.catalog.registry import DATA, zoo_adapter_path
from workbench.modules import load_module
from workbench.modules.lora import LoraModule
from workbench.runtime.loading import LoadedBase
from workbench.runtime.session import SessionManager

TEXTS = {"distribution-generalization-lora": "sentiment-test.csv", "unlearning-lora": "fortunes-clean.csv"}
PROMPTS = 8
MAX_LENGTH = 128


@dataclass(frozen=True)
class Row:
    preset: str
    truncation: Truncation
    seconds: float
    max_logit: float
    mean_logit: float


def first_texts(file: str, count: int) -> list[str]:
    with (DATA / file).open(encoding="utf-8", newline="") as handle:
        return [row["text"] for _, row in zip(range(count), csv.DictReader(handle), strict=False)]


@torch.inference_mode()
def logits(loaded: LoadedBase, texts: list[str]) -> torch.Tensor:
    """The head's logits for an encoder (one row a text), else the LM's logits at every real token."""
    inputs = loaded.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=MAX_LENGTH)
    outputs = loaded.model(**inputs.to(loaded.device))
    if loaded.kind == "encoder":
        return next(iter(loaded.heads.values())).logits(outputs.pooler_output)
    return outputs.logits[inputs["attention_mask"].bool()]


def run_preset(name: str, ranks: list[int]) -> list[Row]:
    preset = PRESETS[name]
    modules = {alias: load_module(zoo_adapter_path(adapter)) for alias, adapter in preset.adapters.items()}
    composition = compose(modules, preset.expression, preset.values)
    full = export_part(composition)
    if not isinstance(full, LoraModule):
        raise SystemExit(f"preset {name} is not a LoRA composition")
    total_rank = max(factor.rank for factor in full.factors.values())
    texts = first_texts(TEXTS.get(name, "sentiment-test.csv"), PROMPTS)
    manager = SessionManager(cache_bytes=0)
    session = f"truncation {name}"
    manager.rebuild(session, preset.base, {"full": full}, "full")
    with manager.model_for(session) as loaded:
        reference = logits(loaded, texts)
    truncate_lora(full, 1)  # warm-up: torch's first QR/SVD call initialises its linear algebra, untimed here
    rows = []
    for rank in sorted({r for r in ranks if r < total_rank} | {total_rank}):
        start = time.perf_counter()
        cut, truncation = truncate_lora(full, rank)
        seconds = time.perf_counter() - start
        manager.add_module(session, "cut", cut, replace=True)
        manager.set_composition(session, "cut")
        with manager.model_for(session) as loaded:
            difference = (logits(loaded, texts) - reference).abs()
        rows.append(Row(name, truncation, seconds, float(difference.max()), float(difference.mean())))
    manager.release(session)
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| preset | rank | rel. Frobenius error, all targets | worst target: error | truncation time "
             "| max abs Δlogit | mean abs Δlogit |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        cut = row.truncation
        rank = f"{cut.to_rank} (= Σr, none cut)" if not cut.truncated else str(cut.to_rank)
        worst = f"`{cut.worst_target}`: {cut.worst:.4f}" if cut.truncated else "—"
        lines.append(f"| {row.preset} | {rank} | {cut.overall:.4f} | {worst} | {row.seconds * 1000:.1f} ms "
                     f"| {row.max_logit:.4g} | {row.mean_logit:.4g} |")  # fmt: skip
    return "\n".join(lines)


def figure(rows: list[Row], out: Path) -> None:
    from plotly.subplots import make_subplots

    presets = list(dict.fromkeys(row.preset for row in rows))
    specs = [[{"secondary_y": True}] * len(presets)]
    plot = make_subplots(rows=1, cols=len(presets), subplot_titles=presets, specs=specs)
    for column, preset in enumerate(presets, start=1):
        mine = [row for row in rows if row.preset == preset]
        ranks = [row.truncation.to_rank for row in mine]
        for label, values, secondary in (
            ("rel. Frobenius error, all targets", [row.truncation.overall for row in mine], False),
            ("rel. Frobenius error, worst target", [row.truncation.worst for row in mine], False),
            ("max abs Δlogit", [row.max_logit for row in mine], True),
        ):
            plot.add_scatter(x=ranks, y=values, name=label, mode="lines+markers", legendgroup=label,
                             showlegend=column == 1, row=1, col=column, secondary_y=secondary)  # fmt: skip
        plot.update_xaxes(title_text="rank", type="log", tickvals=ranks, row=1, col=column)
        plot.update_yaxes(title_text="relative Frobenius error", row=1, col=column, secondary_y=False)
        plot.update_yaxes(title_text="max abs Δlogit", row=1, col=column, secondary_y=True)
    plot.update_layout(title="Rank truncation of a composed LoRA: error against rank")
    out.parent.mkdir(parents=True, exist_ok=True)
    plot.write_html(out, include_plotlyjs=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", choices=sorted(PRESETS), help="a LoRA preset (repeatable)")
    parser.add_argument("--ranks", default="2,4,8,16", help="ranks to truncate to, besides the composition's own")
    parser.add_argument("--out", type=Path, default=Path("bench/out/truncation.html"), help="the figure's HTML file")
    args = parser.parse_args()
    presets = args.preset or list(TEXTS)
    ranks = [int(rank) for rank in args.ranks.split(",")]
    rows = [row for preset in presets for row in run_preset(preset, ranks)]
    print(f"{torch.get_num_threads()} threads, float32, first {PROMPTS} texts of each preset's data")
    print(table(rows))
    figure(rows, args.out)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
