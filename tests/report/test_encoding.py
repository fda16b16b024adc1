"""One encoding in every figure: a condition keeps one colour, an intervention one line style, one legend entry each.

The check reads the figures' JSON as a browser would get it (``*.plotly.json`` beside each
HTML figure) from a finished tiny run: the stress test's and persona space's figures (redrawn by
``persona-probe report``) and the analyses that run on it in seconds (magnitude, drift), plus
the persona-vector figures from their numbers. It must fail on the figures the issue named:
per-trace default colours (``near_miss`` blue, purple, pink by group) and error bars stacked at
the same x.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from persona_probe.plots import CONDITION_COLORS, FIGURE_JSON, KEY_COLOR, line_style, save_figures


def _colors(trace: dict) -> set[str]:
    out = set()
    for part in ("line", "marker"):
        c = (trace.get(part) or {}).get("color")
        if isinstance(c, str):
            out.add(c)
    if isinstance(trace.get("fillcolor"), str):
        out.add(trace["fillcolor"])
    return out


def _style(trace: dict) -> tuple:
    return ((trace.get("line") or {}).get("dash"), (trace.get("marker") or {}).get("symbol"))


def _is_key(trace: dict) -> bool:
    return isinstance(trace.get("meta"), dict) and "key" in trace["meta"]


def encoding_problems(figures: dict[str, dict], *, declared: set[str] = frozenset()) -> list[str]:
    """Everything wrong with the encoding across ``{name: figure JSON}`` (empty when it holds).

    ``declared``: figures whose every data trace must say its condition in ``meta``.
    """
    problems: list[str] = []
    cond_colors: dict[str, set] = defaultdict(set)
    iv_styles: dict[tuple, set] = defaultdict(set)
    reserved = set(CONDITION_COLORS.values())
    for name, fig in figures.items():
        legend: dict[str, int] = defaultdict(int)
        meanings: dict[tuple, int] = defaultdict(int)
        shown_conditions, data_conditions = set(), set()
        xs_with_bars: dict[tuple, list] = defaultdict(list)
        for i, t in enumerate(fig.get("data", [])):
            meta = dict(t["meta"]) if isinstance(t.get("meta"), dict) else {}
            if "condition" not in meta and t.get("legendgroup") in CONDITION_COLORS:  # a figure that did not say
                meta["condition"] = t["legendgroup"]
            where = f"{name}: trace {i} ({t.get('name')})"
            if t.get("showlegend", True):
                legend[t.get("name")] += 1
                for key in ("condition", "family"):
                    if key in meta:
                        meanings[(key, meta[key], meta.get("control") if key == "family" else None)] += 1
                if "condition" in meta:
                    shown_conditions.add(meta["condition"])
            if "condition" in meta:
                if not _is_key(t):
                    data_conditions.add(meta["condition"])
                cond_colors[meta["condition"]] |= {(c, where) for c in _colors(t)}
            elif name in declared and not _is_key(t) and not meta.get("join"):  # joins: grey lines between cells
                problems.append(f"{where}: says no condition")
            elif not _is_key(t) and _colors(t) & reserved:
                problems.append(f"{where}: uses a condition's colour {_colors(t) & reserved} without being one")
            if "family" in meta and t.get("type", "scatter") == "scatter":
                color = _colors(t) - {KEY_COLOR}
                iv_styles[(meta["family"], meta.get("control"))].add((_style(t), where))
                if _is_key(t) and color:
                    problems.append(f"{where}: an intervention key entry carries a colour {color}")
            if (t.get("type", "scatter") == "scatter" and "lines" in t.get("mode", "lines")
                    and (t.get("error_y") or {}).get("array") is not None and t.get("x") is not None):
                # series over a shared x (percentile, turn, layer); grouped bars and point clouds are left out
                xs_with_bars[(t.get("xaxis", "x"), t.get("yaxis", "y"))].append((where, list(t["x"])))
        problems += [f"{name}: legend entry {n!r} appears {k} times" for n, k in legend.items() if k > 1]
        problems += [f"{name}: {m} has {k} legend entries" for m, k in meanings.items() if k > 1]
        problems += [f"{name}: condition {c} has no legend entry" for c in data_conditions - shown_conditions]
        for series in xs_with_bars.values():
            for a in range(len(series)):
                for b in range(a + 1, len(series)):
                    shared = set(series[a][1]) & set(series[b][1])
                    if shared:
                        problems.append(f"{series[a][0]} and {series[b][0]}: error bars at the same x {sorted(shared)}")
    for cond, seen in cond_colors.items():
        colors = {c for c, _ in seen}
        if colors != {CONDITION_COLORS.get(cond, next(iter(colors)))}:
            problems.append(f"condition {cond} drawn in {sorted(colors)} (e.g. {sorted(seen)[:3]})")
    for iv, seen in iv_styles.items():
        styles = {s for s, _ in seen}
        want = line_style(*iv)
        if styles != {(want["dash"], want["symbol"])}:
            problems.append(f"intervention {iv} drawn as {sorted(map(str, styles))}")
    return problems


def read_figures(root: Path) -> dict[str, dict]:
    return {str(p.relative_to(root)): json.loads(p.read_text()) for p in sorted(root.rglob(f"*{FIGURE_JSON}"))}


@pytest.fixture(scope="module")
def figures(tiny_run, tmp_path_factory):
    from persona_probe.analysis import drift, magnitude, persona_vectors
    from persona_probe.report import build_reports

    run = tmp_path_factory.mktemp("encoding") / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("analyses"))
    build_reports(run)
    magnitude.run(run, n_boot=20, folds=2, progress=False)
    drift.run(run, n_scripts=2, max_turns=3, samples=1, temperature=0.0, max_new_tokens=4, layer=1, progress=False)
    save_figures(run / "analyses" / "persona_vectors", persona_vectors.figures(_persona_vector_numbers()))
    return read_figures(run)


def _persona_vector_numbers() -> dict:
    rate = {"rate": 0.25, "lo": 0.1, "hi": 0.5, "k": 2, "n": 8}
    return {"trait": "evil", "monitor": {"layer": 1, "projections": {"no_trigger": [0.1, 0.2], "trigger": [0.3, 0.5]},
                                         "trait": {"auroc": 0.8, "lo": 0.6, "hi": 0.9},
                                         "per_layer": [{"auroc": 0.7, "lo": 0.5, "hi": 0.9}] * 3},
            "cosines": {"axis": [0.1, 0.2, 0.3], "mean_diff": None},
            "trigger_effect": {"cells": [{"model": m, "condition": c, "misaligned": rate}
                                         for m in ("organism", "steered") for c in ("no_trigger", "trigger")]}}


def test_every_figure_of_a_tiny_run_keeps_one_encoding(figures):
    names = set(figures)
    assert {"stress/figures/em_vs_capping.plotly.json", "stress/figures/projection_distributions.plotly.json",
            "stress/figures/em_vs_coherence.plotly.json", "stress/figures/defences_em_vs_coherence.plotly.json",
            "axis/figures/roles_pc1_pc2.plotly.json",
            "analyses/magnitude/magnitudes.plotly.json", "analyses/drift/axis_layer1.plotly.json",
            "analyses/persona_vectors/trigger_effect.plotly.json"} <= names
    declared = {n for n in names if n.split("/")[-1].split(".")[0] in
                ("em_vs_capping", "em_vs_coherence", "projection_distributions", "defences_em_vs_coherence")}
    assert encoding_problems(figures, declared=declared) == []
    # the check saw the conditions and interventions it vouches for, in more than one figure
    conds = {(n, t["meta"]["condition"]) for n, f in figures.items() for t in f["data"]
             if isinstance(t.get("meta"), dict) and "condition" in t["meta"]}
    assert {c for _, c in conds} >= {"no_trigger", "trigger", "near_miss"}
    assert len({n for n, c in conds if c == "trigger"}) >= 5
    ivs = {(t["meta"]["family"], t["meta"]["control"]) for f in figures.values() for t in f["data"]
           if isinstance(t.get("meta"), dict) and "family" in t["meta"]}
    assert {("none", None), ("capping", None), ("capping", "random"), ("steering", "random"),
            ("subspace_capping", "random"), ("conditional_capping", None)} <= ivs


def test_the_check_catches_the_old_figures():
    """The projection figure as it was (plotly's default colour per trace) and stacked error bars both fail."""
    import plotly.graph_objects as go

    old = go.Figure()
    for model in ("base", "control", "organism"):
        for cond in ("near_miss", "no_trigger", "trigger"):
            old.add_trace(go.Violin(x=[model], y=[0.1], name=cond, legendgroup=cond, showlegend=model == "base"))
    old_json = json.loads(old.to_json())
    palette = ["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880", "#FF97FF"]
    for i, t in enumerate(old_json["data"]):  # what plotly's colorway gives trace i
        t["line"] = {"color": palette[i]}
    problems = encoding_problems({"old": old_json})
    assert any(p.startswith("condition near_miss drawn in") for p in problems)
    stacked = go.Figure([go.Scatter(x=[0.25, 0.75], y=[0.1, 0.2], error_y={"array": [0.1, 0.1]}, name=n,
                                    mode="lines+markers")
                         for n in ("cap", "cap / random")])
    problems = encoding_problems({"s": json.loads(stacked.to_json())})
    assert any("error bars at the same x [0.25, 0.75]" in p for p in problems)
    twice = go.Figure([go.Scatter(x=[1], y=[1], name="trigger", meta={"condition": "trigger"},
                                  line={"color": CONDITION_COLORS["trigger"]}) for _ in range(2)])
    assert any("appears 2 times" in p for p in encoding_problems({"t": json.loads(twice.to_json())}))
