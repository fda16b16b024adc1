"""report.html in a real browser: headless Chromium opens it from disk with no network and screenshots it.

Checks: every plotly figure drew (its div holds an SVG or canvas), a click on a table header
sorts the table, and nothing but the page's own file was requested. The static gallery is
exported through the same Chromium. Driven by playwright's Python package against the system's
Chromium (Debian's ``chromium``): no browser is downloaded. Without Chromium or playwright the
tests skip and say why; with ``PERSONA_PROBE_REQUIRE_BROWSER=1`` (set by ``.ci/run``) they fail.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from persona_probe.report import build_reports
from persona_probe.report.static import INSTALL_HINT, find_browser, write_gallery

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-extensions"]


def _browser(module: str = "playwright.sync_api") -> str:
    """The Chromium to drive, after checking ``module`` (playwright, or kaleido for the export) imports."""
    import importlib

    reason = None
    path = find_browser()
    if path is None:
        reason = f"no Chromium: {INSTALL_HINT}"
    else:
        try:
            importlib.import_module(module)
        except ImportError:
            reason = f"{module.split('.')[0]} is not installed (pip install -e '.[dev]', or make install)"
    if reason:
        if os.environ.get("PERSONA_PROBE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the browser test must run here but cannot: {reason}")
        print(f"skipping the browser test: {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("browser") / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("analyses"))
    build_reports(run)
    return run


def _column(page, index: int) -> list[float]:
    return page.eval_on_selector_all(
        "table.results tbody tr", f"rows => rows.map(r => parseFloat(r.cells[{index}].dataset.num))")


def test_report_renders_sorts_and_stays_offline(run, tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = _browser()
    page_path = run / "report.html"
    requests: list[str] = []
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=chromium,
                                                   headless=True, args=FLAGS, viewport={"width": 1300, "height": 900})
        ctx.set_offline(True)
        ctx.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
        page = ctx.new_page()
        page.on("request", lambda r: requests.append(r.url))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri(), wait_until="load")
        page.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length > 0")
        drawn = page.eval_on_selector_all(
            ".plotly-graph-div", "divs => divs.map(d => d.querySelectorAll('svg.main-svg, canvas').length)")
        headers = page.eval_on_selector_all("table.results th", "ths => ths.map(t => t.textContent)")
        em = headers.index("em [95% CI]")
        before = _column(page, em)
        page.click(f"table.results th:nth-child({em + 1})")
        ascending = _column(page, em)
        page.click(f"table.results th:nth-child({em + 1})")
        descending = _column(page, em)
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        ctx.close()
    assert errors == []
    assert len(drawn) == len(list(run.glob("*/figures/*.plotly.json"))) >= 7 and all(n > 0 for n in drawn)
    assert before != sorted(before) and ascending == sorted(before) and descending == sorted(before, reverse=True)
    assert requests and all(u.startswith("file:") for u in requests), requests
    assert shot.stat().st_size > 50_000
    if os.environ.get("PERSONA_PROBE_SCREENSHOT"):  # keep the screenshot (e.g. for a release note)
        shutil.copy(shot, os.environ["PERSONA_PROBE_SCREENSHOT"])


def test_gallery_exports_svg_with_its_readme(run, tmp_path):
    _browser("kaleido")
    paths = write_gallery(run, tmp_path / "figures", command="persona-probe report RUN --gallery figures")
    names = {p.name for p in paths}
    assert {"em_vs_capping.svg", "axis_projections_by_condition.svg", "persona_space_roles.svg"} <= names
    for p in paths:
        assert Path(p).read_text().startswith("<svg")
    svg = (tmp_path / "figures" / "em_vs_capping.svg").read_text()
    assert "capping percentile" in svg and "no_trigger" in svg and "random control" in svg  # axes and legend drawn
    readme = (tmp_path / "figures" / "README.md").read_text()
    assert all(f"]({n})" in readme for n in names) and "persona-probe report RUN --gallery figures" in readme
    assert "test:hash:aligned@v1" in readme  # the judge the figures were made with
