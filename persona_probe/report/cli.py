"""``persona-probe report RUN_DIR [--gallery DIR]``: a finished run's pages and figures, no model loaded.

``RUN_DIR`` is a demo run folder (pages for the run, its stress test and each analysis), a
stress-test folder, or one analysis folder. ``--gallery DIR`` also exports the key figures as SVG
into ``DIR`` with a README (``make figures`` writes the repository's ``figures/`` this way).
"""

from __future__ import annotations

import argparse
import logging
import shlex

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("report", help="rebuild report.html and the figures of a finished run (no model loaded)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="demo run folder, stress-test folder or analysis folder")
    p.add_argument("--gallery", default=None, metavar="DIR",
                   help="also export the key figures as SVG into DIR, with DIR/README.md (needs Chromium)")
    p.add_argument("--no-redraw", dest="figures", action="store_false",
                   help="keep the figures on disk instead of redrawing them from the run's data")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from .build import build_reports

    if args.gallery:
        from .static import require_browser, require_kaleido

        require_kaleido()  # fail before any work when the export cannot run
        require_browser()
    for path in build_reports(args.run_dir, figures=args.figures):
        print(path)
    if args.gallery:
        from .static import write_gallery

        command = f"persona-probe report {shlex.quote(args.run_dir)} --gallery {shlex.quote(args.gallery)}"
        for path in write_gallery(args.run_dir, args.gallery, command=command):
            print(path)
    return 0
