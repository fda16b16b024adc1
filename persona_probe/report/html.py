"""The parts of a self-contained HTML page: escaped text, sortable tables, collapsible blocks, inline figures.

A page opens offline by double-click: plotly.js is inlined once (figures are rendered with
``include_plotlyjs=False`` and no MathJax), the CSS and the table-sorting script are inline,
and nothing refers to a URL outside the file except links the reader clicks (relative paths to
the run's own files).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["esc", "inline_md", "table", "kv_table", "details", "figure_html", "page", "Cell"]

Cell = Any  # a cell is text, or ``(text, number)`` where the number is the sort key

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1250px;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.88em;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}table.sortable th{cursor:pointer;user-select:none}
table.sortable th[data-dir=asc]::after{content:" \\25B2"}table.sortable th[data-dir=desc]::after{content:" \\25BC"}
details{margin:.3em 0}summary{cursor:pointer}code{background:#f3f3f3;padding:0 .2em}
.answer{border-left:3px solid #ddd;margin:.4em 0 .8em;padding-left:.7em;white-space:pre-wrap}
.muted{color:#666;font-size:.9em}.wide{overflow-x:auto}table.results td{white-space:nowrap}
.figure{margin:1.2em 0}.note{background:#fff8e1;padding:.5em .8em}
"""

_SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], i = th.cellIndex;
    var dir = th.dataset.dir === "asc" ? "desc" : "asc";
    table.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
    th.dataset.dir = dir;
    function key(td) { return td.dataset.num !== undefined ? parseFloat(td.dataset.num) : td.textContent.trim(); }
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[i]), y = key(b.cells[i]), c;
      if (typeof x === "number" && typeof y === "number") { c = x - y; }
      else if (typeof x === "number") { c = -1; } else if (typeof y === "number") { c = 1; }
      else { c = x.localeCompare(y, undefined, {numeric: true}); }
      return dir === "asc" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def inline_md(text: str) -> str:
    """Escape ``text``, then render the markdown the reports use inline: ``**bold**`` and ```code```."""
    out = esc(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _td(cell: Cell) -> str:
    if isinstance(cell, tuple):
        text, num = cell
        return f'<td data-num="{num}">{esc(text)}</td>' if num is not None else f"<td>{esc(text)}</td>"
    return f"<td>{esc(cell)}</td>"


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, sortable: bool = True, cls: str = "") -> str:
    """A table; with ``sortable`` a click on a header sorts by that column (numbers by their sort key)."""
    classes = " ".join(c for c in ("sortable" if sortable else "", cls) if c)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
    return f'<table class="{classes}"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def kv_table(mapping: Mapping[str, Any]) -> str:
    """Two columns, key and value (long values cut, with their length said)."""
    return table(["", ""], [[k, v if isinstance(v, tuple) else _short(v)] for k, v in mapping.items()], sortable=False,
                 cls="kv")


def details(summary: str, body: str, *, open_: bool = False) -> str:
    return f"<details{' open' if open_ else ''}><summary>{summary}</summary>\n{body}\n</details>"


def figure_html(fig_json: str | Path, div_id: str) -> str:
    """A plotly figure (its JSON text or file) as a div and the script that draws it; no plotly.js, no MathJax."""
    import plotly.io as pio

    text = Path(fig_json).read_text(encoding="utf-8") if isinstance(fig_json, Path) else fig_json
    fig = pio.from_json(text, skip_invalid=True)
    return pio.to_html(fig, include_plotlyjs=False, include_mathjax=False, full_html=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def page(title: str, body: str, *, plotly: bool = True) -> str:
    """The whole page: inline CSS, plotly.js once (when the page has figures), the body, the sorting script."""
    js = ""
    if plotly:
        from plotly.offline import get_plotlyjs

        js = f'<script type="text/javascript">{get_plotlyjs()}</script>'
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_CSS}</style>{js}</head>\n"
            f"<body>\n<h1>{esc(title)}</h1>\n{body}\n<script>{_SORT_JS}</script>\n</body></html>\n")
