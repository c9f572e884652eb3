"""The plotly figures the UI and the CLI share, drawn from a sweep's DataFrame."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

REFERENCE_DASH = "dash"


def points(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["kind"] == "point"] if "kind" in frame else frame


def references(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["kind"] == "reference"] if "kind" in frame else frame.iloc[0:0]


def metric_plot(frame: pd.DataFrame, parameter: str, metrics: Sequence[str], title: str = "") -> go.Figure:
    """Each metric against λ, their average when there are several, and the base and each
    module alone as dashed reference lines (the paper's Fig. 2)."""
    figure = go.Figure()
    curve = points(frame).sort_values(parameter) if parameter in frame else points(frame)
    present = [m for m in metrics if m in frame]
    for metric in present:
        figure.add_trace(go.Scatter(x=curve.get(parameter), y=curve[metric], mode="lines+markers", name=metric))
    if len(present) > 1 and not curve.empty:
        figure.add_trace(
            go.Scatter(
                x=curve[parameter], y=curve[present].mean(axis=1), mode="lines+markers", name="average",
                line={"width": 3, "color": "black"},
            )
        )  # fmt: skip
    for _, row in references(frame).iterrows():
        for metric in present:
            value = row.get(metric)
            if pd.notna(value):
                label = f"{row['label']} ({metric})" if len(present) > 1 else str(row["label"])
                figure.add_hline(
                    y=float(value), line_dash=REFERENCE_DASH, line_width=1, annotation_text=label, opacity=0.6
                )
    figure.update_layout(title=title or f"{', '.join(present)} against {parameter}", xaxis_title=parameter,
                         yaxis_title="metric", template="plotly_white", legend_title="")  # fmt: skip
    return figure


def toxicity_plot(frame: pd.DataFrame, parameter: str, title: str = "") -> go.Figure:
    """Mean toxicity against λ, with perplexity on a second axis (the paper's Table 4 as a curve)."""
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    curve = points(frame).sort_values(parameter) if parameter in frame else points(frame)
    if "toxicity" in frame:
        figure.add_trace(go.Scatter(x=curve[parameter], y=curve["toxicity"], name="mean toxicity",
                                    mode="lines+markers"), secondary_y=False)  # fmt: skip
    if "perplexity" in frame:
        figure.add_trace(go.Scatter(x=curve[parameter], y=curve["perplexity"], name="perplexity",
                                    mode="lines+markers", line={"dash": "dot"}), secondary_y=True)  # fmt: skip
    for _, row in references(frame).iterrows():
        if "toxicity" in row and pd.notna(row["toxicity"]):
            figure.add_hline(y=float(row["toxicity"]), line_dash=REFERENCE_DASH, line_width=1,
                             annotation_text=f"{row['label']} toxicity", opacity=0.6)  # fmt: skip
    figure.update_layout(title=title or f"toxicity and perplexity against {parameter}", template="plotly_white")
    figure.update_xaxes(title_text=parameter)
    figure.update_yaxes(title_text="mean toxicity", secondary_y=False)
    figure.update_yaxes(title_text="perplexity", secondary_y=True)
    return figure


def heatmap(frame: pd.DataFrame, x: str, y: str, metric: str) -> go.Figure:
    """A metric over a 2-D grid of two parameters."""
    grid = points(frame).pivot_table(index=y, columns=x, values=metric)
    figure = go.Figure(go.Heatmap(z=grid.values, x=list(grid.columns), y=list(grid.index), colorbar={"title": metric}))
    figure.update_layout(title=f"{metric} over {x} and {y}", xaxis_title=x, yaxis_title=y, template="plotly_white")
    return figure
