"""Writing plotly figures, and the one visual encoding every figure of the project uses.

The encoding (one meaning per visual channel, in every figure and panel):

- **colour = condition** (:data:`CONDITION_COLORS`): ``no_trigger`` blue, ``trigger`` vermillion,
  ``near_miss`` green (Okabe-Ito, colour-blind safe). These colours mean a condition and nothing
  else: series that are not a condition draw from :data:`SERIES_COLORS`, the figures' colorway.
- **line style and marker = intervention** (:func:`line_style`): the family sets the marker
  symbol, the control sets the dash (real direction solid, ``random`` dashed, ``orthogonal``
  dash-dot, with open markers); ``none`` (no intervention) is dotted.
- **one legend entry per meaning** (:func:`add_key`): the legend is a key, one entry per condition
  and one per intervention, instead of one entry per trace; clicking a condition hides its traces.

Every trace that shows a condition or an intervention says so in its ``meta``
(``{"condition": ..., "family": ..., "control": ...}``, set by :func:`encoded`), so a test can
read any figure's JSON and check that the encoding holds.

Files: :func:`save_figures` writes ``name.html`` (every HTML file in a folder shares one
``plotly.min.js`` beside it, so figures open offline) and ``name.plotly.json`` (the figure
itself, which ``report.html`` and the static gallery render). Writes are atomic.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .io import atomic_write

__all__ = ["save_figures", "rate_error", "CONDITION_COLORS", "SERIES_COLORS", "condition_color", "line_style",
           "intervention_name", "encoded", "add_key", "x_offsets", "house_style", "FIGURE_JSON"]

FIGURE_JSON = ".plotly.json"

CONDITION_COLORS: dict[str, str] = {"no_trigger": "#0072B2", "trigger": "#D55E00", "near_miss": "#009E73"}
_MORE_CONDITION_COLORS = ("#CC79A7", "#E69F00", "#56B4E9", "#F0E442")  # conditions a config adds later
SERIES_COLORS: tuple[str, ...] = ("#4D4D4D", "#9467BD", "#8C564B", "#BCBD22", "#17BECF", "#7F7F7F")
KEY_COLOR = "#444444"  # the intervention entries of a legend key: style only, no condition

FAMILY_SYMBOLS: dict[str, str] = {
    "none": "x", "capping": "circle", "triggered_capping": "square", "subspace_capping": "pentagon",
    "conditional_capping": "hexagon", "steering": "diamond", "axis_ablation": "triangle-up",
    "mean_diff_ablation": "triangle-down", "positive_control": "star"}
_MORE_SYMBOLS = ("star-square", "cross", "hourglass", "bowtie", "triangle-left", "triangle-right", "star-diamond")
CONTROL_DASH: dict[str | None, str] = {None: "solid", "random": "dash", "orthogonal": "dashdot"}
_CONTROL_MARK = {None: "", "random": "-open", "orthogonal": "-open-dot"}


def _stable_pick(name: str, options: Sequence[str]) -> str:
    return options[zlib.crc32(name.encode()) % len(options)]


def condition_color(condition: str) -> str:
    """The condition's colour; a condition outside :data:`CONDITION_COLORS` gets a stable spare one."""
    return CONDITION_COLORS.get(condition) or _stable_pick(condition, _MORE_CONDITION_COLORS)


def line_style(family: str, control: str | None = None) -> dict:
    """``{"dash", "symbol"}`` of an intervention: the family's marker, the control's dash (and open marker)."""
    control = control or None
    symbol = FAMILY_SYMBOLS.get(family) or _stable_pick(family, _MORE_SYMBOLS)
    dash = "dot" if family == "none" else CONTROL_DASH.get(control) or _stable_pick(control, ("longdash", "dot"))
    return {"dash": dash, "symbol": symbol + (_CONTROL_MARK.get(control, "-open") if family != "none" else "")}


def intervention_name(family: str, control: str | None = None) -> str:
    """The legend name of an intervention: ``capping``, ``capping, random control``, ``no intervention``."""
    name = "no intervention" if family == "none" else family.replace("_", " ")
    return f"{name}, {control} control" if control else name


def encoded(condition: str | None = None, family: str | None = None, control: str | None = None, *,
            kind: str = "scatter", legend: bool = False) -> dict:
    """Keyword arguments that put a trace in the encoding (colour, dash, marker, ``meta``, legend group).

    ``kind``: ``scatter`` (lines and markers), ``violin``, ``bar`` or ``histogram``. The trace joins
    its condition's legend group and stays out of the legend (:func:`add_key` draws the key), unless
    ``legend``: then it is its meaning's one legend entry (a figure with one trace per condition).
    """
    meta: dict = {}
    color = condition_color(condition) if condition else None
    style = line_style(family, control) if family else {}
    if condition:
        meta["condition"] = condition
    if family:
        meta.update(family=family, control=control or None)
    out: dict = {"meta": meta, "showlegend": legend, "legendgroup": condition or intervention_name(family, control)}
    if kind == "scatter":
        out["line"] = {k: v for k, v in (("color", color), ("dash", style.get("dash"))) if v}
        out["marker"] = {k: v for k, v in (("color", color), ("symbol", style.get("symbol"))) if v}
    elif kind == "violin":
        out.update(line={"color": color}, fillcolor=color, opacity=0.6, marker={"color": color})
    else:  # bar, histogram
        out["marker"] = {"color": color}
    return out


def add_key(fig, conditions: Iterable[str] = (), interventions: Iterable[tuple[str, str | None]] = ()) -> None:
    """Legend-only traces: one entry per condition (its colour) and per intervention (its line and marker)."""
    import plotly.graph_objects as go

    for i, cond in enumerate(dict.fromkeys(conditions)):
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", name=cond, legendgroup=cond, showlegend=True,
            marker={"color": condition_color(cond), "symbol": "square", "size": 12},
            legendgrouptitle_text="condition (colour)" if i == 0 else None,
            meta={"key": "condition", "condition": cond}, hoverinfo="skip"))
    for i, (family, control) in enumerate(dict.fromkeys((f, c or None) for f, c in interventions)):
        style = line_style(family, control)
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="lines+markers", name=intervention_name(family, control),
            legendgroup=intervention_name(family, control), showlegend=True,
            line={"color": KEY_COLOR, "dash": style["dash"]},
            marker={"color": KEY_COLOR, "symbol": style["symbol"], "size": 9},
            legendgrouptitle_text="intervention (line, marker)" if i == 0 else None,
            meta={"key": "intervention", "family": family, "control": control}, hoverinfo="skip"))


def x_offsets(n: int, span: float, share: float = 0.04) -> list[float]:
    """Centred offsets for ``n`` series at the same x, so their error bars do not overlap.

    Each neighbour is ``share`` of the axis ``span`` apart (the hover text keeps the true x).
    """
    step = share * (span or 1.0)
    return [(i - (n - 1) / 2) * step for i in range(n)]


def house_style(fig) -> None:
    """White background, and a colorway without the condition colours (so a default colour never means one)."""
    fig.update_layout(template="plotly_white", colorway=list(SERIES_COLORS),
                      legend={"groupclick": "togglegroup"}, font={"family": "sans-serif"})


def save_figures(fig_dir: str | Path, figs: Mapping[str, object]) -> list[Path]:
    """Write ``{name: plotly Figure}`` as ``fig_dir/name.html`` and ``name.plotly.json``; returns the HTML paths."""
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figs.items():
        house_style(fig)
        path = fig_dir / f"{name}.html"
        with atomic_write(fig_dir / f"{name}{FIGURE_JSON}") as fh:
            fh.write(fig.to_json())
        with atomic_write(path) as fh:
            fh.write(fig.to_html(include_plotlyjs="directory", full_html=True, include_mathjax=False))
        paths.append(path)
    js = fig_dir / "plotly.min.js"
    if paths and not js.exists():
        from plotly.offline import get_plotlyjs

        with atomic_write(js) as fh:
            fh.write(get_plotlyjs())
    return paths


def rate_error(rates: list[Mapping]) -> dict:
    """Asymmetric plotly error bars from Wilson intervals (``{"rate","lo","hi"}`` dicts)."""
    return dict(type="data", symmetric=False, array=[r["hi"] - r["rate"] for r in rates],
                arrayminus=[r["rate"] - r["lo"] for r in rates])
