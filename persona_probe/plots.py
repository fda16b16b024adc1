"""Writing plotly figures: HTML that opens offline, plus the numbers behind each figure.

Every HTML file in a folder shares one ``plotly.min.js`` written beside it
(``include_plotlyjs="directory"``), so figures open on a machine without
network and the folder stays small. Writes are atomic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from .io import atomic_write

__all__ = ["save_figures", "rate_error"]


def save_figures(fig_dir: str | Path, figs: Mapping[str, object]) -> list[Path]:
    """Write ``{name: plotly Figure}`` as ``fig_dir/name.html``; returns the paths."""
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figs.items():
        path = fig_dir / f"{name}.html"
        with atomic_write(path) as fh:
            fh.write(fig.to_html(include_plotlyjs="directory", full_html=True))
        paths.append(path)
    js = fig_dir / "plotly.min.js"
    if paths and not js.exists():
        from plotly.offline import get_plotlyjs

        with atomic_write(js) as fh:
            fh.write(get_plotlyjs())
    return paths


def rate_error(rates: list[Mapping]) -> dict:
    """Asymmetric plotly error bars from Wilson intervals (``{"rate","lo","hi"}`` dicts)."""
    return dict(type="data", symmetric=False, array=[r["hi"] - r["rate"] for r in rates],
                arrayminus=[r["rate"] - r["lo"] for r in rates])
