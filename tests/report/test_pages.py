"""report.html from a finished tiny run: everything the run holds is on the page, plotly.js once, no model loaded."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from persona_probe.cli import main
from persona_probe.io import read_jsonl, write_json, write_jsonl
from persona_probe.report import build_reports, folder_kind


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory):
    """A copy of the tiny run with what other issues add to a run: a headline file and one more rate column."""
    run = tmp_path_factory.mktemp("pages") / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("analyses"))
    rows = read_jsonl(run / "stress" / "results.jsonl")
    for r in rows:
        if r["status"] == "ok":
            r["template"] = {"k": 1, "n": r["n"], "rate": 1 / r["n"], "lo": 0.01, "hi": 0.6, "excluded": 0}
    write_jsonl(run / "stress" / "results.jsonl", rows)
    write_json(run / "stress" / "headline.json", {"organism, trigger": {"template": rows[4]["template"],
                                                                        "mde": 0.4321}})
    return run


@pytest.fixture(scope="module")
def pages(run):
    import persona_probe.loading

    real = persona_probe.loading.load_model
    persona_probe.loading.load_model = lambda *a, **k: pytest.fail("the report loaded a model")
    try:
        assert main(["report", str(run)]) == 0
    finally:
        persona_probe.loading.load_model = real
    return {"demo": (run / "report.html").read_text(), "stress": (run / "stress" / "report.html").read_text()}


def _plotly_js_count(text: str) -> int:
    from plotly.offline import get_plotlyjs

    return text.count(get_plotlyjs()[:2000])


def test_the_demo_page_holds_the_run(run, pages):
    page = pages["demo"]
    rows = read_jsonl(run / "stress" / "results.jsonl")
    assert _plotly_js_count(page) == 1  # inlined once, not once per figure
    figures = sorted(p.name for p in (run / "stress" / "figures").glob("*.plotly.json")) + sorted(
        p.name for p in (run / "axis" / "figures").glob("*.plotly.json"))
    assert len(figures) >= 7 and page.count("Plotly.newPlot(") == len(figures)
    body = page.split('class="sortable results"')[1].split("<tbody>")[1].split("</tbody>")[0]
    assert body.count("<tr>") == len(rows)  # every cell of results.jsonl is a row of the table
    assert 'class="sortable results"' in page and "template [95% CI]" in page  # a new rate column shows up
    assert "mde" in page and "0.4321" in page  # the run's headline file
    assert "cap layers_0:2-p0.25</strong>" in page  # the capping headline lines
    ok = [r for r in rows if r["status"] == "ok"]
    assert page.count("<details>") == len(ok)  # one collapsed block of verbatim answers per cell
    first = read_jsonl(run / "stress" / ok[0]["samples"])
    assert all(_html(s["answer"]) in page for s in first)
    summary = json.loads((run / "stress" / "summary.json").read_text())
    for text in (summary["config_hash"], "test:hash:aligned@v1", "adapter: organism", "torch", "transformers"):
        assert text in page, text


def _html(text: str) -> str:
    import html

    return html.escape(text)


def test_pages_fetch_nothing_from_the_network(pages):
    from plotly.offline import get_plotlyjs

    for page in pages.values():
        ours = page.replace(get_plotlyjs(), "")  # plotly.js's own strings name map-tile servers it never calls here
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", ours)
        assert "cdn.plot.ly" not in ours and "mathjax" not in ours.lower() and "@import" not in ours
    assert _plotly_js_count(pages["stress"]) == 1


def test_an_analysis_folder_gets_its_page(run):
    import plotly.graph_objects as go

    from persona_probe.plots import save_figures

    folder = run / "analyses" / "toy"
    save_figures(folder, {"curve": go.Figure(go.Scatter(x=[0, 1], y=[1, 2]))})
    write_json(folder / "numbers.json", {"analysis": "toy", "auroc": {"auroc": 0.7, "lo": 0.6, "hi": 0.8},
                                         "provenance": {"config_hash": "abc123"}, "figures": ["curve.html"]})
    assert folder_kind(folder) == "analysis"
    paths = build_reports(run, figures=False)
    page = (folder / "report.html").read_text()
    assert folder / "report.html" in paths and "abc123" in page and page.count("Plotly.newPlot(") == 1
    assert "analyses/toy/report.html" in (run / "report.html").read_text()  # linked from the run's page


def test_a_folder_that_is_not_a_run_fails_with_what_to_pass(tmp_path, caplog):
    assert main(["report", str(tmp_path)]) == 1
    assert "not a finished run folder" in caplog.text and "results.jsonl" in caplog.text
