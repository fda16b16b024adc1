"""The stress test's headline: does each intervention move misalignment more than its random control?

:func:`build_headline` turns the result rows into ``headline.json`` - plain
data, so any page (``report.md``, an HTML report) shows the same numbers - and
:func:`render_headline` writes it as markdown. For the organism (the first
model that gets interventions), per condition, each direction intervention
gets, for every measure (the ground-truth template rate first when the run
has it, then the judge's EM rate): its rate with a Wilson interval, the change
against ``none`` and against its own random control (Newcombe interval, Fisher
p), and the minimum detectable effect of each comparison. The ``none`` cells of
every model follow, with each model's trigger effect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from ..io import write_json, write_text
from .ground_truth import vs_reference
from .report import pct

__all__ = ["build_headline", "render_headline", "write_headline", "change_text", "measure_title"]

QUESTION = "does the intervention move misalignment more than its random control does?"


def _ok(rows: Sequence[Mapping], **match) -> list[Mapping]:
    return [r for r in rows if r["status"] == "ok" and all(r[k] == v for k, v in match.items())]


def _entry(row: Mapping, measures: Sequence[str], ref: Mapping | None = None) -> dict:
    out = {"intervention": row["intervention"], "family": row["family"], "n": row["n"]}
    for m in measures:
        out[m] = {"rate": row[m], "vs_none": row.get(f"{m}_vs_none")}
        if ref is not None:
            out[m]["vs_control"] = vs_reference(row[m], ref[m])
    return out


def _condition_table(rows: Sequence[Mapping], model: str, condition: str, measures: Sequence[str]) -> dict:
    cells = _ok(rows, model=model, condition=condition)
    none = next((r for r in cells if r["family"] == "none"), None)
    table = []
    for real in (r for r in cells if r["family"] != "none" and not r["control"]):
        controls = [c for c in cells if c["control"] and c["intervention"].startswith(real["intervention"] + " / ")]
        entry = _entry(real, measures, controls[0] if controls else None)
        entry["controls"] = [_entry(c, measures) for c in controls]
        table.append(entry)
    return {"model": model, "condition": condition, "none": _entry(none, measures) if none else None,
            "interventions": table}


def build_headline(rows: Sequence[Mapping], summary: Mapping) -> dict:
    """The headline's numbers as plain data (``headline.json``)."""
    measures = [m for m in ("template", "em") if m in summary["measures"]]
    intervened = [r["model"] for r in rows if r["family"] != "none"]
    model = intervened[0] if intervened else None
    conditions = sorted({r["condition"] for r in rows if r["model"] == model and r["family"] != "none"},
                        key=lambda c: (c != "trigger", c))
    baselines, trigger_effect = [], []
    for r in _ok(rows, family="none"):
        baselines.append({"model": r["model"], "condition": r["condition"], "n": r["n"],
                          **{m: r[m] for m in measures}})
    for name in dict.fromkeys(b["model"] for b in baselines):
        on, off = _ok(rows, model=name, condition="trigger", family="none"), _ok(
            rows, model=name, condition="no_trigger", family="none")
        if on and off:
            trigger_effect.append({"model": name, **{m: vs_reference(on[0][m], off[0][m]) for m in measures}})
    return {"question": QUESTION, "measures": [{"name": m, **summary["measures"][m]} for m in measures],
            "mde": {"alpha": 0.05, "power": 0.8, "method": "exact power of the two-sided Fisher test, at each "
                                                           "comparison's two n and the reference cell's rate"},
            "model": model, "tables": [_condition_table(rows, model, c, measures) for c in conditions],
            "baselines": baselines, "trigger_effect": trigger_effect}


def change_text(d: Mapping | None) -> str:
    """A comparison as text: points [Newcombe interval], Fisher p, and the MDE down/up when recorded; a
    comparison that could not be made gives its note (the markdown headline and the HTML page share this)."""
    if not d or "diff" not in d:
        return (d or {}).get("note", "")
    f = lambda x: "n/a" if x is None else f"{100 * x:.0f}"
    text = f"{100 * d['diff']:+.1f} pt"
    if d.get("lo") is not None:
        text += f" [{100 * d['lo']:+.0f}, {100 * d['hi']:+.0f}]"
    text += f", p={d['p_value']:.2g}"
    if d.get("mde"):
        text += f"; MDE ↓{f(d['mde'].get('down'))}/↑{f(d['mde'].get('up'))}"
    return text


def measure_title(m: Mapping) -> str:
    """A measure's column title, ``ground truth: template`` or ``judge: em``, from its headline entry."""
    return f"{'ground truth' if m.get('kind') == 'ground truth' else 'judge'}: {m['name']}"


def render_headline(h: Mapping) -> str:
    """``headline.json`` as markdown: one table per condition, then the baselines."""
    info = {m["name"]: m for m in h["measures"]}
    measures = list(info)
    lines = [f"Question: {h['question']}", ""]
    for m in h["measures"]:
        who = m.get("judge", "")
        lines.append(f"- **{m['name']}** is {'the ground truth' if m['kind'] == 'ground truth' else 'a judge'}"
                     f"{f' (`{who}`)' if who else ''}: {m['definition']}.")
    lines += [f"- Each change: percentage points [95% Newcombe interval], Fisher exact p, and the minimum detectable "
              f"effect of that comparison, the smallest drop ↓ and rise ↑ in points it detects (two-sided alpha "
              f"{h['mde']['alpha']}, power {h['mde']['power']}; {h['mde']['method']}; n/a: no change that way "
              f"reaches the power).", ""]
    head = ["intervention", "n"]
    for m in measures:
        t = measure_title(info[m])
        head += [t, "vs none", "random control", "real vs random"]
    for table in h["tables"]:
        lines += [f"**{table['model']}, {table['condition']}**", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        rows = ([table["none"]] if table["none"] else []) + table["interventions"]
        for e in rows:
            ctrl = (e.get("controls") or [None])[0]
            cells = [e["intervention"], str(e["n"])]
            for m in measures:
                cells += [pct(e[m]["rate"]), change_text(e[m]["vs_none"]),
                          pct(ctrl[m]["rate"]) if ctrl else "", change_text(e[m].get("vs_control"))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["**No intervention, every model** (the trigger effect: trigger vs no trigger)", "",
              "| model | condition | n | " + " | ".join(measure_title(info[m]) for m in measures) + " |",
              "|" + "---|" * (3 + len(measures))]
    for b in h["baselines"]:
        lines.append(f"| {b['model']} | {b['condition']} | {b['n']} | " + " | ".join(pct(b[m]) for m in measures)
                     + " |")
    lines.append("")
    for eff in h["trigger_effect"]:
        lines.append(f"- {eff['model']}, trigger effect: " + "; ".join(f"{m} {change_text(eff[m])}" for m in measures))
    return "\n".join(lines) + "\n"


def write_headline(out: Path, rows: Sequence[Mapping], summary: Mapping) -> dict:
    """Write ``headline.json`` and ``headline.md`` into the stress run folder; returns the headline."""
    h = build_headline(rows, summary)
    write_json(Path(out) / "headline.json", h)
    write_text(Path(out) / "headline.md", render_headline(h))
    return h
