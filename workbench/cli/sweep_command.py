"""`python -m workbench sweep`: measure a composition over a λ grid; write CSV and a plot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.algebra import parse
from workbench.cli.arguments import add_composition_arguments, parse_pairs, parse_values, require_empty_folder
from workbench.errors import WorkbenchError
from workbench.eval import (
    PerplexityMeasure,
    ResultCache,
    TaskMeasure,
    ToxicityMeasure,
    default_scorer,
    load_csv_task,
    parse_grid,
    sweep,
)
from workbench.eval.auto import average_metric, optuna_search, refine_1d, unlearning_choice
from workbench.eval.plots import heatmap, metric_plot, toxicity_plot
from workbench.eval.sampling import PAPER_PROMPT
from workbench.eval.sweep import measure_point
from workbench.runtime import SessionManager
from workbench.zoo.presets import PRESETS
from workbench.zoo.registry import zoo_adapter_path, zoo_task_path

DESCRIPTION = """\
Measure a composition over a grid of its parameters, point by point.

Tasks (--task, repeatable):
  PATH.csv         classification, columns text,label (label words: the sorted labels)
  ppl:PATH.txt     perplexity of a text (strided sliding window)
  toxicity         mean toxicity and share above 0.8 of sampled completions
  NAME             a zoo task (assets/data/NAME.csv or NAME.txt)

Writes DIR/results.csv (reference rows for the base and each module alone, then the
grid) and DIR/plot.html. --auto chooses λ on the --task data (validation) and reports
the --test-task numbers beside it: the best average metric, or for toxicity with
perplexity the paper's rule (lowest toxicity with perplexity within +0.5 of the base).

Examples:
  python -m workbench sweep --list-presets
  python -m workbench sweep --base assets/examples/tiny-llama --adapter a=assets/examples/lora-a \\
      --adapter b=assets/examples/lora-b --expr "lam*a + (1-lam)*b" --grid lam=0:1:0.25 \\
      --task ppl:assets/examples/sample.txt --out out/sweep

Exit status: 0 on success, 2 on bad input (one line on stderr)."""


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "sweep", help="measure a composition over a λ grid", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    parser.add_argument("--preset", help="a preset: base, adapters, expression, grid and tasks in one name")
    add_composition_arguments(parser, "the expression to sweep", base_required=False)
    parser.add_argument("--grid", action="append", default=[], metavar="P=START:STOP:STEP", help="one or two grids")
    parser.add_argument("--task", action="append", default=[], metavar="SPEC", help="what to measure (see above)")
    parser.add_argument("--test-task", action="append", default=[], metavar="SPEC", help="test data for --auto")
    parser.add_argument("--n", type=int, default=200, help="examples per classification task (default 200)")
    parser.add_argument("--samples", type=int, default=40, help="toxicity samples per point (default 40)")
    parser.add_argument("--prompt", action="append", default=[], help=f"toxicity prompt (default: {PAPER_PROMPT!r})")
    parser.add_argument("--chat", action="store_true", help="sample through the chat template")
    parser.add_argument("--detoxify-checkpoint", help="a local Detoxify checkpoint (else the offline scorer)")
    parser.add_argument("--detoxify-config", help="the folder with that checkpoint's HF config and tokenizer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--auto", action="store_true", help="choose λ on the --task data")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.set_defaults(run=run)


def list_presets() -> int:
    for preset in PRESETS.values():
        adapters = ", ".join(f"{k}={v}" for k, v in preset.adapters.items())
        print(f"{preset.name}\n    {preset.setting}: {preset.expression} on {preset.base} [{adapters}]")
        print(f"    grid {preset.grid}; tasks {', '.join(preset.tasks)}")
    return 0


def build_measures(specs: list[str], args: argparse.Namespace) -> list:
    measures = []
    for spec in specs:
        if spec == "toxicity":
            scorer = default_scorer(args.detoxify_checkpoint, args.detoxify_config)
            prompts = tuple(args.prompt) or (PAPER_PROMPT,)
            measures.append(ToxicityMeasure(scorer, prompts, args.samples, args.seed, chat=args.chat))
            continue
        if spec.startswith("ppl:"):
            path = Path(spec[4:])
        else:
            path = zoo_task_path(spec) or Path(spec)
        if not path.is_file():
            raise WorkbenchError(f"task {spec!r}: no such file or zoo task")
        if path.suffix == ".txt" or spec.startswith("ppl:"):
            measures.append(PerplexityMeasure(path.read_text(encoding="utf-8"), name=f"perplexity:{path.stem}"))
        else:
            measures.append(TaskMeasure(load_csv_task(path), args.n, args.seed))
    return measures


def run(args: argparse.Namespace) -> int:
    if args.list_presets:
        return list_presets()
    if args.preset:
        preset = PRESETS.get(args.preset)
        if preset is None:
            raise WorkbenchError(f"unknown preset {args.preset!r}; see --list-presets")
        base, expression = preset.base, preset.expression
        adapters = {name: str(zoo_adapter_path(zoo)) for name, zoo in preset.adapters.items()}
        grids = args.grid or [preset.grid]
        tasks = args.task or list(preset.tasks)
    else:
        if not (args.base and args.expr):
            raise WorkbenchError("give --preset, or --base, --adapter and --expr")
        base, expression, grids, tasks = args.base, args.expr, args.grid, args.task
        adapters = parse_pairs(args.adapter, "--adapter")
    if not args.out:
        raise WorkbenchError("--out is required")
    require_empty_folder(args.out)
    if not grids or len(grids) > 2:
        raise WorkbenchError("give one or two --grid")
    if not tasks:
        raise WorkbenchError("give at least one --task")
    axes = [parse_grid(grid) for grid in grids]
    fixed = parse_values(args.set)
    parse(expression, adapters)  # a bad expression fails before anything loads
    measures = build_measures(tasks, args)
    test_measures = build_measures(args.test_task, args)

    columns = [c for m in measures for c in m.columns]
    if args.auto and not (_metrics(columns) or ("toxicity" in columns and _ppl_column(columns))):
        raise WorkbenchError("--auto needs a classification task, or toxicity with a perplexity task")
    for measure in measures:
        if isinstance(measure, ToxicityMeasure):
            print(f"toxicity scorer: {measure.scorer.name} — {measure.scorer.note}", file=sys.stderr)
    manager = SessionManager()
    manager.open("cli", base)
    for name, path in adapters.items():
        manager.add_module("cli", name, path)
    manager.set_composition("cli", "", mode=args.mode)
    cache = ResultCache()
    frame = None
    from tqdm import tqdm

    with tqdm(desc="sweep", unit="point", file=sys.stderr) as progress:
        for update in sweep(manager, "cli", expression, axes, measures, cache, fixed):
            progress.total = update.total
            progress.update(1)
            frame = update.frame
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "results.csv", index=False)
    if len(axes) == 2:
        figure = heatmap(frame, axes[0].name, axes[1].name, columns[0])
    elif "toxicity" in columns:
        figure = toxicity_plot(frame.rename(columns=_ppl_column(columns)), axes[0].name)
    else:
        figure = metric_plot(frame, axes[0].name, columns)
    figure.write_html(args.out / "plot.html", include_plotlyjs=True)
    print(f"{len(frame)} rows -> {args.out / 'results.csv'}, plot -> {args.out / 'plot.html'}")
    if args.auto:
        report_auto(manager, expression, axes, fixed, measures, test_measures, cache, frame, columns, args.seed)
    return 0


def _ppl_column(columns: list[str]) -> dict[str, str]:
    perplexities = [c for c in columns if c.startswith("perplexity:")]
    return {perplexities[0]: "perplexity"} if perplexities else {}


def _metrics(columns: list[str]) -> list[str]:
    return [c for c in columns if c not in ("toxicity", "toxic_rate") and not c.startswith("perplexity")]


def report_auto(manager, expression, axes, fixed, measures, test_measures, cache, frame, columns, seed) -> None:
    metrics = _metrics(columns)
    if "toxicity" in columns and _ppl_column(columns):
        choice = unlearning_choice(frame.rename(columns=_ppl_column(columns)), axes[0].name)
    else:

        def objective(values: dict[str, float]) -> float:
            row = measure_point(manager, "cli", expression, {**fixed, **values}, measures, cache)
            return average_metric(row, metrics)

        if len(axes) == 1:
            choice = refine_1d(objective, axes[0])
        else:
            choice = optuna_search(objective, axes, trials=30, seed=seed)
    values = {**fixed, **choice.values}
    validation = measure_point(manager, "cli", expression, values, measures, cache)
    shown = ", ".join(f"{k}={v:.4g}" for k, v in choice.values.items())
    print(f"auto ({choice.rule}): {shown}")
    print("  validation: " + ", ".join(f"{k}={v:.4f}" for k, v in validation.items()))
    if test_measures:
        test = measure_point(manager, "cli", expression, values, test_measures, cache)
        print("  test:       " + ", ".join(f"{k}={v:.4f}" for k, v in test.items()))
