"""The sections of a run's page, each read from the run's files: headline, results, figures, answers, provenance.

Each function takes what is on disk and shows all of it: every rate-shaped column of
``results.jsonl`` (a new one appears without a change here), every figure in a figures folder,
the stress test's ``headline.json`` when the run wrote one (:mod:`.headline`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..io import read_json, read_jsonl
from ..plots import FIGURE_JSON
from ..stress.report import pct
from .html import details, esc, figure_html, kv_table, table

__all__ = ["headline_section", "results_section", "figures_section", "answers_section", "provenance_section",
           "numbers_section", "rate_columns", "FIGURE_NOTES"]

# One line per figure a run writes: what it shows (the page's caption and the gallery's README).
FIGURE_NOTES = {
    "em_vs_capping": "EM rate against capping percentile per capped layer window, each condition with its "
                     "random-direction control at a matched threshold and its no-intervention rate.",
    "template_vs_capping": "The same sweep on the ground truth: the rate of answers that reuse a misaligned "
                           "training template (no judge), each condition with its random-direction control.",
    "em_vs_coherence": "The trade-off: EM rate against coherence, one point per intervention cell.",
    "projection_distributions": "Axis projections of the uncapped answers, triggered vs untriggered, per model.",
    "mean_diff_cosine": "Cosine of the mean-diff misalignment direction with the Assistant Axis, per layer.",
    "defences_em_vs_coherence": "Beyond the single axis: EM against coherence for single-axis, subspace and "
                                "conditional capping, each joined to its matched controls.",
    "variance_explained": "Variance of the role vectors explained by each principal component.",
    "pc1_axis_cosine": "How well PC1 of persona space lines up with the Assistant Axis, per layer.",
    "roles_pc1_pc2": "Roles on the first two principal components (colour: projection on the axis).",
}
_SKIP_COLUMNS = {"model", "condition", "intervention", "family", "control", "param", "layers", "direction", "status",
                 "provenance", "samples", "reason", "n"}
_SAMPLE_SKIP = {"question", "prompt", "answer", "judge"}


def _is_rate(v: Any) -> bool:
    return isinstance(v, Mapping) and {"rate", "lo", "hi", "n"} <= set(v)


def _is_comparison(v: Any) -> bool:
    return isinstance(v, Mapping) and {"diff", "p_value"} <= set(v)


def rate_columns(rows: Sequence[Mapping]) -> tuple[list[str], list[str], list[str]]:
    """The rate, comparison and plain-number columns the rows carry, in first-seen order."""
    rates, comps, nums = {}, {}, {}
    for r in rows:
        for k, v in r.items():
            if k in _SKIP_COLUMNS:
                continue
            if _is_rate(v):
                rates[k] = None
            elif _is_comparison(v):
                comps[k] = None
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                nums[k] = None
    return list(rates), list(comps), list(nums)


def _comparison_cell(v: Mapping | None):
    if not v:
        return ("", None)
    ci = f" [{100 * v['lo']:+.1f}, {100 * v['hi']:+.1f}]" if v.get("lo") is not None else ""
    return (f"{100 * v['diff']:+.1f} pt{ci} (p={v['p_value']:.2g})", v["diff"])


def results_section(rows: Sequence[Mapping]) -> str:
    rates, comps, nums = rate_columns(rows)
    headers = ["model", "condition", "intervention", "n", *[f"{k} [95% CI]" for k in rates],
               *[f"{k} (p)" for k in comps], *nums, "status"]
    body = []
    for r in rows:
        cells = [r["model"], r["condition"], r["intervention"], (r.get("n", 0), r.get("n", 0))]
        cells += [(pct(r.get(k)), r[k]["rate"] if r.get(k) and r[k].get("n") else None) for k in rates]
        cells += [_comparison_cell(r.get(k)) for k in comps]
        cells += [(f"{r[k]:.4g}" if isinstance(r.get(k), float) else r.get(k, ""), r.get(k)) for k in nums]
        cells.append(r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('reason', '')}")
        body.append(cells)
    note = ("<p class='muted'>Click a column header to sort. Rates: Wilson 95% intervals; differences against "
            "<code>none</code> (same model and condition) with their interval and exact test.</p>")
    return note + f"<div class='wide'>{table(headers, body, cls='results')}</div>"


def _generic(value: Any) -> str:
    if isinstance(value, Mapping):
        if all(isinstance(v, Mapping) for v in value.values()) and value:
            keys = list(dict.fromkeys(k for v in value.values() for k in v))
            return table(["", *keys], [[name, *[_plain(v.get(k)) for k in keys]] for name, v in value.items()])
        return kv_table({k: _plain(v) for k, v in value.items()})
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        keys = list(dict.fromkeys(k for v in value for k in v))
        return table(keys, [[_plain(v.get(k)) for k in keys] for v in value])
    return f"<p>{esc(_plain(value))}</p>"


def _plain(v: Any):
    if _is_rate(v):
        return (pct(v), v["rate"])
    if _is_comparison(v):
        return _comparison_cell(v)
    if isinstance(v, float):
        return (f"{v:.4g}", v)
    return v if isinstance(v, (str, int)) or v is None else json.dumps(_rounded(v), default=str)


def _rounded(v: Any):
    """Floats to 4 significant digits, all the way down (a page is read, not parsed)."""
    if isinstance(v, float):
        return float(f"{v:.4g}")
    if isinstance(v, Mapping):
        return {k: _rounded(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_rounded(x) for x in v]
    return v


def headline_section(stress: Path, rows: Sequence[Mapping]) -> str:
    """The stress test's ``headline.json`` when the run wrote one, else the capping lines from its rows."""
    from .headline import fallback_html, headline_html

    path = stress / "headline.json"
    if not path.exists():
        return fallback_html(rows)
    recorded = read_json(path)
    return headline_html(recorded) if isinstance(recorded, Mapping) and "tables" in recorded else _generic(recorded)


def figures_section(folder: Path, page_dir: Path, prefix: str) -> str:
    """Every figure of ``folder`` inline (from its ``.plotly.json``); HTML-only figures as links."""
    if not folder.is_dir():
        return ""
    parts = []
    names = sorted(p.name[: -len(FIGURE_JSON)] for p in folder.glob(f"*{FIGURE_JSON}"))
    for name in names:
        note = FIGURE_NOTES.get(name, "")
        parts.append(f"<div class='figure'><h3>{esc(name)}</h3><p class='muted'>{esc(note)}</p>"
                     f"{figure_html(folder / f'{name}{FIGURE_JSON}', f'{prefix}-{name}')}</div>")
    older = sorted(p for p in folder.glob("*.html") if p.stem not in names and p.name != "report.html")
    if older:
        links = ", ".join(f"<a href='{esc(_rel(p, page_dir))}'>{esc(p.name)}</a>" for p in older)
        parts.append(f"<p class='muted'>Figures saved without their JSON (open separately): {links}</p>")
    return "\n".join(parts)


def _rel(path: Path, start: Path) -> str:
    import os

    return Path(os.path.relpath(path, start)).as_posix()


def _answer(s: Mapping) -> str:
    scores = ", ".join(f"{k} {v:.0f}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items()
                       if k not in _SAMPLE_SKIP and not k.endswith("_reason") and isinstance(v, (int, float, bool)))
    return (f"<div class='answer'><strong>{esc(s.get('prompt') or s.get('question'))}</strong>\n"
            f"{esc(s.get('answer'))}\n<span class='muted'>({esc(scores or 'not scored')})</span></div>")


def answers_section(stress: Path, rows: Sequence[Mapping]) -> str:
    """One collapsed block per cell with every answer verbatim and its scores."""
    parts = []
    for r in rows:
        if r["status"] != "ok" or not r.get("samples") or not (stress / r["samples"]).exists():
            continue
        samples = read_jsonl(stress / r["samples"])
        em = f" - EM {pct(r.get('em'))}" if r.get("em") else ""
        summary = f"{esc(r['model'])} | {esc(r['condition'])} | {esc(r['intervention'])} ({len(samples)} answers){em}"
        parts.append(details(summary, "\n".join(_answer(s) for s in samples)))
    return "\n".join(parts) or "<p class='muted'>No answers on disk.</p>"


def provenance_section(stress: Path, rows: Sequence[Mapping]) -> str:
    """Model, adapters (with their content keys), config hash, judge, seed, generation and versions."""
    summary = read_json(stress / "summary.json") if (stress / "summary.json").exists() else {}
    prov = next((r["provenance"] for r in rows if r.get("provenance")), {})
    adapters = {}
    for r in rows:
        p = r.get("provenance") or {}
        adapters.setdefault(r["model"], f"{p.get('adapter') or '(base weights)'}  key {p.get('adapter_key') or '-'}")
    info = {"run folder": str(stress.resolve()), "base model": prov.get("base"),
            "config hash": summary.get("config_hash") or prov.get("config_hash"),
            "judge": summary.get("judge") or prov.get("judge"), "seed": prov.get("seed"),
            "questions": f"{summary.get('n_questions', '?')} (hash {prov.get('questions_hash', '-')})",
            "generation": summary.get("generation"), "cells": summary.get("cells"),
            "wall seconds (stress stage)": summary.get("wall_seconds")}
    info.update({f"adapter: {m}": a for m, a in adapters.items()})
    return kv_table({k: v for k, v in info.items() if v is not None}) + versions_html(summary.get("versions"))


def versions_html(recorded: Mapping | None) -> str:
    if recorded:
        return "<h3>Package versions (recorded with the run)</h3>" + kv_table(recorded)
    from ..versions import package_versions

    return ("<h3>Package versions (of the report builder: the run recorded none)</h3>"
            + kv_table(package_versions()))


def numbers_section(numbers: Mapping) -> str:
    """An analysis's ``numbers.json``: the scalars and small tables first, the rest collapsed."""
    small = {k: v for k, v in numbers.items() if k not in ("provenance", "figures") and len(json.dumps(v, default=str))
             <= 400}
    large = {k: v for k, v in numbers.items() if k not in small and k not in ("provenance", "figures")}
    out = [kv_table({k: _plain(v) for k, v in small.items()})]
    for k, v in large.items():
        out.append(details(esc(k), f"<pre>{esc(json.dumps(_rounded(v), indent=1, default=str)[:20000])}</pre>"))
    return "\n".join(out)
