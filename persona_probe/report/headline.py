"""The page's headline from the stress test's ``headline.json``, or from ``results.jsonl`` when a run has none.

``headline.json`` (written by the stress run) holds, for the organism and each condition, every
intervention's rate per measure (the ground-truth template rate first when the run has it, then
the judge's EM rate) with its Wilson interval, its change against ``none`` and against its own
random control (Newcombe interval, Fisher p) and the minimum detectable effect of each
comparison; the positive control is one of those interventions. A run written before that file
existed gets the capping lines computed from its rows, and a note saying what is missing.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..stress.headline import change_text, measure_title
from ..stress.report import headline_lines, pct
from .html import esc, inline_md, table

__all__ = ["headline_html", "fallback_html", "POSITIVE"]

POSITIVE = "positive_control"  # the family of the positive control's cells


def delta_text(d: Mapping | None) -> tuple[str, float | None]:
    """A comparison as ``(text, sort key)``: the stress headline's text and the change it sorts by."""
    return (change_text(d), d.get("diff") if d else None)


def _rate(r: Mapping | None) -> tuple[str, float | None]:
    return (pct(r), r["rate"]) if r and r.get("n") else ("", None)


def _measures_html(h: Mapping) -> str:
    items = []
    for m in h.get("measures", []):
        who = "the ground truth" if m.get("kind") == "ground truth" else "a judge"
        judge = f" (<code>{esc(m['judge'])}</code>)" if m.get("judge") else ""
        items.append(f"<li><strong>{esc(m['name'])}</strong> is {who}{judge}: {esc(m.get('definition', ''))}.</li>")
    mde = h.get("mde") or {}
    items.append("<li>Each change: percentage points [95% Newcombe interval], Fisher exact p, and that comparison's "
                 "minimum detectable effect (MDE), the smallest drop ↓ and rise ↑ in points it would detect "
                 f"(two-sided alpha {esc(mde.get('alpha', 0.05))}, power {esc(mde.get('power', 0.8))}; "
                 f"{esc(mde.get('method', ''))}; n/a: no change that way reaches that power).</li>")
    return f"<p><strong>{esc(h.get('question', ''))}</strong></p><ul>{''.join(items)}</ul>"


def _condition_table(t: Mapping, measures: Sequence[Mapping]) -> str:
    head = ["intervention", "n"]
    for m in measures:
        head += [f"{measure_title(m)} [95% CI]", "vs none", "random control", "real vs random"]
    rows = []
    for e in ([t["none"]] if t.get("none") else []) + list(t.get("interventions", [])):
        ctrl = (e.get("controls") or [None])[0]
        label = e["intervention"] + (" (positive control)" if e.get("family") == POSITIVE
                                     and "positive" not in e["intervention"] else "")
        cells: list[Any] = [label, (e.get("n"), e.get("n"))]
        for m in measures:
            v = e.get(m["name"]) or {}
            cells += [_rate(v.get("rate")), delta_text(v.get("vs_none")),
                      _rate((ctrl.get(m["name"]) or {}).get("rate")) if ctrl else ("", None),
                      delta_text(v.get("vs_control"))]
        rows.append(cells)
    return (f"<h3>{esc(t.get('model'))}, {esc(t.get('condition'))}</h3>"
            f"<div class='wide'>{table(head, rows, cls='headline')}</div>")


def _positive_note(h: Mapping, measures: Sequence[Mapping]) -> str:
    """The positive control on the triggered organism: what the test can see, in one sentence per measure."""
    t = next((t for t in h.get("tables", []) if t.get("condition") == "trigger"), None)
    e = next((e for e in (t or {}).get("interventions", []) if e.get("family") == POSITIVE), None)
    if e is None:
        return ("<p class='note'>This run has no positive control: a null result here cannot be told apart from a "
                "test that could not have seen an effect.</p>")
    parts = []
    for m in measures:
        v = e.get(m["name"]) or {}
        vs = v.get("vs_control") or v.get("vs_none")
        parts.append(f"{esc(measure_title(m))} {esc(pct(v.get('rate')))}, {esc(delta_text(vs)[0])} against "
                     f"{'its random control' if v.get('vs_control') else 'none'}")
    return (f"<p class='note'><strong>Positive control</strong> (<code>{esc(e['intervention'])}</code>: the "
            "organism's own trigger direction, from its training data; it must lower triggered misalignment if the "
            "test can see anything), organism with the trigger: "
            + "; ".join(parts) + ".</p>")


def _baselines(h: Mapping, measures: Sequence[Mapping]) -> str:
    names = [m["name"] for m in measures]
    rows = [[b["model"], b["condition"], (b.get("n"), b.get("n")), *[_rate(b.get(n)) for n in names]]
            for b in h.get("baselines", [])]
    effects = "".join(f"<li>{esc(eff['model'])}, trigger vs no trigger: "
                      + "; ".join(f"{esc(n)} {esc(delta_text(eff.get(n))[0])}" for n in names if eff.get(n))
                      + "</li>" for eff in h.get("trigger_effect", []))
    return ("<h3>No intervention, every model</h3>"
            + table(["model", "condition", "n", *[f"{measure_title(m)} [95% CI]" for m in measures]], rows)
            + (f"<ul>{effects}</ul>" if effects else ""))


def headline_html(h: Mapping) -> str:
    """``headline.json`` as HTML: the question and measures, the positive control, one table per condition."""
    measures = [m for m in h.get("measures", []) if m.get("name")]
    parts = [_measures_html(h), _positive_note(h, measures)]
    parts += [_condition_table(t, measures) for t in h.get("tables", [])]
    if h.get("baselines"):
        parts.append(_baselines(h, measures))
    return "\n".join(parts)


def fallback_html(rows: Sequence[Mapping]) -> str:
    """A run without ``headline.json``: the capping lines from its rows, and what the page cannot show."""
    lines = headline_lines(rows)
    note = ("<p class='note'>This run has no <code>headline.json</code> (it was written before the stress test "
            "recorded ground-truth labels, a positive control and minimum detectable effects); rerun its stress "
            "stage for them. The lines below come from <code>results.jsonl</code>.</p>")
    if not lines:
        return note + "<p class='muted'>No finished trigger / no-trigger pair to summarise.</p>"
    return note + "<ul>" + "".join(f"<li>{inline_md(line[2:])}</li>" for line in lines) + "</ul>"
