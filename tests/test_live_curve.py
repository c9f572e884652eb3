"""The Compose tab's live curve, as the tab calls it, on the tiny LLaMA: coarse points
first, nothing measured twice, the marker and readout from the same rows, a new
composition stopping the old fill, and λ chosen on validation."""

import plotly.graph_objects as go
import pytest

from workbench.errors import WorkbenchError
from workbench.eval.curve import coarse_first, describe_value, readout_line
from workbench.ui.controller import Controller


@pytest.fixture
def controller(tiny_controller, monkeypatch):
    monkeypatch.setattr("workbench.ui.controller.LIVE_SAMPLES", 2)  # small: the curve measures 11 points
    monkeypatch.setattr("workbench.ui.controller.LIVE_TOKENS", 4)
    return tiny_controller("s")


def measured(controller: Controller) -> list[float]:
    frame = controller.curve("s").frame()
    return sorted(frame[frame["kind"] == "point"]["lam"]) if "lam" in frame else []


def marker_x(figure: go.Figure) -> list[float]:
    return [trace.x[0] for trace in figure.data if trace.marker and trace.marker.symbol == "diamond"]


def test_coarse_first_spreads_five_points_ends_included() -> None:
    grid = [round(i / 10, 1) for i in range(11)]
    first, rest = coarse_first(grid)
    assert first == [0.0, 0.2, 0.5, 0.8, 1.0] and sorted(first + rest) == grid
    assert coarse_first([0.0, 1.0]) == ([0.0, 1.0], [])


def test_the_readout_line_gives_value_interval_n_and_references() -> None:
    point = {"acc": 0.821, "acc_low": 0.797, "acc_high": 0.845, "acc_n": 200.0}
    line = readout_line(point, {"base": {"acc": 0.43}, "a": {"acc": 0.78}}, ["acc"])
    assert line == "acc 0.821 ± 0.024 (n=200) · base 0.430 · a 0.780"
    assert describe_value({"perplexity": 31.52}, "perplexity") == "31.5"


def test_the_fill_measures_the_grid_coarse_first_and_the_marker_follows(controller) -> None:
    controller.recompose("s", "-lam*toxic", {"lam": 0.2})
    assert measured(controller) == [0.2]  # the readout's own point is on the curve
    figures = controller.fill_curve("s")
    for _ in range(4):
        next(figures)
    assert measured(controller) == [0.0, 0.2, 0.5, 0.8, 1.0]  # the coarse grid first; 0.2 was measured
    figure = list(figures)[-1]
    assert measured(controller) == pytest.approx([i / 10 for i in range(11)])
    assert set(marker_x(figure)) == {0.2}  # one marker per measure
    hits = controller.results.hits
    shown = controller.recompose("s", "-lam*toxic", {"lam": 0.7})  # on the grid: read, not measured
    assert controller.results.hits == hits and set(marker_x(shown["figure"])) == {0.7}
    row = controller.curve("s").point(0.7)
    assert shown["readout"].startswith(f"toxicity {row['toxicity']:.3f}"[:14])


def test_a_new_composition_stops_the_old_fill(controller) -> None:
    controller.recompose("s", "-lam*toxic", {"lam": 0.2})
    figures = controller.fill_curve("s")
    next(figures)
    old = controller.curve("s")
    controller.recompose("s", "lam*a", {"lam": 0.5})
    assert old.stale.is_set() and list(figures) == []  # it ends at the next point, measuring nothing more
    assert controller.curve("s") is not old and measured(controller) == [0.5]


def test_two_parameters_read_out_but_draw_no_curve(controller) -> None:
    shown = controller.recompose("s", "x*a + y*toxic", {"x": 0.5, "y": -0.5})
    assert shown["readout"].startswith("toxicity ")
    assert "one parameter" in shown["figure"].layout.annotations[0].text
    assert len(list(controller.fill_curve("s"))) == 1
    with pytest.raises(WorkbenchError, match="one parameter"):
        controller.choose_lambda("s")


def test_lambda_is_chosen_on_validation_and_test_is_reported_beside(controller) -> None:
    controller.recompose("s", "-lam*toxic", {"lam": 0.2})
    values, text = controller.choose_lambda("s")
    frame = controller.curve("s").frame()
    base = frame[frame["label"] == "base"].iloc[0]
    allowed = frame[(frame["kind"] == "point") & (frame["perplexity"] <= 1.05 * base["perplexity"])]
    assert values["lam"] in set(allowed["lam"])  # the rule, applied to the validation curve
    assert allowed[allowed["lam"] == values["lam"]]["toxicity"].iloc[0] == allowed["toxicity"].min()
    assert "chosen on validation" in text and "Test, never used to choose" in text


def test_the_curves_grid_is_the_opened_presets_while_its_expression_is_on_screen(controller, monkeypatch) -> None:
    """One rule finds a session's preset: the one it opened. Its grid draws the curve until the
    expression is edited; a session built by hand with the same expression gets the plain grid."""
    from workbench.catalog.presets import PRESETS, Preset

    preset = Preset("coarse", "a test", "smollm2-135m-instruct", {}, "-lam*toxic", "lam=0:1:0.5", ())
    monkeypatch.setitem(PRESETS, "coarse", preset)
    controller.recompose("s", "-lam*toxic", {"lam": 0.5})
    assert len(controller.curve("s").grid) == 11  # built by hand: the plain grid, whatever the expression
    controller.ui("s").preset = "coarse"  # as Controller.start leaves a session it opened on the preset
    controller.recompose("s", "-lam*toxic", {"lam": 0.4})  # a change of value: the same curve
    controller.recompose("s", "-lam*a", {"lam": 0.5})
    assert len(controller.curve("s").grid) == 11  # edited away from the preset's expression
    controller.recompose("s", "-lam*toxic", {"lam": 0.5})
    assert controller.curve("s").grid == (0.0, 0.5, 1.0)
