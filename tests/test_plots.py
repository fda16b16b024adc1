"""The encoding's building blocks: distinct styles per intervention, reserved condition colours, offsets, files."""

from __future__ import annotations

import itertools
import json

import pytest

from persona_probe.plots import (
    CONDITION_COLORS,
    FAMILY_SYMBOLS,
    SERIES_COLORS,
    condition_color,
    encoded,
    line_style,
    save_figures,
    x_offsets,
)


def test_every_intervention_has_its_own_style():
    ivs = [("none", None)] + [(f, c) for f in FAMILY_SYMBOLS if f != "none" for c in (None, "random", "orthogonal")]
    styles = [tuple(line_style(f, c).values()) for f, c in ivs]
    assert len(set(styles)) == len(styles)
    assert line_style("capping")["dash"] == "solid" and line_style("capping", "random")["dash"] == "dash"
    assert line_style("none")["dash"] == "dot"
    # a family added later (e.g. a positive control) still gets a stable style of its own
    assert line_style("trigger_ablation") == line_style("trigger_ablation")


def test_condition_colours_are_reserved_and_stable():
    assert len(set(CONDITION_COLORS.values())) == len(CONDITION_COLORS)
    assert not set(CONDITION_COLORS.values()) & set(SERIES_COLORS)
    assert condition_color("trigger") == "#D55E00"
    extra = condition_color("other_cue")
    assert extra == condition_color("other_cue") and extra not in SERIES_COLORS
    kw = encoded("near_miss", "capping", "random")
    assert kw["line"] == {"color": CONDITION_COLORS["near_miss"], "dash": "dash"}
    assert kw["meta"] == {"condition": "near_miss", "family": "capping", "control": "random"}
    assert kw["showlegend"] is False and kw["legendgroup"] == "near_miss"


@pytest.mark.parametrize("n", [1, 2, 5])
def test_offsets_are_centred_and_apart(n):
    off = x_offsets(n, 0.5)
    assert sum(off) == pytest.approx(0) and len(off) == n
    assert all(b - a == pytest.approx(0.02) for a, b in itertools.pairwise(off))


def test_save_figures_writes_html_json_and_one_plotly_js(tmp_path):
    import plotly.graph_objects as go

    paths = save_figures(tmp_path, {"a": go.Figure(go.Scatter(x=[1], y=[2])), "b": go.Figure()})
    assert [p.name for p in paths] == ["a.html", "b.html"]
    fig = json.loads((tmp_path / "a.plotly.json").read_text())
    assert fig["data"][0]["y"] == [2] and fig["layout"]["colorway"] == list(SERIES_COLORS)
    assert (tmp_path / "plotly.min.js").exists()
    html = (tmp_path / "a.html").read_text()
    assert 'src="plotly.min.js"' in html and "cdn" not in html.lower()
