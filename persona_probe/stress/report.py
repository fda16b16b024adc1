"""The stress test's results as a markdown table (the CLI prints it; the demo report embeds it)."""

from __future__ import annotations

from typing import Mapping, Sequence

__all__ = ["results_table", "pct"]


def pct(r: Mapping | None) -> str:
    """``12.5% [6.1, 23.8] (5/40)`` from a Rate dict, or ``n/a`` when nothing was scored."""
    if not r or not r.get("n"):
        return "n/a"
    return f"{100 * r['rate']:.1f}% [{100 * r['lo']:.1f}, {100 * r['hi']:.1f}] ({r['k']}/{r['n']})"


def results_table(rows: Sequence[Mapping], *, models: Sequence[str] | None = None) -> str:
    """One line per cell: model, condition, intervention, n, EM, coherence, p vs none."""
    lines = ["| model | condition | intervention | n | EM rate [95% CI] | coherent [95% CI] | EM vs none (p) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if models and r["model"] not in models:
            continue
        if r["status"] != "ok":
            lines.append(f"| {r['model']} | {r['condition']} | {r['intervention']} | 0 | skipped: {r['reason']} | | |")
            continue
        vs = r.get("em_vs_none")
        p = f"{100 * vs['diff']:+.1f} pt (p={vs['p_value']:.2g})" if vs else ""
        lines.append(f"| {r['model']} | {r['condition']} | {r['intervention']} | {r['n']} | {pct(r['em'])} | "
                     f"{pct(r['coherent'])} | {p} |")
    return "\n".join(lines)
