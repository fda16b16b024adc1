"""The run as a page and a gallery: ``report.html`` per run folder, static figures for ``figures/``.

* :mod:`.build` - :func:`build_reports`: the pages of a demo, stress-test or analysis folder,
  after redrawing the figures the folder's data supports (no model loaded);
* :mod:`.sections` - headline, results, figures, verbatim answers, provenance, read from disk;
* :mod:`.html` - the self-contained page (plotly.js inlined once, sortable tables, no network);
* :mod:`.static` - :func:`write_gallery`: key figures as SVG through kaleido and a system Chromium;
* :mod:`.cli` - ``persona-probe report RUN_DIR [--gallery DIR]``.
"""

from .build import build_reports, folder_kind, redraw_figures, write_analysis_page, write_demo_page, write_stress_page

__all__ = ["build_reports", "folder_kind", "redraw_figures", "write_analysis_page", "write_demo_page",
           "write_stress_page"]
