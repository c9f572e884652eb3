"""The Sweep and Toxicity tabs' plain functions: the one sweep figure, progress with an ETA,
Stop keeping what was measured, the CSV and run.json, and toxicity's progress and refusal."""

import json
import math

import pandas as pd
import pytest

from workbench.errors import WorkbenchError
from workbench.eval.plots import axis_title, better, sweep_figure
from workbench.ui.controller import Controller, progress_line, rounded

GRID = {"lam": (0.0, 0.25, 0.5, 0.75, 1.0)}


def rows(*points: dict, metric: str = "perplexity") -> pd.DataFrame:
    """A sweep's frame: the base and a module alone, then the points given."""
    references = [{"kind": "reference", "label": "base", metric: 10.0},
                  {"kind": "reference", "label": "toxic", metric: 12.0}]  # fmt: skip
    return pd.DataFrame(references + [{"kind": "point", "label": "", **p} for p in points])


@pytest.fixture
def controller(tiny_controller):
    return tiny_controller("s")


# the figure builder ----------------------------------------------------------


def test_the_y_axis_is_named_for_the_metric_and_says_which_way_is_better() -> None:
    assert [better(m) for m in ("sentiment-validation", "perplexity", "perplexity:austen", "toxicity",
                                "toxic_rate")] == ["higher", "lower", "lower", "lower", "lower"]  # fmt: skip
    figure = sweep_figure(rows({"lam": 0.0, "perplexity": 11.0}), ["lam"], ["perplexity"], grid=GRID)
    assert figure.layout.yaxis.title.text == "perplexity ↓ (lower is better)"
    accuracy = sweep_figure(rows({"lam": 0.0, "sentiment-validation": 0.8}, metric="sentiment-validation"), ["lam"],
                            ["sentiment-validation"], grid=GRID)  # fmt: skip
    assert accuracy.layout.yaxis.title.text == "sentiment-validation ↑ (higher is better)"
    assert axis_title(["sentiment-validation", "topic-validation"]).endswith("↑ (higher is better)")


def test_the_x_range_is_the_whole_grid_from_the_first_point() -> None:
    figure = sweep_figure(rows({"lam": 0.25, "perplexity": 11.0}), ["lam"], ["perplexity"], grid=GRID)
    assert tuple(figure.layout.xaxis.range) == (0.0, 1.0)  # one point at 0.25, the axis already 0 to 1
    toxic = rows({"lam": 0.25, "perplexity": 11.0, "toxicity": 0.3, "toxic_rate": 0.1})
    figure = sweep_figure(toxic, ["lam"], ["perplexity", "toxicity", "toxic_rate"], grid=GRID)
    assert tuple(figure.layout.xaxis.range) == (0.0, 1.0)
    assert figure.layout.yaxis.rangemode == "tozero" and figure.layout.yaxis.title.text.startswith("mean toxicity ↓")


def test_references_are_dashed_lines_in_the_legend_across_the_grid() -> None:
    figure = sweep_figure(rows({"lam": 0.5, "perplexity": 11.0}), ["lam"], ["perplexity"], grid=GRID)
    lines = {trace.name: trace for trace in figure.data if trace.line.dash}
    assert set(lines) == {"base", "toxic"}
    assert tuple(lines["base"].x) == (0.0, 1.0) and tuple(lines["base"].y) == (10.0, 10.0)
    assert lines["base"].line.dash != lines["toxic"].line.dash and not figure.layout.shapes


def test_intervals_are_bands_under_their_curves() -> None:
    frame = rows({"lam": 0.0, "acc": 0.7, "acc_low": 0.6, "acc_high": 0.8},
                 {"lam": 1.0, "acc": 0.9, "acc_low": 0.85, "acc_high": 0.95}, metric="acc")  # fmt: skip
    figure = sweep_figure(frame, ["lam"], ["acc"], grid=GRID)
    band = next(trace for trace in figure.data if trace.fill == "toself")
    assert list(band.x) == [0.0, 1.0, 1.0, 0.0] and list(band.y) == [0.8, 0.95, 0.85, 0.6]
    assert [trace.name for trace in figure.data].index(band.name) < [t.name for t in figure.data].index("acc")
    without = sweep_figure(rows({"lam": 0.0, "perplexity": 9.0}), ["lam"], ["perplexity"], grid=GRID)
    assert not any(trace.fill for trace in without.data)  # perplexity has no interval: no band


def test_two_parameters_draw_the_whole_grid_as_a_heatmap_from_the_start() -> None:
    grid = {"a": (0.0, 1.0), "b": (0.0, 0.5, 1.0)}
    only_references = rows()
    assert sweep_figure(only_references, ["a", "b"], ["perplexity"], grid=grid).data[0].z.shape == (3, 2)
    figure = sweep_figure(rows({"a": 0.0, "b": 0.5, "perplexity": 11.0}), ["a", "b"], ["perplexity"], grid=grid)
    z = figure.data[0].z
    assert z.shape == (3, 2) and z[1][0] == 11.0 and math.isnan(z[0][0])
    assert figure.data[0].colorbar.title.text == "perplexity ↓"


# progress, Stop, the CSV and run.json -----------------------------------------


def test_progress_gives_an_eta_from_the_mean_time_per_point() -> None:
    assert progress_line(7, 11, 21.0) == "7/11 points · about 12 s left"
    assert progress_line(2, 10, 60.0, "settings") == "2/10 settings · about 4 min left"
    assert progress_line(11, 11, 25.4) == "done: 11/11 points in 25 s"
    assert progress_line(0, 4, 0.0) == "0/4 points · starting"


def test_a_sweep_says_where_it_is_and_when_it_is_done(controller) -> None:
    updates = list(controller.sweep("s", "lam*a", {"lam": "0,1"}, ["austen-perplexity"]))
    texts = [text for _, _, text in updates]
    assert texts[0].startswith("1/4 points · about ") and texts[0].endswith(" left")
    assert texts[-1].startswith("done: 4/4 points in ")
    assert tuple(updates[-1][0].layout.xaxis.range) == (0.0, 1.0)
    assert list(updates[-1][1].columns[:3]) == ["lam", "kind", "label"]  # the parameter first: in view on a phone


def test_stop_says_where_it_stopped_and_keeps_the_points(controller) -> None:
    stream = controller.sweep("s", "lam*a", {"lam": "0:1:0.25"}, ["austen-perplexity"])
    next(stream)
    next(stream)
    controller.stop("s")
    figure, frame, text = list(stream)[-1]
    assert text == "stopped at 2/7 points" and len(frame) == 2  # the base and a alone, both kept
    assert {trace.name for trace in figure.data} >= {"base", "a"}


def test_stop_keeps_the_point_a_gpu_worker_measured_after_it(base_dirs, adapters, monkeypatch) -> None:
    """A sweep in a GPU worker does not see the server's Stop flag: it sends one more point,
    which was measured, so it is kept."""

    def deaf(fn, seconds):
        return lambda *args, stop=None, **kwargs: fn(*args, **kwargs)

    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", str(base_dirs["llama"].parent.parent))
    controller = Controller(gpu=deaf)
    controller.start("s", base=str(base_dirs["llama"]))
    controller.add_adapter("s", "a", str(adapters["llama"]["lora_a"]))
    stream = controller.sweep("s", "lam*a", {"lam": "0:1:0.25"}, ["austen-perplexity"])
    next(stream)
    controller.stop("s")
    _, frame, text = list(stream)[-1]
    assert text == "stopped at 2/7 points" and len(frame) == 2


def test_the_csv_keeps_every_digit_and_run_json_says_what_ran(controller) -> None:
    sizes = {"n": 50, "samples": 3, "ppl_characters": 400}
    record = controller.sweep_record("s", "-lam*toxic", {"lam": "0,1"}, ["austen-perplexity"], **sizes)
    frame = list(controller.sweep("s", "-lam*toxic", {"lam": "0,1"}, ["austen-perplexity"], **sizes))[-1][1]
    table, run = controller.sweep_table("s", frame, record)
    assert table.name == "sweep-minus-lam-toxic__lam=0-1.csv" and run.name == "sweep-minus-lam-toxic__lam=0-1.run.json"
    back = pd.read_csv(table, float_precision="round_trip")
    numbers = list(frame.select_dtypes("number").columns)
    assert len(numbers) >= 2  # λ and perplexity
    pd.testing.assert_frame_equal(back[numbers], frame[numbers], check_exact=True)  # every digit, not 4
    facts = json.loads(run.read_text())
    state = controller.manager.state("s")
    assert facts["expression"] == "-lam*toxic" and facts["mode"] == "exact" and facts["seed"] == 0
    assert facts["base"] and facts["n"] == 50 and facts["samples"] == 3 and facts["ppl_characters"] == 400
    assert facts["modules"]["toxic"]["fingerprint"] == state.modules["toxic"].fingerprint
    assert facts["modules"]["toxic"]["source"] and facts["grid"] == {"lam": [0.0, 1.0]}
    assert set(facts["versions"]) == {"torch", "transformers", "peft", "gradio", "workbench"}
    assert facts["complete"] and facts["grid_points"] == 2 and facts["rows"] == 4


def test_a_stopped_sweep_writes_what_it_measured(controller) -> None:
    record = controller.sweep_record("s", "lam*a", {"lam": "0:1:0.25"}, ["austen-perplexity"])
    stream = controller.sweep("s", "lam*a", {"lam": "0:1:0.25"}, ["austen-perplexity"])
    for _ in range(3):
        next(stream)
    controller.stop("s")
    frame = list(stream)[-1][1]
    table, run = controller.sweep_table("s", frame, record)
    assert len(pd.read_csv(table)) == 3
    facts = json.loads(run.read_text())
    assert (facts["grid_points_measured"], facts["grid_points"], facts["complete"]) == (1, 5, False)


def test_the_screen_rounds_to_four_significant_digits() -> None:
    frame = pd.DataFrame({"kind": ["point"], "lam": [0.1], "perplexity": [12.345678901], "n": [3]})
    shown = rounded(frame)
    assert shown["perplexity"].iloc[0] == 12.35 and shown["kind"].iloc[0] == "point" and shown["n"].iloc[0] == 3
    assert frame["perplexity"].iloc[0] == 12.345678901  # the frame itself keeps every digit


# toxicity --------------------------------------------------------------------


def test_toxicity_reports_each_setting_as_it_is_sampled(controller) -> None:
    calls = []
    boxes, curve, frame, note = controller.toxicity("s", "toxic", ["hello"], 2, [0.5],
                                                    on_setting=lambda *call: calls.append(call))  # fmt: skip
    assert calls == [(1, 3, "base"), (2, 3, "toxic"), (3, 3, "-0.5·toxic")]
    assert list(frame.columns[:2]) == ["setting", "score"]  # the score is never lost to wrapping
    names = {trace.name for trace in curve.data}
    assert {"mean toxicity", "perplexity", "base toxicity", "base perplexity", "+toxic toxicity"} <= names
    module = next(trace for trace in curve.data if trace.name == "+toxic toxicity")
    assert list(module.x) == [-1.0]  # +toxic is −λ·toxic at λ = −1
    assert curve.layout.yaxis.rangemode == "tozero" and boxes.layout.yaxis.rangemode == "tozero"
    assert curve.layout.yaxis2.rangemode == "tozero"  # perplexity too: both axes start at 0
    assert tuple(curve.layout.xaxis.range) == (-1.0, 0.5)
    assert "3 settings × 2 samples in" in note


def test_the_naive_negation_ablation_samples_what_the_module_itself_samples(controller) -> None:
    """-1·toxic with A and B both negated is (−B)(−A) = BA: the same model, so the same
    seeded completions as +toxic, where ⊖ gives others. The ablation stays off ⊖'s curve."""
    calls = []
    _, curve, frame, _ = controller.toxicity("s", "toxic", ["hello"], 3, [1.0], on_setting=lambda *c: calls.append(c),
                                             naive=True)  # fmt: skip
    assert [label for _, _, label in calls] == ["base", "toxic", "-1·toxic", "naive -1·toxic"]
    completions = {name: list(group["completion"]) for name, group in frame.groupby("setting")}
    assert completions["naive -1·toxic"] == completions["toxic"] != completions["-1·toxic"]
    assert sum(len(trace.x) for trace in curve.data if trace.name == "mean toxicity") == 1


def test_a_base_that_is_not_a_language_model_points_to_the_unlearning_presets(base_dirs, monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", str(base_dirs["bert"].parent.parent))
    controller = Controller()
    controller.start("s", base=str(base_dirs["bert"]))
    refusal = controller.toxicity_refusal("s")
    assert "not a language model" in refusal and "unlearning-lora" in refusal and "\n" not in refusal
    with pytest.raises(WorkbenchError, match="pick an unlearning preset"):
        controller.toxicity("s", "toxic", ["hi"], 2, [1.0])
