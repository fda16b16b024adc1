"""``report.html`` for a run folder: the demo folder, a stress-test folder, or one analysis folder.

:func:`build_reports` finds out which it was given, redraws the figures the folder's data files
support (stress figures from ``results.jsonl``, persona-space figures from the axis build's
role vectors), and writes one self-contained page per folder. No model is loaded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

from ..io import read_json, read_jsonl, write_text
from .html import esc, kv_table, page
from .sections import (
    answers_section,
    figures_section,
    headline_section,
    numbers_section,
    provenance_section,
    results_section,
    versions_html,
)

log = logging.getLogger(__name__)

__all__ = ["build_reports", "folder_kind", "write_stress_page", "write_analysis_page", "write_demo_page",
           "redraw_figures"]

PAGE = "report.html"


def folder_kind(path: Path) -> str:
    """``demo`` (a run folder with ``stress/``), ``stress`` (``results.jsonl``) or ``analysis`` (``numbers.json``)."""
    path = Path(path)
    if (path / "stress" / "results.jsonl").exists():
        return "demo"
    if (path / "results.jsonl").exists():
        return "stress"
    if (path / "numbers.json").exists():
        return "analysis"
    raise FileNotFoundError(f"{path}: not a finished run folder; expected stress/results.jsonl (a demo run), "
                            f"results.jsonl (a stress-test run) or numbers.json (an analysis folder)")


def _section(title: str, body: str, anchor: str) -> str:
    return f"<h2 id='{anchor}'>{esc(title)}</h2>\n{body}\n" if body else ""


def _stress_body(stress: Path, page_dir: Path, rows: list[dict]) -> list[str]:
    return [_section("Headline", headline_section(stress, rows), "headline"),
            _section("Results", results_section(rows), "results"),
            _section("Stress-test figures", figures_section(stress / "figures", page_dir, "stress"), "figures")]


def _judge_note(stress: Path) -> str:
    summary = read_json(stress / "summary.json") if (stress / "summary.json").exists() else {}
    judge = (summary.get("judge") or {}).get("aligned", "")
    if judge.startswith("offline"):
        return ("<p class='note'>Judge: <code>" + esc(judge) + "</code>, the offline MiniLM classifier. Its rates "
                "are a smoke test of the pipeline; use an LLM judge for claims.</p>")
    return f"<p>Judge: <code>{esc(judge)}</code></p>" if judge else ""


def write_stress_page(stress: Path) -> Path:
    stress = Path(stress)
    rows = read_jsonl(stress / "results.jsonl")
    body = [_judge_note(stress), *_stress_body(stress, stress, rows),
            _section("Verbatim answers", answers_section(stress, rows), "answers"),
            _section("Provenance", provenance_section(stress, rows), "provenance")]
    return _write(stress / PAGE, f"Stress test: {stress.resolve().name}", body)


def write_analysis_page(folder: Path) -> Path:
    folder = Path(folder)
    numbers = read_json(folder / "numbers.json")
    name = numbers.get("analysis") or folder.name
    prov = numbers.get("provenance") or {}
    body = [_section("Numbers", numbers_section(numbers), "numbers"),
            _section("Figures", figures_section(folder, folder, name), "figures"),
            _section("Provenance", kv_table({"folder": str(folder.resolve()), **prov}) + versions_html(None),
                     "provenance")]
    return _write(folder / PAGE, f"Analysis: {name}", body)


def _axis_and_organisms(run: Path) -> str:
    info: dict = {}
    axis_dir = run / "axis"
    if (axis_dir / "manifest.json").exists():
        m = read_json(axis_dir / "manifest.json")
        info.update({"roles kept": len(m.get("kept_per_role", {})), "questions": m.get("n_questions"),
                     "judged": m.get("judged")})
    if (axis_dir / "persona_space.json").exists():
        ps = read_json(axis_dir / "persona_space.json")
        layer = ps.get("target_layer")
        at = next((s for s in ps.get("layers", []) if s.get("layer") == layer), {})
        info.update({"target layer": layer, "PC1 variance": at.get("pc1_variance"),
                     "|cos(PC1, axis)|": at.get("cos_pc1_axis")})
    for name in ("organism", "control"):
        path = run / "organisms" / name / "manifest.json"
        if path.exists():
            man = read_json(path)
            info[f"{name} adapter"] = (f"{man.get('steps')} steps, loss {man.get('first_loss', 0):.3f} -> "
                                       f"{man.get('final_loss', 0):.3f}, {man.get('seconds')} s")
    return kv_table({k: v for k, v in info.items() if v is not None}) if info else ""


def write_demo_page(run: Path, analysis_pages: Mapping[str, Path] = ()) -> Path:
    run = Path(run)
    stress = run / "stress"
    rows = read_jsonl(stress / "results.jsonl")
    links = "".join(f"<li><a href='{esc(p.relative_to(run).as_posix())}'>{esc(n)}</a></li>"
                    for n, p in dict(analysis_pages).items())
    timings = read_json(run / "timings.json") if (run / "timings.json").exists() else None
    body = [_judge_note(stress), *_stress_body(stress, run, rows),
            _section("Assistant Axis and persona space", _axis_and_organisms(run)
                     + figures_section(run / "axis" / "figures", run, "axis"), "axis"),
            _section("Analyses", f"<ul>{links}</ul>" if links else "", "analyses"),
            _section("Verbatim answers", answers_section(stress, rows), "answers"),
            _section("Provenance", provenance_section(stress, rows)
                     + (kv_table({f"wall seconds: {k}": v for k, v in timings.items()}) if timings else ""),
                     "provenance")]
    return _write(run / PAGE, f"persona-probe run: {run.resolve().name}", body)


def _write(path: Path, title: str, body: list[str]) -> Path:
    html = "\n".join(b for b in body if b)
    write_text(path, page(title, html, plotly="class='figure'" in html))
    log.info("wrote %s", path)
    return path


def redraw_figures(run: Path) -> list[Path]:
    """Redraw the figures whose data the folder holds: the stress test's, and persona space's."""
    from ..stress.figures import write_figures

    run = Path(run)
    kind = folder_kind(run)
    stress = run / "stress" if kind == "demo" else run
    paths = write_figures(stress) if kind in ("demo", "stress") else []
    axis_dir = run / "axis"
    if kind == "demo" and (axis_dir / "role_vectors.safetensors").exists() and (axis_dir / "axis.safetensors").exists():
        from ..axis import load_axis, load_role_vectors
        from ..axis.persona_space import write_figures as axis_figures

        rv = load_role_vectors(axis_dir / "role_vectors.safetensors")
        axis, meta = load_axis(axis_dir / "axis.safetensors", return_metadata=True)
        layer = read_json(axis_dir / "persona_space.json").get("target_layer") if (
            axis_dir / "persona_space.json").exists() else meta.get("target_layer")
        if len(rv.vectors) >= 2:
            paths += axis_figures(axis_dir / "figures", rv.vectors, axis, int(layer if layer is not None
                                                                              else axis.shape[0] // 2))
    return paths


def build_reports(path: str | Path, *, figures: bool = True) -> list[Path]:
    """Every page the folder supports (a demo folder: its own, the stress test's, each analysis's)."""
    path = Path(path)
    kind = folder_kind(path)
    if figures:
        redraw_figures(path)
    if kind == "analysis":
        return [write_analysis_page(path)]
    if kind == "stress":
        return [write_stress_page(path)]
    analyses = {p.parent.name: write_analysis_page(p.parent)
                for p in sorted((path / "analyses").glob("*/numbers.json"))}
    return [write_demo_page(path, analyses), write_stress_page(path / "stress"), *analyses.values()]
