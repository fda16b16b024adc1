"""Stress-test figures, read from a run folder (``results.jsonl``, ``projections.json``, ``directions.json``).

Every figure follows the project's encoding (:mod:`persona_probe.plots`): colour is the
condition, line style and marker the intervention (real direction solid, random control
dashed, no intervention dotted), and the legend is a key with one entry per meaning.

- ``em_vs_capping``: EM rate vs capping percentile, one panel per model and capped layer
  window, each condition with its random-direction control (matched threshold) and its
  no-intervention rate; series at the same percentile are offset a little so their Wilson
  intervals do not overlap (hover shows the true percentile).
- ``em_vs_coherence``: the trade-off, one point per intervention cell, one panel per
  condition; Wilson intervals on both axes.
- ``projection_distributions``: axis projections at the target layer of the uncapped answers,
  one violin per model and condition (triggered vs untriggered).
- ``mean_diff_cosine``: cosine of the mean-diff misalignment direction with the axis per layer
  (when it could be computed).
- ``defences_em_vs_coherence``: EM against coherence for single-axis, subspace and conditional
  capping (marker: the family; open: its matched control, joined to it by a dashed grey line;
  a conditional cap is joined to the same cap applied unconditionally by a solid grey line); one
  row of panels per EM measure the rows carry (the judge's ``em``, and a ground-truth
  template-match rate when present), one column per condition.

With a ground-truth measure in the rows (``template*`` rate columns), ``<measure>_vs_capping``
is drawn beside ``em_vs_capping``.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..capping import parse_experiment_id
from ..io import read_json, read_jsonl
from ..plots import add_key, encoded, intervention_name, rate_error, save_figures, x_offsets
from .config import CONDITIONS

__all__ = ["write_figures", "CAPPING_FAMILIES", "em_measures"]

CAPPING_FAMILIES = ("capping", "triggered_capping")
DEFENCES = ("capping", "subspace_capping", "conditional_capping")


def _cond_order(c: str) -> tuple:
    return (CONDITIONS.index(c) if c in CONDITIONS else len(CONDITIONS), c)


def _interval_text(rates: list[dict]) -> list[str]:
    return [f"{r['rate']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}] ({r['k']}/{r['n']})" for r in rates]


def _capping_points(rows: list[dict], metric: str) -> dict:
    """``{(model, family, window): {(condition, control): [(percentile, rate), ...]}}``."""
    panels: dict = {}
    for r in rows:
        if r["family"] not in CAPPING_FAMILIES or r["status"] != "ok" or not (r.get(metric) or {}).get("n"):
            continue
        try:
            start, end, q = parse_experiment_id(r["param"])
        except (TypeError, ValueError):
            continue
        series = panels.setdefault((r["model"], r["family"], f"layers {start}-{end - 1}"), {})
        series.setdefault((r["condition"], r["control"]), []).append((q, r[metric]))
    return panels


def _grid(titles: list[str], shared_y: bool = True):
    from plotly.subplots import make_subplots

    cols = min(3, len(titles))
    rows = math.ceil(len(titles) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, shared_yaxes=shared_y,
                        horizontal_spacing=0.06, vertical_spacing=0.18 if rows > 1 else 0.1)
    return fig, [(i // cols + 1, i % cols + 1) for i in range(len(titles))]


def _height(fig, n_rows: int) -> int:
    """Tall enough for the panels and for the legend key (one line per entry plus its two group titles)."""
    entries = sum(1 for t in fig.data if t.showlegend)
    return max(430 * n_rows, 190 + 30 * (entries + 2))  # the legend fits in the plot area's height


def _rate_vs_capping(rows: list[dict], metric: str = "em", label: str = "EM rate (judge)"):
    import plotly.graph_objects as go

    panels = _capping_points(rows, metric)
    if not panels:
        return None
    keys = sorted(panels, key=lambda k: (k[0], k[1], k[2]))
    fig, cells = _grid([f"{m}: {intervention_name(f)}, {w}" for m, f, w in keys])
    seen_iv, seen_cond = [], []
    for (model, family, window), (row, col) in zip(keys, cells):
        series = sorted(panels[(model, family, window)].items(), key=lambda kv: (_cond_order(kv[0][0]), kv[0][1] or ""))
        xs = sorted({q for _, pts in series for q, _ in pts})
        offsets = x_offsets(len(series), (xs[-1] - xs[0]) if len(xs) > 1 else 0.5)
        for ((cond, control), pts), off in zip(series, offsets):
            pts.sort(key=lambda p: p[0])
            rates = [p[1] for p in pts]
            fig.add_trace(go.Scatter(
                x=[q + off for q, _ in pts], y=[r["rate"] for r in rates], error_y=rate_error(rates),
                mode="lines+markers", name=f"{cond}, {intervention_name(family, control)}",
                customdata=[q for q, _ in pts], text=_interval_text(rates),
                hovertemplate="percentile %{customdata}<br>%{text}<extra>%{fullData.name}</extra>",
                **encoded(cond, family, control)), row=row, col=col)
            seen_cond.append(cond)
            seen_iv.append((family, control))
        fig.update_xaxes(tickvals=xs, ticktext=[f"{q:g}" for q in xs], row=row, col=col)  # true percentiles
        for cond in dict.fromkeys(c for (c, _), _ in series):
            none = [r for r in rows if r["family"] == "none" and r["status"] == "ok" and r["model"] == model
                    and r["condition"] == cond and (r.get(metric) or {}).get("n")]
            if none:
                rate = none[0][metric]
                fig.add_trace(go.Scatter(
                    x=[xs[0] + min(offsets), xs[-1] + max(offsets)], y=[rate["rate"]] * 2, mode="lines",
                    name=f"{cond}, no intervention", text=_interval_text([rate]) * 2,
                    hovertemplate="%{text}<extra>%{fullData.name}</extra>", **encoded(cond, "none")),
                    row=row, col=col)
                seen_iv.append(("none", None))
    add_key(fig, sorted(set(seen_cond), key=_cond_order), seen_iv)
    fig.update_layout(title=f"{label} vs capping percentile<br><sup>Wilson 95% intervals; random control: a random "
                            "direction at a matched threshold</sup>", height=_height(fig, cells[-1][0]))
    fig.update_yaxes(title_text=label, col=1)
    fig.update_xaxes(title_text="capping percentile")
    return fig


def _em_vs_coherence(rows: list[dict]):
    import plotly.graph_objects as go

    ok = [r for r in rows if r["status"] == "ok" and r["coherent"]["n"] and r["em"]["n"]]
    conditions = sorted({r["condition"] for r in ok}, key=_cond_order)
    if not conditions:
        return None
    fig, cells = _grid(conditions)
    ivs = list(dict.fromkeys((r["family"], r["control"]) for r in ok))
    for cond, (row, col) in zip(conditions, cells):
        for family, control in ivs:
            pts = [r for r in ok if r["condition"] == cond and r["family"] == family and r["control"] == control]
            if not pts:
                continue
            style = encoded(cond, family, control)
            style["marker"]["size"] = 10
            fig.add_trace(go.Scatter(
                x=[r["coherent"]["rate"] for r in pts], y=[r["em"]["rate"] for r in pts],
                error_x=rate_error([r["coherent"] for r in pts]), error_y=rate_error([r["em"] for r in pts]),
                mode="markers", name=f"{cond}, {intervention_name(family, control)}",
                text=[f"{r['model']}: {r['intervention']}" for r in pts],
                hovertemplate="%{text}<br>coherent %{x:.2f}<br>EM %{y:.2f}<extra></extra>", **style),
                row=row, col=col)
    add_key(fig, conditions, ivs)
    fig.update_layout(title="EM rate vs coherence per intervention cell (Wilson 95% intervals)",
                      height=_height(fig, cells[-1][0]))
    fig.update_yaxes(title_text="EM rate (judge)", col=1)
    fig.update_xaxes(title_text="coherence rate")
    return fig


def em_measures(rows: list[dict]) -> list[tuple[str, str]]:
    """The EM rates rows carry: the judge's ``em``, and any judge-free ground truth (``template*`` rate columns)."""
    def has(key):
        return any(isinstance(r.get(key), dict) and r[key].get("n") for r in rows)

    truth = sorted({k for r in rows for k in r if k.startswith("template") and has(k)})
    return [(k, t) for k, t in [("em", "EM (judge)")] + [(k, f"EM (ground truth: {k})") for k in truth] if has(k)]


def _joins(fig, a: dict, others: list[dict], key: str, dash: str, row: int, col: int) -> None:
    """Thin grey lines from a real cell to the cells it is compared with (dash: its control; solid: a real cap)."""
    import plotly.graph_objects as go

    for b in others:
        fig.add_trace(go.Scatter(x=[a["coherent"]["rate"], b["coherent"]["rate"]], y=[a[key]["rate"], b[key]["rate"]],
                                 mode="lines", hoverinfo="skip", showlegend=False, meta={"join": dash},
                                 line=dict(color="#BBBBBB", dash=dash, width=1)), row=row, col=col)


def _defence_points(fig, ok: list[dict], key: str, cond: str, row: int, col: int) -> list[tuple]:
    """One panel: every defence cell and its controls, joined; returns the interventions drawn (for the key)."""
    import plotly.graph_objects as go

    drawn = []
    for fam in DEFENCES:
        for control in (None, "random", "orthogonal"):
            pts = [r for r in ok if r["family"] == fam and r["condition"] == cond and r["control"] == control]
            if not pts:
                continue
            style = encoded(cond, fam, control)
            style["marker"].update(size=10, line=dict(width=2))
            fig.add_trace(go.Scatter(
                x=[r["coherent"]["rate"] for r in pts], y=[r[key]["rate"] for r in pts],
                error_x=rate_error([r["coherent"] for r in pts]), error_y=rate_error([r[key] for r in pts]),
                mode="markers", name=f"{cond}, {intervention_name(fam, control)}",
                text=[f"{r['model']}: {r['intervention']} (n={r['n']})" for r in pts],
                hovertemplate="%{text}<br>coherent %{x:.2f}<br>EM %{y:.2f}<extra></extra>", **style), row=row, col=col)
            drawn.append((fam, control))
            for r in pts if control is None else []:
                _joins(fig, r, [c for c in ok if c["family"] == fam and c["control"] and c["condition"] == cond
                                and (c["model"], c["param"]) == (r["model"], r["param"])], key, "dash", row, col)
                _joins(fig, r, [c for c in ok if c["intervention"] == r.get("unconditional")
                                and (c["model"], c["condition"]) == (r["model"], cond)], key, "solid", row, col)
    none = [r for r in ok if r["family"] == "none" and r["condition"] == cond
            and r["model"] in {x["model"] for x in ok if x["family"] in DEFENCES}]
    if none:
        style = encoded(cond, "none")
        style["marker"]["size"] = 11
        fig.add_trace(go.Scatter(x=[r["coherent"]["rate"] for r in none], y=[r[key]["rate"] for r in none],
                                 mode="markers", name=f"{cond}, no intervention", text=[r["model"] for r in none],
                                 **style), row=row, col=col)
        drawn.append(("none", None))
    return drawn


def _defences(rows: list[dict]):
    from plotly.subplots import make_subplots

    ok = [r for r in rows if r["status"] == "ok" and r["coherent"]["n"]]
    if not any(r["family"] in DEFENCES[1:] for r in ok):
        return None
    measures = em_measures(ok)
    conditions = sorted({r["condition"] for r in ok if r["family"] in DEFENCES}, key=_cond_order)
    fig = make_subplots(rows=len(measures), cols=len(conditions), shared_xaxes=True,
                        subplot_titles=[f"{t}, {c}" for _, t in measures for c in conditions])
    drawn = []
    for i, (key, title) in enumerate(measures, start=1):
        have = [r for r in ok if isinstance(r.get(key), dict) and r[key].get("n")]
        for j, cond in enumerate(conditions, start=1):
            drawn += _defence_points(fig, have, key, cond, i, j)
        fig.update_yaxes(title_text=title, row=i, col=1)
    add_key(fig, conditions, drawn)
    fig.update_xaxes(title_text="coherence rate", row=len(measures))
    fig.update_layout(title="Beyond the single axis: EM vs coherence for single-axis, subspace and conditional capping"
                            "<br><sup>open: matched control, joined by grey dashes; grey solid: the same cap "
                            "unconditionally; Wilson 95% intervals</sup>",
                      height=max(_height(fig, len(measures)), 380 * len(measures)))
    return fig


def _projections(proj: dict):
    import plotly.graph_objects as go

    layer = proj.get("target_layer")
    if layer is None or not proj.get("by_cell"):
        return None
    fig = go.Figure()
    conditions = []
    cells = sorted((key.split("|") for key in proj["by_cell"]), key=lambda mc: (mc[0], _cond_order(mc[1])))
    for model, cond in cells:
        values = proj["by_cell"][f"{model}|{cond}"]
        conditions.append(cond)
        style = encoded(cond, kind="violin")
        style["marker"].update(size=5, line={"color": "#333333", "width": 0.5})  # every answer, visible on its fill
        fig.add_trace(go.Violin(x=[model] * len(values), y=[v[layer] for v in values], name=f"{model}, {cond}",
                                offsetgroup=cond, alignmentgroup="projections", points="all", pointpos=0, jitter=0.4,
                                spanmode="hard", box={"visible": True, "fillcolor": "rgba(255,255,255,0.5)",
                                                      "line": {"color": "#333333"}, "width": 0.25}, **style))
    add_key(fig, sorted(set(conditions), key=_cond_order))
    fig.update_layout(violinmode="group", title=f"Axis projection of answers (mean over response tokens), "
                                                f"layer {layer}, triggered vs untriggered, no intervention",
                      yaxis_title="projection on the unit axis", xaxis_title="model")
    return fig


def _mean_diff(directions: dict):
    import plotly.graph_objects as go

    cos = directions.get("mean_diff", {}).get("cos_with_axis")
    if not cos:
        return None
    return go.Figure(go.Scatter(x=list(range(len(cos))), y=cos, mode="lines+markers", name="cosine"),
                     layout=dict(title="cos(mean-diff misalignment direction, Assistant Axis) per layer",
                                 xaxis=dict(title="layer", dtick=max(1, len(cos) // 15)), yaxis_title="cosine",
                                 yaxis_range=[-1, 1]))


def write_figures(run: str | Path, fig_dir: str | Path | None = None) -> list[Path]:
    """Write every figure the run's files support; returns the HTML paths (each has its ``.plotly.json``)."""
    run = Path(run)
    rows = read_jsonl(run / "results.jsonl")
    figs = {("em_vs_capping" if key == "em" else f"{key}_vs_capping"): _rate_vs_capping(rows, key, title)
            for key, title in em_measures(rows)}
    figs.update(em_vs_coherence=_em_vs_coherence(rows), defences_em_vs_coherence=_defences(rows))
    if (run / "projections.json").exists():
        figs["projection_distributions"] = _projections(read_json(run / "projections.json"))
    if (run / "directions.json").exists():
        figs["mean_diff_cosine"] = _mean_diff(read_json(run / "directions.json"))
    return save_figures(fig_dir or run / "figures", {k: v for k, v in figs.items() if v is not None})
