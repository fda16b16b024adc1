"""The static gallery: a run's key figures as SVG files and a README saying what each shows.

Export goes through kaleido (>= 1), which drives a Chromium the machine already has (Debian's
``chromium`` package, or any Chrome named by ``BROWSER_PATH``); nothing is downloaded. MathJax
is off and plotly.js comes from the installed plotly package, so the export needs no network.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

from ..io import read_json, write_text
from ..plots import FIGURE_JSON
from .sections import FIGURE_NOTES

log = logging.getLogger(__name__)

__all__ = ["GALLERY", "find_browser", "require_browser", "require_kaleido", "export_svgs", "write_gallery",
           "INSTALL_HINT"]

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
INSTALL_HINT = ("static figures need Chromium: `sudo apt-get install chromium` (Debian/Ubuntu; `make install` does "
                "it when run as root), or set BROWSER_PATH to a Chrome/Chromium executable")

# (figure in the run folder, file name in the gallery); README order. The first two are the README's.
GALLERY: list[tuple[str, str]] = [
    ("stress/figures/em_vs_capping", "em_vs_capping"),
    ("stress/figures/projection_distributions", "axis_projections_by_condition"),
    ("stress/figures/template_vs_capping", "template_vs_capping"),
    ("stress/figures/em_vs_coherence", "em_vs_coherence"),
    ("stress/figures/defences_em_vs_coherence", "defences_em_vs_coherence"),
    ("stress/figures/mean_diff_cosine", "mean_diff_cosine"),
    ("axis/figures/roles_pc1_pc2", "persona_space_roles"),
    ("axis/figures/pc1_axis_cosine", "persona_space_pc1_axis_cosine"),
    ("analyses/magnitude/roc", "analysis_magnitude_roc"),
    ("analyses/clustering/cosine_per_layer", "analysis_clustering_cosines"),
    ("analyses/drift/axis_layer*", "analysis_drift_axis"),
    ("analyses/triggered_axis/threshold_shift", "analysis_triggered_axis_threshold_shift"),
    ("analyses/persona_vectors/trait_projections", "analysis_persona_vectors_trait"),
    ("analyses/sae/top_features", "analysis_sae_top_features"),
    ("analyses/transfer/transfer_auroc", "analysis_transfer_auroc"),
]


def find_browser() -> str | None:
    """``BROWSER_PATH`` when set, else the first Chromium/Chrome on ``PATH``."""
    if os.environ.get("BROWSER_PATH"):
        return os.environ["BROWSER_PATH"] if Path(os.environ["BROWSER_PATH"]).exists() else None
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def require_browser() -> str:
    path = find_browser()
    if path is None:
        raise RuntimeError(f"no Chromium found ({', '.join(BROWSERS)} on PATH or BROWSER_PATH): {INSTALL_HINT}")
    return path


def require_kaleido():
    """The kaleido module, or an error saying how to install it."""
    try:
        import kaleido
    except ImportError as e:
        raise RuntimeError("static figures need kaleido >= 1: pip install 'kaleido>=1' (in the dev extras; "
                           "`make install` installs it)") from e
    return kaleido


def export_svgs(figures: Sequence[tuple[Path, Path]], *, width: int = 1100, height: int | None = None) -> list[Path]:
    """Render ``(figure .plotly.json, out .svg)`` pairs in one browser session; returns the written paths."""
    import json

    kaleido = require_kaleido()
    browser = require_browser()
    specs = []
    for src, out in figures:
        fig = json.loads(Path(src).read_text(encoding="utf-8"))
        h = height or (fig.get("layout") or {}).get("height") or 520
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        specs.append({"fig": fig, "path": str(out), "opts": {"format": "svg", "width": width, "height": h}})
    if specs:
        kaleido.write_fig_from_object_sync(specs, kopts={"mathjax": False, "path": browser})
    return [Path(s["path"]) for s in specs]


def _provenance(run: Path) -> dict:
    from ..io import read_jsonl

    stress = run / "stress" if (run / "stress").is_dir() else run
    summary = read_json(stress / "summary.json") if (stress / "summary.json").exists() else {}
    rows = read_jsonl(stress / "results.jsonl") if (stress / "results.jsonl").exists() else []
    base = next((r["provenance"].get("base") for r in rows if r.get("provenance")), "?")
    return {"run": run.resolve().name, "model": base, "judge": (summary.get("judge") or {}).get("aligned", "?"),
            "config hash": summary.get("config_hash", "?"), "questions per cell": summary.get("n_questions", "?")}


def write_gallery(run: str | Path, out: str | Path, *, command: str) -> list[Path]:
    """Export the :data:`GALLERY` figures ``run`` has into ``out`` as SVG, plus ``out/README.md``.

    ``command``: the command line that made the gallery, quoted in the README.
    """
    run, out = Path(run), Path(out)
    pairs = []
    stress_only = (run / "results.jsonl").exists()  # a stress-test folder: its figures/ is the run's stress/figures/
    for pattern, name in GALLERY:  # a pattern (drift's figures are named by layer) takes its first match
        if stress_only:
            pattern = pattern.removeprefix("stress/")
        found = sorted(run.glob(f"{pattern}{FIGURE_JSON}"))
        if found:
            pairs.append((found[0], out / f"{name}.svg", found[0].relative_to(run).as_posix()[: -len(FIGURE_JSON)]))
    if not pairs:
        raise FileNotFoundError(f"{run}: none of the gallery's figures exist; run `persona-probe report {run}` on "
                                f"a finished run first (it redraws the figures)")
    for old in out.glob("*.svg"):  # a figure the run no longer has must not linger
        old.unlink()
    paths = export_svgs([(src, dst) for src, dst, _ in pairs])
    prov = _provenance(run)
    lines = ["# figures/", "",
             "Key figures of one finished run, committed so a reader sees results before running anything. "
             "Every figure uses the same encoding: colour is the condition (no trigger blue, trigger vermillion, "
             "near miss green), line style and marker the intervention (real direction solid, random-direction "
             "control dashed with open markers, no intervention dotted).", "",
             "Made from: " + ", ".join(f"{k} `{v}`" for k, v in prov.items()) + ".", "",
             f"Made by: `{command}` (`make figures RUN=<run folder>` runs the same). Each figure's interactive "
             "version is in the run folder (path below) and inline in its `report.html`.", ""]
    for (_, dst, src), path in zip(pairs, paths):
        key = src.rsplit("/", 1)[-1]
        lines += [f"## {dst.name}", "", f"![{key}]({path.name})", "",
                  f"{FIGURE_NOTES.get(key, key.replace('_', ' ') + '.')} Source: `<run>/{src}.html`.", ""]
    write_text(out / "README.md", "\n".join(lines))
    log.info("wrote %d figures and README.md to %s", len(paths), out)
    return paths
