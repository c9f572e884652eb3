"""Sweeps stream, stop, cache and restore; plots and automatic λ pick what they should."""

import threading

import pandas as pd
import pytest

from workbench.errors import WorkbenchError
from workbench.eval import GridAxis, PerplexityMeasure, ResultCache, TaskMeasure, ToxicityMeasure, parse_grid, sweep
from workbench.eval.auto import largest_lambda_within, lowest_toxicity_within, optuna_search, refine_1d
from workbench.eval.plots import heatmap, metric_plot, toxicity_plot
from workbench.eval.tasks import ClassificationTask
from workbench.eval.toxicity import DetoxifyScorer, ProfanityScorer
from workbench.runtime import SessionManager

TASK = ClassificationTask("toy", ("good film", "bad film", "fine", "awful"), (1, 0, 1, 0), ("no", "yes"))


@pytest.fixture
def manager(base_dirs, adapters):
    manager = SessionManager()
    manager.open("s", str(base_dirs["llama"]))
    for name in ("lora_a", "lora_b"):
        manager.add_module("s", name, adapters["llama"][name])
    manager.set_composition("s", "lora_a")
    return manager


@pytest.mark.parametrize(
    ("spec", "values"),
    [("lam=0:1:0.25", (0.0, 0.25, 0.5, 0.75, 1.0)), ("λ=0:0.3:0.1", (0.0, 0.1, 0.2, 0.3)), ("mu=1,0.5", (1.0, 0.5))],
)
def test_parse_grid(spec, values) -> None:
    assert parse_grid(spec).values == values


@pytest.mark.parametrize("spec", ["lam", "lam=1:0:0.1", "lam=0:1:0", "lam=a,b", "lam=0:1000:1", "1x=0,1"])
def test_bad_grids(spec) -> None:
    with pytest.raises(WorkbenchError):
        parse_grid(spec)


def test_sweep_streams_every_point_with_references_and_restores(manager) -> None:
    measures = [TaskMeasure(TASK, n=None), PerplexityMeasure("It is a truth universally acknowledged")]
    updates = list(sweep(manager, "s", "lam*lora_a + (1-lam)*lora_b", [parse_grid("lam=0:1:0.5")], measures))
    assert [u.done for u in updates] == [1, 2, 3, 4, 5, 6] and updates[-1].total == 6
    frame = updates[-1].frame
    assert list(frame["label"][:3]) == ["base", "lora_a", "lora_b"]
    assert list(frame[frame["kind"] == "point"]["lam"]) == [0.0, 0.5, 1.0]
    assert frame["perplexity"].notna().all() and frame["toy"].between(0, 1).all()
    ends = frame.set_index("label")
    points = frame[frame["kind"] == "point"].set_index("lam")
    assert points.loc[1.0, "perplexity"] == pytest.approx(ends.loc["lora_a", "perplexity"])
    assert points.loc[0.0, "perplexity"] == pytest.approx(ends.loc["lora_b", "perplexity"])
    assert manager.state("s").expression == "lora_a"


def test_sweep_can_stop_and_keeps_what_it_has(manager) -> None:
    measures = [PerplexityMeasure("some text to score here")]
    generator = sweep(manager, "s", "lam*lora_a", [parse_grid("lam=0:1:0.1")], measures, references=False)
    first = [next(generator) for _ in range(3)]
    generator.close()
    assert len(first[-1].frame) == 3 and manager.state("s").expression == "lora_a"
    stop = threading.Event()
    updates = []
    for update in sweep(manager, "s", "lam*lora_a", [parse_grid("lam=0:1:0.1")], measures, stop=stop):
        updates.append(update)
        if update.done == 4:
            stop.set()
    assert len(updates) == 4 and len(updates[-1].frame) == 4


def test_overlapping_sweeps_reuse_cached_points(manager) -> None:
    cache = ResultCache()
    measures = [PerplexityMeasure("some text to score here")]
    list(sweep(manager, "s", "lam*lora_a", [parse_grid("lam=0:1:0.5")], measures, cache))
    hits_before = cache.hits
    list(sweep(manager, "s", "lam*lora_a", [parse_grid("lam=0:1:0.25")], measures, cache))
    assert cache.hits - hits_before == 2 + 3  # base and lora_a references, and λ = 0, 0.5, 1


def test_two_parameter_sweep_and_heatmap(manager) -> None:
    axes = [parse_grid("a=0,1"), parse_grid("b=0,0.5,1")]
    frame = list(sweep(manager, "s", "a*lora_a + b*lora_b", axes, [PerplexityMeasure("text text")]))[-1].frame
    assert len(frame[frame["kind"] == "point"]) == 6
    figure = heatmap(frame, "a", "b", "perplexity")
    assert figure.data[0].z.shape == (3, 2)


def test_parameters_need_a_grid(manager) -> None:
    with pytest.raises(WorkbenchError, match="mu need a grid or a fixed value"):
        list(sweep(manager, "s", "lam*lora_a + mu*lora_b", [parse_grid("lam=0,1")], []))


def test_toxicity_pipeline_with_both_scorers(manager, tmp_path) -> None:
    from test_eval import make_detoxify_standin

    checkpoint, _, _ = make_detoxify_standin(tmp_path / "detox")
    for scorer in (ProfanityScorer(), DetoxifyScorer.from_checkpoint(checkpoint, tmp_path / "detox")):
        measures = [ToxicityMeasure(scorer, n=4, max_new_tokens=5), PerplexityMeasure("a text to score")]
        frame = list(sweep(manager, "s", "-lam*lora_a", [parse_grid("lam=0,1")], measures))[-1].frame
        assert frame["toxicity"].between(0, 1).all() and frame["toxic_rate"].between(0, 1).all()
        figure = toxicity_plot(frame, "lam")
        assert {trace.name for trace in figure.data} >= {"mean toxicity", "perplexity", "base toxicity"}


def test_metric_plot_has_curves_average_and_references() -> None:
    frame = pd.DataFrame(
        [
            {"kind": "reference", "label": "base", "t1": 0.5, "t2": 0.4},
            {"kind": "point", "label": "", "lam": 0.0, "t1": 0.6, "t2": 0.7},
            {"kind": "point", "label": "", "lam": 1.0, "t1": 0.8, "t2": 0.5},
        ]
    )
    figure = metric_plot(frame, "lam", ["t1", "t2"])
    assert [trace.name for trace in figure.data] == ["t1", "t2", "average", "base (t1)", "base (t2)"]
    assert list(figure.data[2].y) == pytest.approx([0.65, 0.65])
    assert [trace.line.dash for trace in figure.data[3:]] == ["dash", "dash"]  # one reference line per metric


def test_refine_finds_the_peak_and_optuna_the_optimum() -> None:
    choice = refine_1d(lambda v: -((v["lam"] - 0.3) ** 2), GridAxis("lam", (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)), rounds=3)
    assert abs(choice.values["lam"] - 0.3) <= 0.025
    axes = [GridAxis("a", (0.0, 1.0)), GridAxis("b", (0.0, 1.0))]
    best = optuna_search(lambda v: -((v["a"] - 0.7) ** 2) - (v["b"] - 0.2) ** 2, axes, trials=60, seed=0)
    assert abs(best.values["a"] - 0.7) < 0.15 and abs(best.values["b"] - 0.2) < 0.15


def test_unlearning_rule() -> None:
    frame = pd.DataFrame(
        [
            {"kind": "reference", "label": "base", "toxicity": 0.2, "perplexity": 10.0},
            {"kind": "point", "label": "", "lam": 0.2, "toxicity": 0.15, "perplexity": 10.1},
            {"kind": "point", "label": "", "lam": 0.6, "toxicity": 0.10, "perplexity": 10.4},
            {"kind": "point", "label": "", "lam": 1.0, "toxicity": 0.02, "perplexity": 11.0},
        ]
    )
    assert lowest_toxicity_within(frame, "lam").values == {"lam": 0.6}
    assert lowest_toxicity_within(frame, "lam", ppl_bound=2.0).values == {"lam": 1.0}
    with pytest.raises(WorkbenchError, match="no λ keeps perplexity"):
        lowest_toxicity_within(frame.assign(perplexity=[10.0, 12, 12, 12]), "lam")


def test_the_two_unlearning_rules_differ_where_toxicity_is_not_monotone() -> None:
    """The cards' rule takes the largest λ in the bound whatever its toxicity; the paper's the least toxic."""
    frame = pd.DataFrame(
        [
            {"kind": "reference", "label": "base", "toxicity": 0.2, "perplexity": 10.0},
            {"kind": "point", "label": "", "lam": 0.2, "toxicity": 0.05, "perplexity": 10.1},
            {"kind": "point", "label": "", "lam": 0.4, "toxicity": 0.12, "perplexity": 10.4},
            {"kind": "point", "label": "", "lam": 0.8, "toxicity": 0.01, "perplexity": 11.0},
        ]
    )
    assert lowest_toxicity_within(frame, "lam", ppl_ratio=1.05).values == {"lam": 0.2}
    assert largest_lambda_within(frame, "lam", ppl_ratio=1.05).values == {"lam": 0.4}
    assert largest_lambda_within(frame.drop(columns="toxicity"), "lam", ppl_bound=2.0).values == {"lam": 0.8}
