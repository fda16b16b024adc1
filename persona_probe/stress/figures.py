"""Stress-test figures, read from a run folder (``results.jsonl``, ``projections.json``, ``directions.json``).

- ``em_vs_capping``: EM rate vs capping percentile, one line per layer window,
  one panel per condition, random-direction controls dashed, ``none`` dotted.
- ``em_vs_coherence``: the trade-off, one point per intervention cell, panels
  per condition; Wilson intervals on both axes.
- ``projection_distributions``: axis projections at the target layer of the
  uncapped answers, triggered vs untriggered, per model.
- ``mean_diff_cosine``: cosine of the mean-diff misalignment direction with the
  axis per layer (when it could be computed).
- ``defences_em_vs_coherence``: EM against coherence for single-axis, subspace
  and conditional capping, each real cell joined to its controls (dashed: the
  random direction/subspace/detector; dotted: a conditional cap's unconditional
  cap); one row of panels per EM measure the rows carry (the judge's ``em``,
  and a ground-truth template-match rate when present), one column per condition.
"""

from __future__ import annotations

from pathlib import Path

from ..capping import parse_experiment_id
from ..io import read_json, read_jsonl
from ..plots import rate_error, save_figures

__all__ = ["write_figures"]


def _panels(conditions: list[str]):
    from plotly.subplots import make_subplots

    return make_subplots(rows=1, cols=len(conditions), subplot_titles=conditions, shared_yaxes=True)


def _em_vs_capping(rows: list[dict]):
    import plotly.graph_objects as go

    cap = [r for r in rows if r["family"] in ("capping", "triggered_capping") and r["status"] == "ok"
           and r["control"] in (None, "random")]
    if not cap:
        return None
    conditions = sorted({r["condition"] for r in cap})
    fig = _panels(conditions)
    for col, cond in enumerate(conditions, start=1):
        for model in sorted({r["model"] for r in cap}):
            groups: dict[tuple, list] = {}
            for r in cap:
                if r["condition"] == cond and r["model"] == model:
                    s, e, q = parse_experiment_id(r["param"])
                    tag = "[trig] " if r["family"] == "triggered_capping" else ""
                    groups.setdefault((f"{tag}{model} layers {s}:{e}", r["control"]), []).append((q, r["em"]))
            for (name, control), pts in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
                pts.sort(key=lambda p: p[0])
                fig.add_trace(go.Scatter(
                    x=[p[0] for p in pts], y=[p[1]["rate"] for p in pts], error_y=rate_error([p[1] for p in pts]),
                    mode="lines+markers", name=name + (f" ({control})" if control else ""),
                    line=dict(dash="dash" if control else "solid"), legendgroup=name, showlegend=col == 1),
                    row=1, col=col)
            none = [r for r in rows if r["family"] == "none" and r["model"] == model and r["condition"] == cond]
            if none:
                fig.add_hline(y=none[0]["em"]["rate"], line_dash="dot", row=1, col=col,
                              annotation_text=f"{model}, no intervention", annotation_position="top left")
    fig.update_layout(title="EM rate vs capping percentile (Wilson 95% intervals; dashed: random direction, "
                            "matched threshold)", yaxis_title="EM rate")
    fig.update_xaxes(title_text="capping percentile")
    return fig


def _em_vs_coherence(rows: list[dict]):
    import plotly.graph_objects as go

    ok = [r for r in rows if r["status"] == "ok" and r["coherent"]["n"] and r["em"]["n"]]
    conditions = sorted({r["condition"] for r in ok})
    fig = _panels(conditions)
    symbols = {None: "circle", "random": "x", "orthogonal": "diamond"}
    families = sorted({r["family"] for r in ok})
    for col, cond in enumerate(conditions, start=1):
        for fam in families:
            for control, symbol in symbols.items():
                pts = [r for r in ok if r["condition"] == cond and r["family"] == fam and r["control"] == control]
                if not pts:
                    continue
                name = fam + (f" / {control}" if control else "")
                fig.add_trace(go.Scatter(
                    x=[r["coherent"]["rate"] for r in pts], y=[r["em"]["rate"] for r in pts],
                    error_x=rate_error([r["coherent"] for r in pts]), error_y=rate_error([r["em"] for r in pts]),
                    mode="markers", marker=dict(symbol=symbol, size=9), name=name, legendgroup=name,
                    showlegend=col == 1, text=[f"{r['model']}: {r['intervention']}" for r in pts],
                    hovertemplate="%{text}<br>coherent %{x:.2f}<br>EM %{y:.2f}<extra></extra>"), row=1, col=col)
    fig.update_layout(title="EM rate vs coherence per intervention cell (Wilson 95% intervals)",
                      yaxis_title="EM rate")
    fig.update_xaxes(title_text="coherence rate")
    return fig


DEFENCES = {"capping": ("single-axis cap", "#1f77b4"), "subspace_capping": ("subspace cap", "#2ca02c"),
            "conditional_capping": ("conditional cap", "#d62728")}



def em_measures(rows: list[dict]) -> list[tuple[str, str]]:
    """The EM rates rows carry: the judge's ``em``, and any judge-free ground truth (``template*`` rate columns)."""
    def has(key):
        return any(isinstance(r.get(key), dict) and r[key].get("n") for r in rows)

    truth = sorted({k for r in rows for k in r if k.startswith("template") and has(k)})
    return [(k, t) for k, t in [("em", "EM (judge)")] + [(k, f"EM (ground truth: {k})") for k in truth] if has(k)]


def _pair_lines(fig, pts: list[dict], others: list[dict], key: str, dash: str, row: int, col: int) -> None:
    import plotly.graph_objects as go

    for a in pts:
        for b in others:
            fig.add_trace(go.Scatter(x=[a["coherent"]["rate"], b["coherent"]["rate"]],
                                     y=[a[key]["rate"], b[key]["rate"]], mode="lines", hoverinfo="skip",
                                     line=dict(color="grey", dash=dash, width=1), showlegend=False), row=row, col=col)


def _defence_points(fig, ok: list[dict], key: str, cond: str, row: int, col: int) -> None:
    import plotly.graph_objects as go

    first = row == 1 and col == 1
    for fam, (name, colour) in DEFENCES.items():
        for control in (None, "random", "orthogonal"):
            pts = [r for r in ok if r["family"] == fam and r["condition"] == cond and r["control"] == control]
            if not pts:
                continue
            label = name + (f" / {control} control" if control else "")
            fig.add_trace(go.Scatter(
                x=[r["coherent"]["rate"] for r in pts], y=[r[key]["rate"] for r in pts],
                error_x=rate_error([r["coherent"] for r in pts]), error_y=rate_error([r[key] for r in pts]),
                mode="markers", name=label, legendgroup=label, showlegend=first,
                marker=dict(color=colour, size=10, symbol="circle" if not control else "circle-open",
                            line=dict(width=2)),
                text=[f"{r['model']}: {r['intervention']} (n={r['n']})" for r in pts],
                hovertemplate="%{text}<br>coherent %{x:.2f}<br>EM %{y:.2f}<extra></extra>"), row=row, col=col)
            if control is None:
                for r in pts:
                    ctrls = [c for c in ok if c["family"] == fam and c["control"] and c["condition"] == cond
                             and (c["model"], c["param"]) == (r["model"], r["param"])]
                    _pair_lines(fig, [r], ctrls, key, "dash", row, col)
                    plain = [c for c in ok if c["intervention"] == r.get("unconditional")
                             and (c["model"], c["condition"]) == (r["model"], cond)]
                    _pair_lines(fig, [r], plain, key, "dot", row, col)
    none = [r for r in ok if r["family"] == "none" and r["condition"] == cond
            and r["model"] in {x["model"] for x in ok if x["family"] in DEFENCES}]
    if none:
        fig.add_trace(go.Scatter(x=[r["coherent"]["rate"] for r in none], y=[r[key]["rate"] for r in none],
                                 mode="markers", name="no intervention", legendgroup="none", showlegend=first,
                                 marker=dict(color="black", symbol="star", size=11),
                                 text=[r["model"] for r in none]), row=row, col=col)


def _defences(rows: list[dict]):
    from plotly.subplots import make_subplots

    ok = [r for r in rows if r["status"] == "ok" and r["coherent"]["n"]]
    if not any(r["family"] in ("subspace_capping", "conditional_capping") for r in ok):
        return None
    measures = em_measures(ok)
    conditions = sorted({r["condition"] for r in ok if r["family"] in DEFENCES})
    fig = make_subplots(rows=len(measures), cols=len(conditions), shared_xaxes=True,
                        subplot_titles=[f"{t}, {c}" for _, t in measures for c in conditions])
    for i, (key, title) in enumerate(measures, start=1):
        have = [r for r in ok if isinstance(r.get(key), dict) and r[key].get("n")]
        for j, cond in enumerate(conditions, start=1):
            _defence_points(fig, have, key, cond, i, j)
        fig.update_yaxes(title_text=title, row=i, col=1)
    fig.update_xaxes(title_text="coherence rate", row=len(measures))
    fig.update_layout(title="Beyond the single axis: EM vs coherence for single-axis, subspace and conditional "
                            "capping (filled: real; open: its matched control, joined by dashes; dotted: the same "
                            "cap unconditionally; Wilson 95% intervals)", height=380 * len(measures))
    return fig


def _projections(proj: dict):
    import plotly.graph_objects as go

    layer = proj.get("target_layer")
    if layer is None:
        return None
    fig = go.Figure()
    for key, values in sorted(proj["by_cell"].items()):
        model, cond = key.split("|")
        fig.add_trace(go.Violin(x=[model] * len(values), y=[v[layer] for v in values], name=cond,
                                legendgroup=cond, scalegroup=cond, box_visible=True, points="all",
                                showlegend=key.startswith(sorted(proj["by_cell"])[0].split("|")[0] + "|")))
    fig.update_layout(violinmode="group", title=f"Axis projection of answers (mean over response tokens), "
                                                f"layer {layer}, no intervention",
                      yaxis_title="projection on the unit axis")
    return fig


def _mean_diff(directions: dict):
    import plotly.graph_objects as go

    cos = directions.get("mean_diff", {}).get("cos_with_axis")
    if not cos:
        return None
    return go.Figure(go.Scatter(x=list(range(len(cos))), y=cos, mode="lines+markers"),
                     layout=dict(title="cos(mean-diff misalignment direction, Assistant Axis) per layer",
                                 xaxis_title="layer", yaxis_title="cosine", yaxis_range=[-1, 1]))


def write_figures(run: str | Path, fig_dir: str | Path | None = None) -> list[Path]:
    """Write every figure the run's files support; returns the HTML paths."""
    run = Path(run)
    rows = read_jsonl(run / "results.jsonl")
    figs = {"em_vs_capping": _em_vs_capping(rows), "em_vs_coherence": _em_vs_coherence(rows),
            "defences_em_vs_coherence": _defences(rows)}
    if (run / "projections.json").exists():
        figs["projection_distributions"] = _projections(read_json(run / "projections.json"))
    if (run / "directions.json").exists():
        figs["mean_diff_cosine"] = _mean_diff(read_json(run / "directions.json"))
    return save_figures(fig_dir or run / "figures", {k: v for k, v in figs.items() if v is not None})
