"""`python -m workbench sweep`: measure a composition over a λ grid; write CSV and a plot."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workbench.algebra import parse
from workbench.catalog.presets import PRESETS
from workbench.catalog.registry import zoo_adapter_path
from workbench.cli.arguments import add_composition_arguments, count, parse_pairs, parse_values, require_empty_folder
from workbench.cli.sweep_runners import Runner, runner_for
from workbench.distributed.cluster import check_workers
from workbench.distributed.pool import PointFailed
from workbench.errors import WorkbenchError
from workbench.eval import (
    GridAxis,
    SweepUpdate,
    ToxicityMeasure,
    default_scorer,
    parse_grids,
)
from workbench.eval.auto import choose_values, metric_columns, perplexity_column
from workbench.eval.measure_specs import TOXICITY, Sizes, measure_from_spec
from workbench.eval.measures import MAX_EXAMPLES, MAX_SAMPLES
from workbench.eval.plots import sweep_figure
from workbench.eval.sampling import PAPER_PROMPT
from workbench.eval.sweep import require_values
from workbench.files import staged_folder

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

Ctrl-C keeps the finished points: DIR gets their results.csv and plot.html (exit 130).

--backend ray measures the points on Ray workers: each loads the base once, then takes
points as they come free; rows stream back into the same results.csv, plot and progress.
Without --address a local Ray starts with this machine's cores and stops at the end;
--address HOST:PORT joins a running cluster (`ray start --head --port PORT`; the base must
load on every node: a zoo name, a hub id, or a folder present on each). --auto with
several parameters then searches with Ray Tune's Optuna searcher. A worker that dies or a
point that fails ends the sweep with one line naming the point (exit 2); the finished
points are kept in DIR.

Exit status: 0 on success, 2 on bad input (one line on stderr), 130 when interrupted."""



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
    parser.add_argument("--n", type=count(MAX_EXAMPLES), default=200,
                        help="examples per classification task (default 200)")  # fmt: skip
    parser.add_argument("--samples", type=count(MAX_SAMPLES), default=40,
                        help="toxicity samples per point (default 40)")  # fmt: skip
    parser.add_argument("--prompt", action="append", default=[], help=f"toxicity prompt (default: {PAPER_PROMPT!r})")
    parser.add_argument("--chat", action="store_true", help="sample through the chat template")
    parser.add_argument("--detoxify-checkpoint", help="a local Detoxify checkpoint (else the offline scorer)")
    parser.add_argument("--detoxify-config", help="the folder with that checkpoint's HF config and tokenizer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--auto", action="store_true", help="choose λ on the --task data")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--backend", choices=("local", "ray"), default="local", help="where points run (default local)")
    parser.add_argument("--address", help="with --backend ray: HOST:PORT of a running cluster's head")
    parser.add_argument("--workers", type=int, help="with --backend ray: how many workers (default: one per CPU)")
    parser.set_defaults(run=run)


def list_presets() -> int:
    for preset in PRESETS.values():
        adapters = ", ".join(f"{k}={v}" for k, v in preset.adapters.items())
        print(f"{preset.name}\n    {preset.setting}: {preset.expression} on {preset.base} [{adapters}]")
        print(f"    grid {preset.grid}; tasks {', '.join(preset.tasks)}")
    return 0


def build_measures(specs: list[str], args: argparse.Namespace) -> list:
    """The CLI's sizes for the shared measure registry: whole perplexity texts, `--n` examples."""
    sizes = Sizes(n=args.n, samples=args.samples, seed=args.seed, prompts=tuple(args.prompt) or (PAPER_PROMPT,),
                  chat=args.chat)  # fmt: skip
    scorer = default_scorer(args.detoxify_checkpoint, args.detoxify_config) if TOXICITY in specs else None
    return [measure_from_spec(spec, sizes, scorer) for spec in specs]


@dataclass
class Finished:
    """What a sweep measured before it ended or was interrupted."""

    frame: pd.DataFrame | None = None
    done: int = 0
    total: int = 0
    interrupted: bool = False


def measure_grid(updates: Iterator[SweepUpdate], measures: list) -> Finished:
    """Run the sweep, keeping every finished point through Ctrl-C. The scorer banner and the
    progress bar appear only once the first point is done, so an error before any work is
    the only line on stderr."""
    from tqdm import tqdm

    finished, progress = Finished(), None
    try:
        for update in updates:
            if progress is None:
                announce_scorers(measures)
                progress = tqdm(desc="sweep", unit="point", total=update.total, file=sys.stderr)
            progress.update(update.done - progress.n)
            finished = Finished(update.frame, update.done, update.total)
    except KeyboardInterrupt:
        finished.interrupted = True
    finally:
        if progress is not None:
            progress.close()
    return finished


def announce_scorers(measures: list) -> None:
    for measure in measures:
        if isinstance(measure, ToxicityMeasure):
            print(f"toxicity scorer: {measure.scorer.name} — {measure.scorer.note}", file=sys.stderr)


def write_results(frame: pd.DataFrame, folder: Path, axes: list[GridAxis], columns: list[str]) -> None:
    frame.to_csv(folder / "results.csv", index=False)
    grid = {axis.name: axis.values for axis in axes}
    sweep_figure(frame, list(grid), columns, grid=grid).write_html(folder / "plot.html", include_plotlyjs=True)


def resolve(args: argparse.Namespace) -> tuple[str, str, dict[str, str], list[str], list[str]]:
    """Base, expression, adapters, grids and tasks: from --preset, or from their own options."""
    if args.preset:
        preset = PRESETS.get(args.preset)
        if preset is None:
            raise WorkbenchError(f"unknown preset {args.preset!r}; see --list-presets")
        adapters = {name: str(zoo_adapter_path(zoo)) for name, zoo in preset.adapters.items()}
        return preset.base, preset.expression, adapters, args.grid or [preset.grid], args.task or list(preset.tasks)
    if not (args.base and args.expr):
        raise WorkbenchError("give --preset, or --base, --adapter and --expr")
    return args.base, args.expr, parse_pairs(args.adapter, "--adapter"), args.grid, args.task


def run(args: argparse.Namespace) -> int:
    if args.list_presets:
        return list_presets()
    base, expression, adapters, grids, tasks = resolve(args)
    if not args.out:
        raise WorkbenchError("--out is required")
    require_empty_folder(args.out)
    if args.backend != "ray" and (args.address or args.workers is not None):
        raise WorkbenchError("--address and --workers go with --backend ray")
    check_workers(args.workers)
    if not grids or len(grids) > 2:
        raise WorkbenchError("give one or two --grid")
    if not tasks:
        raise WorkbenchError("give at least one --task")
    axes = parse_grids(grids)
    fixed = parse_values(args.set)
    require_values(parse(expression, adapters), axes, fixed)  # a bad expression fails before anything loads
    measures = build_measures(tasks, args)
    test_measures = build_measures(args.test_task, args)

    columns = [c for m in measures for c in m.columns]
    if args.auto and not (metric_columns(columns) or ("toxicity" in columns and perplexity_column(columns))):
        raise WorkbenchError("--auto needs a classification task, or toxicity with a perplexity task")
    failure = None
    with staged_folder(args.out) as staging:  # made now, so an --out that cannot be written fails before loading
        with runner_for(args, base, adapters, expression, axes, fixed, measures, test_measures) as runner:
            try:
                finished = measure_grid(runner.updates(), measures)
            except PointFailed as failed:
                failure, finished = failed, Finished(failed.frame, failed.done, failed.total)
                if failed.frame is None:
                    raise
            if finished.frame is None:
                raise KeyboardInterrupt  # interrupted before any point: nothing to keep
            write_results(finished.frame, staging, axes, columns)
            if failure is None and not finished.interrupted and args.auto:
                choice_lines = report_auto(runner, expression, axes, fixed, test_measures, finished.frame, columns,
                                           args.seed)  # fmt: skip
            spread = runner.spread()
    if failure is not None:
        raise WorkbenchError(f"{failure}; kept the {len(finished.frame)} finished of {finished.total} rows "
                             f"in {args.out}")  # fmt: skip
    if finished.interrupted:
        print(f"interrupted: kept {finished.done} of {finished.total} points in {args.out} (results.csv, plot.html)",
              file=sys.stderr)  # fmt: skip
        return 130
    print(f"{len(finished.frame)} rows -> {args.out / 'results.csv'}, plot -> {args.out / 'plot.html'}{spread}")
    if args.auto:
        print("\n".join(choice_lines))
    return 0


def report_auto(runner: Runner, expression: str, axes: list[GridAxis], fixed: dict[str, float], test_measures: list,
                frame: pd.DataFrame, columns: list[str], seed: int) -> list[str]:  # fmt: skip
    """λ chosen on the validation sweep, then measured once more on validation and on test."""

    def measure_at(values: dict[str, float]) -> dict[str, float]:
        return runner.measure(expression, {**fixed, **values}, "validation")

    choice = choose_values(measure_at, axes, columns, frame, seed, search=runner.search(expression, fixed))
    values = {**fixed, **choice.values}
    validation = runner.measure(expression, values, "validation")
    shown = ", ".join(f"{k}={v:.4g}" for k, v in choice.values.items())
    lines = [f"auto ({choice.rule}): {shown}",
             "  validation: " + ", ".join(f"{k}={validation[k]:.4f}" for k in columns)]  # fmt: skip
    if test_measures:
        test = runner.measure(expression, values, "test")
        lines.append("  test:       " + ", ".join(f"{k}={test[k]:.4f}" for m in test_measures for k in m.columns))
    return lines
