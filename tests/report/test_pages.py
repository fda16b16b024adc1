"""report.html from a finished tiny run: everything the run holds is on the page, plotly.js once, no model loaded."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from persona_probe.cli import main
from persona_probe.io import read_jsonl, write_json, write_jsonl
from persona_probe.report import build_reports, folder_kind


def _rate(k: int, n: int) -> dict:
    return {"k": k, "n": n, "rate": k / n, "lo": 0.01, "hi": 0.6, "excluded": 0}


def _vs(diff: float) -> dict:
    return {"diff": diff, "lo": diff - 0.3, "hi": diff + 0.3, "p_value": 0.4321, "test": "fisher",
            "mde": {"down": 0.61, "up": None, "p0": 0.5, "n": 6, "n0": 6, "method": "exact"}}


def _headline() -> dict:
    """A ``headline.json`` as the stress run writes it (ground truth, judge, positive control, MDE)."""
    def entry(name, family, k, ref=True):
        return {"intervention": name, "family": family, "n": 6,
                **{m: {"rate": _rate(k, 6), "vs_none": _vs(k / 6 - 0.5), **({"vs_control": _vs(-0.25)} if ref
                                                                               else {})} for m in ("template", "em")}}

    pos = entry("positive control: ablate trigger dir.", "positive_control", 1)
    pos["controls"] = [entry("positive control: ablate trigger dir. / random", "positive_control", 3, False)]
    return {"question": "does the intervention move misalignment more than its random control does?",
            "measures": [{"name": "template", "kind": "ground truth", "definition": "reuses a misaligned template"},
                         {"name": "em", "kind": "judge", "judge": "test:hash:aligned@v1", "definition": "judged"}],
            "mde": {"alpha": 0.05, "power": 0.8, "method": "exact power of the two-sided Fisher test"},
            "model": "organism", "tables": [{"model": "organism", "condition": "trigger",
                                             "none": entry("none", "none", 3, False), "interventions": [pos]}],
            "baselines": [{"model": "organism", "condition": "trigger", "n": 6, "template": _rate(3, 6),
                           "em": _rate(3, 6)}],
            "trigger_effect": [{"model": "organism", "template": _vs(0.5), "em": _vs(0.5)}]}


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory):
    """A copy of the tiny run with one more rate column, and a headline file when the run did not write one."""
    run = tmp_path_factory.mktemp("pages") / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("analyses"))
    rows = read_jsonl(run / "stress" / "results.jsonl")
    for r in rows:
        if r["status"] == "ok":
            r["extra_rate"] = {"k": 1, "n": r["n"], "rate": 1 / r["n"], "lo": 0.01, "hi": 0.6, "excluded": 0}
    write_jsonl(run / "stress" / "results.jsonl", rows)
    if not (run / "stress" / "headline.json").exists():
        write_json(run / "stress" / "headline.json", _headline())
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
    assert 'class="sortable results"' in page and "extra_rate [95% CI]" in page  # a new rate column shows up
    headline = page.split("id='headline'")[1].split("<h2")[0]  # headline.json: ground truth and judge, with MDE
    for text in ("ground truth: template [95% CI]", "judge: em [95% CI]", "real vs random", "MDE ↓", ", p=",
                 "<strong>Positive control</strong>", "positive control: ablate trigger dir.", "trigger vs no trigger"):
        assert text in headline, text
    assert "no <code>headline.json</code>" not in page
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


def test_a_run_without_headline_json_gets_its_capping_lines_and_a_note(run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "stress" / "headline.json").unlink()
    build_reports(old, figures=False)
    headline = (old / "report.html").read_text().split("id='headline'")[1].split("<h2")[0]
    assert "no <code>headline.json</code>" in headline and "rerun its stress stage" in headline
    assert "cap layers_0:2-p0.25</strong>" in headline and "with the trigger vs" in headline  # from results.jsonl


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
