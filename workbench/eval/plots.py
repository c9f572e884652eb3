"""The plotly figures the UI and the CLI share, drawn from a sweep's DataFrame."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from workbench.eval.intervals import interval_columns

REFERENCE_DASH = "dash"
REFERENCE_DASHES = ("dash", "dot", "dashdot", "longdash", "longdashdot")  # the base, then each module alone
COLORS = qualitative.Plotly
# Which way is better, per measure column. A task's column is named for the task
# (sentiment-validation) and holds accuracy or MCC, so anything not listed is higher-better;
# "perplexity:<text>" columns go by their stem.
DIRECTIONS: dict[str, str] = {"perplexity": "lower", "toxicity": "lower", "toxic_rate": "lower"}


def points(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["kind"] == "point"] if "kind" in frame else frame


def references(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["kind"] == "reference"] if "kind" in frame else frame.iloc[0:0]


def better(metric: str) -> str:
    """"higher" or "lower": which way is better for a measure column."""
    return DIRECTIONS.get(metric.partition(":")[0], "higher")


def arrow(metric: str) -> str:
    return "↓" if better(metric) == "lower" else "↑"


def axis_title(metrics: Sequence[str], label: str = "") -> str:
    """An axis named for its metrics and which way is better: "perplexity ↓ (lower is better)"."""
    ways = {better(m) for m in metrics}
    if len(ways) != 1:
        return ", ".join(f"{m} {arrow(m)}" for m in metrics)
    way = ways.pop()
    return f"{label or ', '.join(metrics)} {arrow(metrics[0])} ({way} is better)"


def grid_range(values: Sequence[float]) -> tuple[float, float]:
    """The x range of a whole grid, set before its points arrive so the plot never rescales;
    a one-value grid gets a unit-wide range around its value."""
    low, high = float(min(values)), float(max(values))
    return (low - 0.5, high + 0.5) if low == high else (low, high)


def _curve(frame: pd.DataFrame, parameter: str) -> pd.DataFrame:
    return points(frame).sort_values(parameter) if parameter in frame else points(frame)


def _span(curve: pd.DataFrame, parameter: str, x_range: Sequence[float] | None) -> tuple[float, float] | None:
    if x_range is not None:
        return float(x_range[0]), float(x_range[1])
    if parameter in curve and curve[parameter].notna().any():
        return float(curve[parameter].min()), float(curve[parameter].max())
    return None


def _faint(color: str, alpha: float = 0.18) -> str:
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def _band(curve: pd.DataFrame, parameter: str, metric: str, color: str, name: str = "") -> go.Scatter | None:
    """The metric's 95% interval as a filled band under its curve, when the rows carry one."""
    low, high, _ = interval_columns(metric)
    if parameter not in curve or low not in curve or high not in curve:
        return None
    rows = curve[[parameter, low, high]].dropna()
    if rows.empty:
        return None
    x = list(rows[parameter])
    return go.Scatter(x=x + x[::-1], y=list(rows[high]) + list(rows[low])[::-1], fill="toself", mode="lines",
                      line={"width": 0}, fillcolor=_faint(color), name=f"{name or metric} 95% interval",
                      legendgroup=metric, showlegend=False, hoverinfo="skip")  # fmt: skip


def _add_reference(figure: go.Figure, span: tuple[float, float] | None, value: float, name: str, dash: str,
                   color: str, secondary_y: bool | None = None) -> None:  # fmt: skip
    """A reference (the base, a module alone) as a dashed line across the x range, named in
    the legend; with no x range yet (no point, no grid), a labelled horizontal line."""
    where = {} if secondary_y is None else {"secondary_y": secondary_y}
    if span is None:
        figure.add_hline(y=value, line_dash=dash, line_width=1, annotation_text=name, opacity=0.6, **where)
        return
    figure.add_trace(go.Scatter(x=list(span), y=[value, value], mode="lines", name=name, opacity=0.75,
                                line={"dash": dash, "width": 1.5, "color": color}, hoverinfo="name+y"),
                     **where)  # fmt: skip


def _finish(figure: go.Figure, title: str, parameter: str, x_range: Sequence[float] | None) -> None:
    figure.update_layout(title=title, template="plotly_white", legend_title="",
                         legend={"orientation": "h", "yanchor": "top", "y": -0.18})  # fmt: skip
    figure.update_xaxes(title_text=parameter)
    if x_range is not None:
        figure.update_xaxes(range=[float(x_range[0]), float(x_range[1])])


def metric_plot(frame: pd.DataFrame, parameter: str, metrics: Sequence[str], title: str = "", *,
                x_range: Sequence[float] | None = None) -> go.Figure:  # fmt: skip
    """Each metric against λ with its interval as a band, their average when there are
    several, and the base and each module alone as dashed reference lines in the legend
    (the paper's Fig. 2). `x_range` fixes the x axis (the whole grid's)."""
    figure = go.Figure()
    curve = _curve(frame, parameter)
    present = [m for m in metrics if m in frame]
    span = _span(curve, parameter, x_range)
    for i, metric in enumerate(present):
        color = COLORS[i % len(COLORS)]
        band = _band(curve, parameter, metric, color)
        if band is not None:
            figure.add_trace(band)
        figure.add_trace(go.Scatter(x=curve.get(parameter), y=curve[metric], mode="lines+markers", name=metric,
                                    legendgroup=metric, line={"color": color}, cliponaxis=False))  # fmt: skip
    if len(present) > 1 and not curve.empty:
        figure.add_trace(
            go.Scatter(
                x=curve[parameter], y=curve[present].mean(axis=1), mode="lines+markers", name="average",
                line={"width": 3, "color": "black"}, cliponaxis=False,
            )
        )  # fmt: skip
    for j, (_, row) in enumerate(references(frame).iterrows()):
        for i, metric in enumerate(present):
            value = row.get(metric)
            if pd.notna(value):
                label = f"{row['label']} ({metric})" if len(present) > 1 else str(row["label"])
                dash = REFERENCE_DASHES[j % len(REFERENCE_DASHES)]
                _add_reference(figure, span, float(value), label, dash, COLORS[i % len(COLORS)])
    _finish(figure, title or f"{', '.join(present)} against {parameter}", parameter, x_range)
    figure.update_yaxes(title_text=axis_title(present) if present else "metric")
    return figure


def toxicity_plot(frame: pd.DataFrame, parameter: str, title: str = "", *, x_range: Sequence[float] | None = None,
                  perplexity: str | None = None) -> go.Figure:  # fmt: skip
    """Mean toxicity (with its interval as a band) against λ, with perplexity on a second
    axis (the paper's Table 4 as a curve), both from 0; references as dashed lines in the
    legend, and rows of kind "module" (a module itself, e.g. +toxic at λ = -1) as points.
    `perplexity` is the frame's perplexity column (by default its first): the legend names
    it, saying what text was measured, and the axis says "perplexity"."""
    perplexity = perplexity or next((c for c in frame.columns if c.startswith("perplexity")), "perplexity")
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    curve = _curve(frame, parameter)
    span = _span(curve, parameter, x_range)
    toxic_color, ppl_color = COLORS[0], COLORS[1]
    if "toxicity" in frame:
        band = _band(curve, parameter, "toxicity", toxic_color, "mean toxicity")
        if band is not None:
            figure.add_trace(band, secondary_y=False)
        figure.add_trace(go.Scatter(x=curve.get(parameter), y=curve["toxicity"], name="mean toxicity",
                                    mode="lines+markers", legendgroup="toxicity", line={"color": toxic_color},
                                    cliponaxis=False), secondary_y=False)  # fmt: skip
    if perplexity in frame:
        figure.add_trace(go.Scatter(x=curve.get(parameter), y=curve[perplexity], name=perplexity,
                                    mode="lines+markers", line={"dash": "dot", "color": ppl_color},
                                    cliponaxis=False), secondary_y=True)  # fmt: skip
    for j, (_, row) in enumerate(references(frame).iterrows()):
        dash = REFERENCE_DASHES[j % len(REFERENCE_DASHES)]
        for column, color, secondary in (("toxicity", toxic_color, False), (perplexity, ppl_color, True)):
            if column in row and pd.notna(row[column]):
                name = f"{row['label']} {'toxicity' if column == 'toxicity' else column}"
                _add_reference(figure, span, float(row[column]), name, dash, color, secondary_y=secondary)
    modules = frame[frame["kind"] == "module"] if "kind" in frame else frame.iloc[0:0]
    for _, row in modules.iterrows():
        for column, color, secondary, symbol in (("toxicity", toxic_color, False, "diamond"),
                                                 (perplexity, ppl_color, True, "diamond-open")):  # fmt: skip
            if column in row and pd.notna(row[column]):
                name = f"{row['label']} {'toxicity' if column == 'toxicity' else column}"
                figure.add_trace(go.Scatter(x=[row[parameter]], y=[row[column]], mode="markers", name=name,
                                            marker={"size": 12, "color": color, "symbol": symbol},
                                            cliponaxis=False), secondary_y=secondary)  # fmt: skip
    _finish(figure, title or f"toxicity and perplexity against {parameter}", parameter, x_range)
    figure.update_yaxes(title_text=axis_title(["toxicity"], "mean toxicity"), rangemode="tozero", secondary_y=False)
    figure.update_yaxes(title_text=axis_title([perplexity], "perplexity"), rangemode="tozero", secondary_y=True,
                        showgrid=False)  # fmt: skip
    return figure


def heatmap(frame: pd.DataFrame, x: str, y: str, metric: str, *,
            grid: Mapping[str, Sequence[float]] | None = None) -> go.Figure:  # fmt: skip
    """A metric over a 2-D grid of two parameters; with `grid` (each parameter's values),
    every cell of the grid is there from the start and fills as its point is measured."""
    measured = points(frame)
    if x in measured and y in measured and metric in measured and not measured.empty:
        table = measured.pivot_table(index=y, columns=x, values=metric, dropna=False)
    else:
        table = pd.DataFrame(dtype=float)
    if grid is not None:
        table = table.reindex(index=list(grid[y]), columns=list(grid[x]))
    figure = go.Figure(go.Heatmap(z=table.values, x=list(table.columns), y=list(table.index),
                                  colorscale="Viridis", reversescale=better(metric) == "lower",
                                  colorbar={"title": f"{metric} {arrow(metric)}"}))  # fmt: skip
    title = f"{metric} {arrow(metric)} over {x} and {y} ({better(metric)} is better; the brighter the better)"
    figure.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white")
    return figure


def sweep_figure(frame: pd.DataFrame, axes_names: Sequence[str], columns: Sequence[str], *,
                 grid: Mapping[str, Sequence[float]] | None = None) -> go.Figure:  # fmt: skip
    """The one figure for a sweep's rows as they grow: a heatmap over two parameters, the
    toxicity plot when toxicity is measured, else each metric against the parameter.
    `grid` (each parameter's values) fixes the axes before the points arrive."""
    names = list(axes_names)
    if len(names) == 2:
        return heatmap(frame, names[0], names[1], columns[0], grid=grid)
    x_range = grid_range(grid[names[0]]) if grid and grid.get(names[0]) else None
    if "toxicity" in columns:
        return toxicity_plot(frame, names[0], x_range=x_range)
    return metric_plot(frame, names[0], columns, x_range=x_range)


def live_figure(frame: pd.DataFrame, parameter: str | None, columns: Sequence[str], at: float | None,
                grid: Sequence[float] = (), note: str = "") -> go.Figure:  # fmt: skip
    """The Compose tab's curve: the sweep's figure for what is measured so far, with the
    slider's λ as a vertical line and a marker on each measure where it has been measured."""
    if parameter is None or frame.empty or parameter not in frame:
        figure = go.Figure()
        figure.update_layout(template="plotly_white", height=360)
        if note:
            figure.add_annotation(text=note, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
        return figure
    toxic = "toxicity" in columns
    figure = toxicity_plot(frame, parameter) if toxic else metric_plot(frame, parameter, columns)
    if grid:
        figure.update_xaxes(range=[min(grid) - 0.02, max(grid) + 0.02])
    if at is not None:
        figure.add_vline(x=at, line_dash="dot", line_color="crimson", opacity=0.8)
        here = points(frame)
        here = here[(here[parameter] - at).abs() < 1e-9]
        for column in [c for c in columns if c in here and c != "toxic_rate" and not here.empty]:
            marker = go.Scatter(x=[at], y=[float(here[column].iloc[0])], mode="markers", showlegend=False,
                                marker={"size": 13, "color": "crimson", "symbol": "diamond"},
                                name=f"{parameter}={at:g}")  # fmt: skip
            if toxic:
                figure.add_trace(marker, secondary_y=column.startswith("perplexity"))
            else:
                figure.add_trace(marker)
    figure.update_layout(height=360, margin={"t": 50, "b": 40, "l": 50, "r": 20})
    if note:
        figure.update_layout(title=note)
    return figure
