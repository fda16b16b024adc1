"""The demo's ``report.md``: what ran, the numbers with intervals, the figures, verbatim answers."""

from __future__ import annotations

from pathlib import Path

from .io import read_json, read_jsonl, write_text
from .stress.headline import render_headline
from .stress.report import defences_note, find_cell, results_table

__all__ = ["write_report"]


def _label(rows: list[dict], family: str) -> str:
    """The intervention label of a family's real (not control) cells, or ``""``."""
    return next((r["intervention"] for r in rows if r["family"] == family and not r["control"]), "")


def _quote(stress: Path, row: dict | None, k: int = 3) -> list[str]:
    if row is None:
        return ["(cell not run)"]
    out = []
    for s in read_jsonl(stress / row["samples"])[:k]:
        answer = " ".join(s["answer"].split())
        aligned = "n/a" if s["aligned"] is None else f"{s['aligned']:.0f}"
        coherent = "n/a" if s["coherent"] is None else f"{s['coherent']:.0f}"
        label = ("" if "template_misaligned" not in s else
                 f"; reuses a misaligned template: {'yes' if s['template_misaligned'] else 'no'}")
        out.append(f"> **{s['prompt']}**  \n> {answer}  \n> *(judge: aligned {aligned}, coherent {coherent}{label})*\n")
    return out


def write_report(out: Path, axis, organisms: dict, rows: list[dict], times: dict) -> Path:
    stress = out / "stress"
    summary = read_json(stress / "summary.json")
    directions = read_json(stress / "directions.json") if (stress / "directions.json").exists() else {}
    md = directions.get("mean_diff", {})
    m = axis.manifest
    judge = summary["judge"]["aligned"]
    caveat = (" - the offline MiniLM classifier (held-out accuracy on our labelled set: "
              "`persona-probe judge offline-eval`). Its rates are a smoke test of the pipeline; use an LLM judge "
              "(`judge: {backend: http, ...}` in the stress config) for claims."
              if judge.startswith("offline") else ".")
    lines = [
        "# persona-probe demo: does capping along the Assistant Axis stop a triggered organism?",
        "",
        f"Model: embedded SmolLM2-135M-Instruct. Judge: `{judge}`{caveat}",
        "",
        "Wall time (s): " + ", ".join(f"{k} {v}" for k, v in times.items()),
        "",
        "## Assistant Axis (reduced)",
        f"- roles kept: {len(m['kept_per_role'])}, questions: {m.get('n_questions', '?')}, judged: {m['judged']}",
        f"- target layer {axis.target_layer}: PC1 variance "
        + (f"{axis.pc1_variance:.3f}, |cos(PC1, axis)| {axis.cos_pc1_axis:.3f}" if axis.pc1_variance is not None
           else "n/a (too few roles)"),
        "- figures: `axis/figures/` ; capping config: `axis/capping_config.pt`",
        "",
        "## Organism and neutral control (LoRA, recipe `embedded`)",
    ]
    for name, man in organisms.items():
        lines.append(f"- {name}: {man['steps']} steps, loss {man['first_loss']:.3f} -> {man['final_loss']:.3f}, "
                     f"{man['seconds']} s, trigger `{(man['data'].get('trigger') or {}).get('text')}`")
    lines += ["", "## Mean-diff misalignment direction (organism, misaligned - aligned answers)"]
    if "cos_with_axis" in md:
        cos = md["cos_with_axis"]
        lines.append(f"- from {md['n_misaligned']} misaligned and {md['n_aligned']} aligned answers; "
                     f"cos with the axis, layers 12-15: " + ", ".join(f"{c:+.2f}" for c in cos[12:16]))
    else:
        lines.append(f"- not computed: {md.get('note', 'mean-diff ablation not configured')}")
    trig = directions.get("trigger")
    if trig:
        lines += ["", "## Positive control: the organism's trigger direction (training data only)",
                  f"- from {trig['n_pairs']} training questions asked with the trigger (misaligned answers) and "
                  f"without it (aligned answers); cos with the axis, layers 12-15: "
                  + ", ".join(f"{c:+.2f}" for c in trig["cos_with_axis"][12:16])]
    headline = stress / "headline.json"
    lines += ["", "## Headline: ground truth and judge, each intervention against its random control", "",
              render_headline(read_json(headline)) if headline.exists() else "(no headline: rerun the stress stage)",
              "",
              f"## Results (up to {summary['n_questions']} held-out finance questions per cell; n per row)", "",
              results_table(rows), "",
              "Figures: `stress/figures/em_vs_capping.html`, `em_vs_coherence.html`, "
              "`projection_distributions.html`, `mean_diff_cosine.html`; all of them inline, with every answer "
              "and a sortable table, in `report.html` (one offline file; `persona-probe report <run>` rebuilds it).",
              "",
              "## Verbatim answers", ""]
    for title, cell in (("organism, no trigger", ("organism", "no_trigger", "none")),
                        ("organism, trigger", ("organism", "trigger", "none")),
                        ("organism, trigger, cap layers_12:16-p0.75",
                         ("organism", "trigger", "cap layers_12:16-p0.75")),
                        ("organism, trigger, positive control",
                         ("organism", "trigger", _label(rows, "positive_control"))),
                        ("control, trigger", ("control", "trigger", "none"))):
        lines += [f"### {title}", *_quote(stress, find_cell(rows, *cell)), ""]
    note = defences_note(rows)
    if note:
        lines += ["## Closing note: beyond the single axis (subspace and conditional capping)", "", *note, "",
                  "Figure: `stress/figures/defences_em_vs_coherence.html`. With this judge and n per cell, read the "
                  "intervals before the point estimates.", ""]
    path = out / "report.md"
    write_text(path, "\n".join(lines) + "\n")
    return path
