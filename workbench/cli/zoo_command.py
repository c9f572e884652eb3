"""`python -m workbench zoo`: list the zoo, rebuild its data, train its adapters."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from workbench.catalog.bases import ZOO_BASES
from workbench.catalog.presets import PRESETS
from workbench.catalog.registry import ADAPTERS, ASSETS, DATA, zoo_adapter_path, zoo_adapters
from workbench.cli.arguments import count, require_file_target
from workbench.errors import WorkbenchError
from workbench.eval.measures import MAX_SAMPLES
from workbench.files import staged_file, staged_folder

STUDIES = ASSETS.parent / "docs" / "zoo-studies.md"

DESCRIPTION = """\
The embedded zoo: real base models from PyPI packages, small committed data sets, and
adapters trained by the workbench's own recipes.

  list               bases, adapters, recipes, presets and data
  extract [--debs D] [--sdist F]
                     rebuild assets/data from Debian packages and one PyPI sdist (maintainers; needs rdata)
  train NAME         train adapter NAME from the committed data, measure it, write its card
  study              the paper's composition studies on the MiniLM modules -> docs/zoo-studies.md
  ablation           the negation ablation (paper Table 11) on the toxic modules -> its section there
  detox              detoxifying an instruction model (paper Table 6) -> its section there and the cards
  transfer           domain transfer (paper Table 5) on the MiniLM modules -> its section there and the cards"""


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("zoo", help="list, rebuild and train the embedded zoo", description=DESCRIPTION,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("action", choices=("list", "extract", "train", "study", "ablation", "detox", "transfer"))
    parser.add_argument("name", nargs="?", help="the recipe to train")
    parser.add_argument("--debs", type=Path, help="extract: read .deb files from here instead of apt-get download")
    parser.add_argument("--sdist", type=Path, help="extract: the vaderSentiment 3.3.2 sdist, instead of pip download")
    parser.add_argument("--samples", type=count(MAX_SAMPLES),
                        help="samples per setting: model cards (default 400), ablation (default 200), "
                        "detox (default: all 100 test instructions)")  # fmt: skip
    parser.add_argument("--no-card", action="store_true", help="train: skip measuring and the model card")
    parser.add_argument("--out", type=Path, default=STUDIES,
                        help="study, ablation, detox, transfer: where the report goes")  # fmt: skip
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return list_zoo()
    if args.action == "extract":
        from workbench.studio.extract import extract

        for path in extract(args.debs, sdist=args.sdist):
            print(path)
        return 0
    if args.action == "study":
        from workbench.studio import ablation, detox, transfer
        from workbench.studio.sections import MERGE_COMPARISON
        from workbench.studio.studies import run_studies

        require_file_target(args.out)
        kept_sections = (MERGE_COMPARISON, ablation.SECTION, detox.SECTION, transfer.SECTION)
        owned = [(section, section.kept(_read(args.out))) for section in kept_sections]
        with staged_file(args.out) as partial:  # made now, so an --out that cannot be written fails before the study
            report = run_studies()
            for section, kept in owned:  # the sections other commands write stay as they are
                report = section.replace(report, kept) if kept else report
            partial.write_text(report, encoding="utf-8")
        print(f"wrote {args.out}")
        return 0
    if args.action == "ablation":
        from workbench.studio.ablation import SECTION, run_ablation

        require_file_target(args.out)
        with staged_file(args.out) as partial:
            section = run_ablation(args.samples or 200)
            partial.write_text(SECTION.replace(_read(args.out), section), encoding="utf-8")
        print(f"wrote the negation ablation into {args.out}")
        return 0
    if args.action == "detox":
        from workbench.studio.detox import run_detox

        require_file_target(args.out)
        with staged_file(args.out) as partial:
            partial.write_text(run_detox(_read(args.out), args.samples), encoding="utf-8")
        print(f"wrote the detoxification study into {args.out} and its modules' cards")
        return 0
    if args.action == "transfer":
        from workbench.studio.transfer import run_transfer

        require_file_target(args.out)
        with staged_file(args.out) as partial:
            partial.write_text(run_transfer(_read(args.out)), encoding="utf-8")
        print(f"wrote the domain-transfer study into {args.out} and its LM modules' cards")
        return 0
    return train(args.name, args.samples or 400, not args.no_card)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def list_zoo() -> int:
    from workbench.catalog.recipes import RECIPES

    print("bases:")
    for base in ZOO_BASES.values():
        print(f"  {base.name}: {base.description}")
    print("adapters (assets/zoo/adapters):")
    for name in zoo_adapters() or ["(none built yet)"]:
        print(f"  {name}")
    print("recipes (python -m workbench zoo train NAME):")
    for recipe in RECIPES.values():
        built = "built" if (ADAPTERS / recipe.name).is_dir() else "not built"
        print(f"  {recipe.name}: {recipe.pem_type} on {recipe.base}, data {recipe.data} [{built}]")
    print("presets (python -m workbench sweep --preset NAME):")
    for preset in PRESETS.values():
        print(f"  {preset.name}: {preset.expression}")
    print("data (assets/data):")
    for path in sorted(DATA.glob("*.*")):
        if path.suffix in (".csv", ".txt"):
            print(f"  {path.name}")
    return 0


def train(name: str | None, samples: int, card: bool) -> int:
    from workbench.catalog.bases import zoo_base_folder
    from workbench.catalog.recipes import CONTINUES, RECIPES
    from workbench.studio.training import recipe_labels
    from workbench.studio.training import train as train_module

    recipe = RECIPES.get(name or "")
    if recipe is None:
        raise WorkbenchError(f"unknown recipe {name!r}; recipes: {', '.join(RECIPES)}")
    out = ADAPTERS / recipe.name
    exclude = zoo_adapter_path(recipe.exclude) if recipe.exclude else None
    with staged_folder(out, replace=True) as staging:  # the old adapter stays until the new one is whole
        start = time.perf_counter()
        if recipe.name in CONTINUES:  # the detoxification study's toxic module starts from the helpful one
            from workbench.studio.training import continue_lora

            loss = continue_lora(zoo_base_folder(recipe.base), zoo_adapter_path(CONTINUES[recipe.name]),
                                 recipe.texts(), recipe.settings, staging)  # fmt: skip
        else:
            _, loss = train_module(recipe.pem_type, zoo_base_folder(recipe.base), recipe.texts(), recipe.settings,
                                   staging, exclude, recipe_labels(recipe))  # fmt: skip
        seconds = time.perf_counter() - start
        print(f"trained {recipe.name} in {seconds:.0f} s, final loss {loss:.4f}")
        (staging / "README.md").unlink(missing_ok=True)  # PEFT's template card; ours replaces it
        _portable_base_path(staging, recipe.base)
        if card:
            _write_card(recipe, staging, samples, seconds, loss)
    print(f"wrote {out}")
    return 0


def _write_card(recipe, folder: Path, samples: int, seconds: float, loss: float) -> None:
    """Measure the module in `folder` and write its model card there (README.md)."""
    from workbench.catalog.recipes import INSTRUCT_RECIPES, TRANSFER_RECIPES

    if recipe.name in INSTRUCT_RECIPES:  # measured as a pair, by `zoo detox`, which fills in the card
        from workbench.studio.detox import instruct_card

        (folder / "README.md").write_text(instruct_card(recipe, seconds, loss), encoding="utf-8")
        print("card: training only; `python -m workbench zoo detox` measures the pair and fills it in")
        return
    if recipe.name in TRANSFER_RECIPES and recipe.task is None:  # an LM module: `zoo transfer` measures it
        from workbench.studio.transfer import lm_card

        (folder / "README.md").write_text(lm_card(recipe, seconds, loss), encoding="utf-8")
        print("card: training only; `python -m workbench zoo transfer` measures the study and fills it in")
        return
    if recipe.task is not None:
        from workbench.studio.cards import classifier_card, measure_classifier

        result = measure_classifier(recipe, folder)
        (folder / "README.md").write_text(classifier_card(recipe, result, seconds, loss), encoding="utf-8")
        print(f"card: accuracy validation {result.accuracy['validation']:.4f}, test {result.accuracy['test']:.4f} "
              f"(majority {result.majority['validation']:.4f}, {result.majority['test']:.4f})")  # fmt: skip
        return
    from workbench.studio.cards import measure_unlearning, unlearning_card

    report = measure_unlearning(recipe, folder, samples)
    (folder / "README.md").write_text(unlearning_card(recipe, report, seconds, loss), encoding="utf-8")
    print(f"card: toxicity base {report.toxicity['base']:.4f}, toxic {report.toxicity['toxic']:.4f}, "
          f"negated (λ={report.lam}) {report.toxicity['negated']:.4f}")  # fmt: skip


def _portable_base_path(folder: Path, base: str) -> None:
    """Record the zoo name, not this machine's cache path, as the adapter's base."""
    import json

    for config_name in ("adapter_config.json", "pem_config.json"):
        path = folder / config_name
        if path.is_file():
            config = json.loads(path.read_text(encoding="utf-8"))
            config["base_model_name_or_path"] = base
            path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
