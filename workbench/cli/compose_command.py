"""`python -m workbench compose`: load PEMs, compose them by an expression, write the result."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.algebra import MERGE_METHODS, Composition, MergeOptions, compose, save_composition
from workbench.algebra.card import PEFT_CONFIG, ExportRecord, installed_version, write_export_record
from workbench.algebra.compose import export_part
from workbench.algebra.serving import ENGINES, ServingPlan, plan_serving, require_lora
from workbench.algebra.truncate import Truncation, truncated_export
from workbench.catalog.bases import ZOO_BASES
from workbench.cli.arguments import (
    add_composition_arguments,
    count,
    parse_pairs,
    parse_values,
    require_empty_folder,
)
from workbench.errors import WorkbenchError
from workbench.files import staged_folder
from workbench.modules import PEM, load_module
from workbench.modules.lora import LoraModule
from workbench.modules.tensor_io import read_json
from workbench.runtime.loading import base_kind_for, base_shapes_for

MAX_RANK_LIMIT = 65536
MERGED_SESSION = "compose --merged"

DESCRIPTION = """\
Compose PEMs by an arithmetic expression and write the result.

Expression: + - * / and parentheses (also ⊕ ⊖ × ·). A name bound by --adapter is a
module; any other name is a parameter, given a value with --set. Examples:
  "lam*a + (1-lam)*b"     interpolate two modules      --set lam=0.3
  "-0.6*toxic"            negate a module (unlearning)
  "base + lam*(base - toxic)"                          --set lam=0.5

Modes:
  exact (default)  combine the modules' delta forms (function space). LoRA sums
                   become one LoRA of rank Σrᵢ with ΔW = Σ cᵢsᵢBᵢAᵢ exactly.
  paper            parameter space, as the paper's code. Two or more LoRAs:
                   A = Σ|cᵢ|Aᵢ, B = Σ cᵢBᵢ (equal targets and shapes). One LoRA:
                   B = cB only, so -0.6*a gives ΔW = -0.6·ΔW_a, as in exact mode.
  (IA)³, RED and sparse vectors combine their delta forms in both modes.

Merges (--merge; linear, the default, is the composition above):
  ties, dare_linear, dare_ties, magnitude_prune
                   sparse task vectors only, per parameter; --density is the share
                   of entries kept, --seed seeds DARE's drop.
  knots            LoRAs only, exact mode (KnOTS-TIES): one SVD of [ΔW₁ … ΔWₙ] gives a
                   shared basis U; TIES merges the tasks' coordinates ΣVᵢᵀ in it (cᵢ
                   are TIES' weights, --density the share of entries kept).
  tsv_m            LoRAs only, exact mode (TSV-M): each cᵢΔWᵢ keeps its top
                   ⌊density·rᵢ/n⌋ singular triplets; U and V are decorrelated
                   (nearest orthonormal) before ΔW = U⊥ΣV⊥ᵀ. Density 1: the paper's 1/n.
  iso_c            LoRAs only, exact mode (Iso-C): ΔW_TA = Σ cᵢΔWᵢ with its singular
                   values all set to their mean. No density.
  Each LoRA merge writes a PEFT LoRA (its rank: KnOTS ≤ Σrᵢ, TSV-M about Σrᵢ/n,
  Iso-C ≤ Σrᵢ), or, as for linear, a composition folder when the modules carry two task
  heads; heads combine as they do without a merge.

Output (--out), with a model card (README.md) and composition.json beside it:
  one LoRA or one (IA)³      a PEFT adapter folder (PeftModel.from_pretrained loads it)
  one RED or sparse          the workbench's own format for that type
  mixed types                a composition folder (expression, values, mode, modules)
  --merged                   the full model with the composition merged into its weights

Exports for serving engines:
  --max-rank R     cut a single LoRA to rank R: an SVD of each target's ΔW keeps its top R
                   singular triplets (the closest rank-R LoRA). Prints the relative
                   Frobenius error overall and at the worst target; the card records both.
                   A LoRA of rank ≤ R is written as composed. Exact mode's sum of LoRAs
                   has rank Σrᵢ, which engines cap (vLLM's max_lora_rank, default 16).
  --serve vllm     check the adapter against vLLM's limits (LoRA only; rank at most 512,
                   served at the next max_lora_rank value: 1, 8, 16, 32, 64, 128, 256,
                   320, 512; no DoRA, no modules_to_save) and print the serving command.
  --merged         write config, safetensors weights, tokenizer and generation config:
                   transformers loads it as a plain model, as engines serve a base. Every
                   type merges, except a RED shift on a Linear without a bias and a task
                   head; not with --max-rank or --serve (they are for adapters).
  e.g.  --expr "a + b" --max-rank 16 --serve vllm      --expr "lora - 0.5*ia3" --merged

Exit status: 0 on success, 2 on bad input (one line on stderr)."""


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "compose",
        help="compose PEMs by an expression and write the result",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_composition_arguments(parser, 'the expression, e.g. "lam*a + (1-lam)*b" or --expr=-a')
    parser.add_argument("--merge", choices=MERGE_METHODS, default="linear",
                        help="merge method: TIES/DARE/magnitude for sparse task vectors, KnOTS/TSV-M/Iso-C for LoRAs")
    parser.add_argument("--density", type=float, default=1.0,
                        help="share kept (0-1]: TIES/DARE/magnitude and KnOTS entries, TSV-M's 1/n of each rank")
    parser.add_argument("--seed", type=int, default=0, help="seed for DARE's random drop")
    parser.add_argument("--out", required=True, type=Path, help="output folder (must not exist or be empty)")
    parser.add_argument("--max-rank", type=count(MAX_RANK_LIMIT), metavar="R",
                        help="truncate a single LoRA to rank R by SVD of each target's ΔW")  # fmt: skip
    parser.add_argument("--serve", choices=tuple(ENGINES), help="check the adapter against a serving engine's limits")
    parser.add_argument("--merged", action="store_true", help="write the full merged model instead of an adapter")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if args.merged and (args.max_rank is not None or args.serve):
        given = [flag for flag, value in (("--max-rank", args.max_rank), ("--serve", args.serve)) if value is not None]
        verb = "is" if len(given) == 1 else "are"
        raise WorkbenchError(f"--merged writes a full model, and {' and '.join(given)} {verb} for adapter exports; "
                             "drop one or the other")  # fmt: skip
    require_empty_folder(out)
    if not args.adapter or not args.expr:
        raise WorkbenchError("compose needs at least one --adapter and an --expr")
    values = parse_values(args.set)
    merge = MergeOptions(args.merge, args.density, args.seed)
    paths = parse_pairs(args.adapter, "--adapter")
    truncation: Truncation | None = None
    plan: ServingPlan | None = None
    with staged_folder(out) as staging:  # made now, so an --out that cannot be written fails before loading
        base = base_shapes_for(args.base)
        modules = {name: load_module(path, base) for name, path in paths.items()}
        composition = compose(modules, args.expr, values, args.mode, merge)
        if args.merged:
            written, base_kind = _write_merged(args, modules, values, merge, staging)
        else:
            written, truncation = _write_adapter(composition, modules, args, staging)
            base_kind = base_kind_for(args.base)
            if args.serve:
                plan = plan_serving(args.serve, composition, read_json(staging / PEFT_CONFIG))
        record = ExportRecord.of(
            "merged" if args.merged else written, composition, modules, base=_recorded_base(args.base),
            base_loaded_as=args.base, base_kind=base_kind, sources={}, version=installed_version(),
            truncation=truncation, serving=plan.command(*_served_as(args), "path/to/this/folder") if plan else "",
            serving_note=plan.reason(_truncated(truncation)) if plan else "",
        )  # fmt: skip
        write_export_record(staging, record)
    coefficients = ", ".join(f"{name}: {value:g}" for name, value in composition.coefficients.items())
    print(f"{composition.combination.canonical}  [{args.mode}]  ->  {written} at {out}  ({coefficients})")
    if truncation is not None:
        print(truncation.summary())
    if plan is not None:
        command = plan.command(*_served_as(args), str(Path(out).absolute()))
        print(f"{plan.engine.title}: {command}  ({plan.reason(_truncated(truncation))})")
    return 0


def _write_adapter(composition: Composition, modules: dict[str, PEM], args: argparse.Namespace,
                   folder: Path) -> tuple[str, Truncation | None]:  # fmt: skip
    """Write the composition's adapter, cut to --max-rank when given, with scaling 1 on every
    target for --serve; (kind written, truncation). Both options need a single LoRA."""
    if args.serve:
        require_lora(args.serve, composition)
    if args.max_rank is None and not args.serve:
        return save_composition(composition, modules, folder), None
    if args.max_rank is not None:
        lora, truncation = truncated_export(composition, args.max_rank)
    else:
        lora, truncation = export_part(composition), None
    assert isinstance(lora, LoraModule)  # require_lora and truncated_export refused anything else
    if args.serve:
        lora = lora.unit_scaled()
    lora.save(folder)
    return lora.pem_type, truncation


def _write_merged(args: argparse.Namespace, modules: dict[str, PEM], values: dict[str, float], merge: MergeOptions,
                  folder: Path) -> tuple[str, str]:  # fmt: skip
    """The composition merged into the base, through the session manager the UI uses; (what, base kind)."""
    from workbench.runtime.merged import save_merged
    from workbench.runtime.session import SessionManager

    manager = SessionManager(cache_bytes=0)
    manager.rebuild(MERGED_SESSION, args.base, modules)
    manager.set_composition(MERGED_SESSION, args.expr, values, args.mode, merge)
    model_class = save_merged(manager, MERGED_SESSION, folder)
    return f"merged model ({model_class})", manager.base(args.base).kind


def _recorded_base(base: str) -> str:
    """The base as the export records it: a zoo base's hub id, a local folder's absolute path, a hub id as is."""
    if base in ZOO_BASES:
        return ZOO_BASES[base].hub_id
    path = Path(base).expanduser()
    return str(path.absolute()) if path.is_dir() else base


def _served_as(args: argparse.Namespace) -> tuple[str, str]:
    """(base, adapter name) for a serving command: the recorded base, the --out folder's name."""
    return _recorded_base(args.base), Path(args.out).name or "composed"


def _truncated(truncation: Truncation | None) -> bool:
    return truncation is not None and truncation.truncated
