"""The stress test's results as a markdown table (the CLI prints it; the demo report embeds it)."""

from __future__ import annotations

from typing import Mapping, Sequence

__all__ = ["results_table", "pct", "diff", "defences_note", "headline_lines", "find_cell"]


def pct(r: Mapping | None) -> str:
    """``12.5% [6.1, 23.8] (5/40)`` from a Rate dict, or ``n/a`` when nothing was scored."""
    if not r or not r.get("n"):
        return "n/a"
    return f"{100 * r['rate']:.1f}% [{100 * r['lo']:.1f}, {100 * r['hi']:.1f}] ({r['k']}/{r['n']})"


def diff(vs: Mapping | None) -> str:
    """``+12.5 pt (p=0.03)`` from a difference dict, or an empty string."""
    if not vs or "diff" not in vs:
        return (vs or {}).get("note", "")
    return f"{100 * vs['diff']:+.1f} pt (p={vs['p_value']:.2g})"


def _vs(d: Mapping | None) -> str:
    if not d or "diff" not in d:
        return (d or {}).get("note", "")
    text = f"{100 * d['diff']:+.1f} pt (p={d['p_value']:.2g}"
    if "mde" not in d:  # rows written before the MDE was recorded
        return text + ")"
    down = d["mde"]["down"]
    return text + f"; MDE ↓{'n/a' if down is None else f'{100 * down:.0f}'})"


def results_table(rows: Sequence[Mapping], *, models: Sequence[str] | None = None) -> str:
    """One line per cell: model, condition, intervention, n, [template rate,] EM, coherence, each vs none[,
    detector firing rate].

    The template rate (ground truth, :mod:`.ground_truth`) appears only for runs that have it; the detector
    column only for runs with conditional caps.
    """
    gt = any("template" in r for r in rows)
    fires = any(r.get("firing") for r in rows)
    head = ["model", "condition", "intervention", "n"]
    head += ["template (ground truth) [95% CI]", "vs none (p; MDE)"] if gt else []
    head += ["EM (judge) [95% CI]", "vs none (p; MDE)", "coherent [95% CI]"]
    head += ["detector fired [95% CI]"] if fires else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if models and r["model"] not in models:
            continue
        cells = [r["model"], r["condition"], r["intervention"]]
        if r["status"] != "ok":
            lines.append("| " + " | ".join(cells + ["0", f"skipped: {r['reason']}"] + [""] * (len(head) - 5)) + " |")
            continue
        cells.append(str(r["n"]))
        if gt:
            cells += [pct(r.get("template")), _vs(r.get("template_vs_none"))]
        cells += [pct(r["em"]), _vs(r.get("em_vs_none")), pct(r["coherent"])]
        cells += [pct(r["firing"]) if r.get("firing") else ""] if fires else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_DEFENCES = ("capping", "subspace_capping", "conditional_capping")


def defences_note(rows: Sequence[Mapping]) -> list[str]:
    """Markdown lines for single-axis vs subspace vs conditional capping, each with its controls, whatever they say.

    Returns ``[]`` when the run has no subspace or conditional cells.
    """
    if not any(r["family"] in _DEFENCES[1:] for r in rows):
        return []
    pairs = {(r["model"], r["condition"]) for r in rows if r["family"] in _DEFENCES[1:]}
    keep = [r for r in rows if (r["model"], r["condition"]) in pairs and (r["family"] in _DEFENCES or
                                                                          r["family"] == "none")]
    lines = ["The same cells as above, side by side: every defence next to its matched control (random direction, "
             "random subspace, or a random detector that fires on as many of the cell's prompts); a conditional "
             "cap's unconditional control is the single-axis cap row of the same id.", "", results_table(keep), ""]
    for r in keep:
        det = r.get("detector")
        if r["family"] != "conditional_capping" or r["status"] != "ok" or not det:
            continue
        if r["control"]:
            what = (f"control detector ({r['control']} direction at layer {det['layer']}), threshold matched to fire "
                    f"on {det['matched_fires']} of {det['n_prompts']} prompts as the real detector did")
        else:
            what = (f"detector {det['direction']}@{det['layer']} ({det['read']}, fires {det['fires_when']} "
                    f"{det['threshold']:.3g}); false-positive rate on held-out untriggered training prompts "
                    f"{pct(det['fpr_heldout'])} (target {100 * det['fpr_target']:g}%, calibrated on "
                    f"{det['n_calibration']} others)")
        vs, gt = r.get("em_vs_unconditional"), r.get("template_vs_unconditional")
        lines.append(f"- {r['model']}, {r['condition']}, **{r['intervention']}**: fired on {pct(r['firing'])}; "
                     f"{what}" + (f"; vs the unconditional cap: template {diff(gt)}" if gt else "")
                     + (f"; EM vs the unconditional cap {diff(vs)}, coherence "
                        f"{diff(r.get('coherent_vs_unconditional'))}" if vs else "") + ".")
    return lines


def find_cell(rows: Sequence[Mapping], model: str, condition: str, intervention: str) -> Mapping | None:
    """The finished row of one cell, or None."""
    return next((r for r in rows if (r["model"], r["condition"], r["intervention"]) == (model, condition, intervention)
                 and r["status"] == "ok"), None)


def headline_lines(rows: Sequence[Mapping]) -> list[str]:
    """Markdown bullets: each model with vs without the trigger, and every cap on the triggered organism
    against ``none`` and against its random control (the report's headline; the page renders the same lines)."""
    lines = []
    for model in ("organism", "control", "base"):
        off, on = find_cell(rows, model, "no_trigger", "none"), find_cell(rows, model, "trigger", "none")
        if off and on:
            lines.append(f"- **{model}**: EM {pct(on['em'])} with the trigger vs {pct(off['em'])} without.")
    caps = [r for r in rows if r["model"] == "organism" and r["condition"] == "trigger" and r["family"] == "capping"
            and not r["control"] and r["status"] == "ok"]
    for r in caps:
        ctrl = find_cell(rows, "organism", "trigger", f"{r['intervention']} / random")
        vs = r.get("em_vs_none")
        lines.append(f"- organism + trigger, **{r['intervention']}**: EM {pct(r['em'])} "
                     f"({100 * vs['diff']:+.1f} pt vs none, p={vs['p_value']:.2g}); coherent {pct(r['coherent'])}; "
                     f"random direction, matched threshold: EM {pct(ctrl['em']) if ctrl else 'n/a'}.")
    return lines
