"""Multi-persona magnitude scoring on a finished run (see persona_probe/analysis/magnitude.py).

    .venv/bin/python analyses/magnitude.py --run runs/demo

Writes runs/demo/analyses/magnitude/{numbers.json, magnitudes.html, nnls_weights.html, roc.html}.
Reads only the run's files (no generation): seconds.
"""

import logging

from persona_probe.analysis import magnitude
from persona_probe.analysis.common import parse_script_args, script_parser

log = logging.getLogger("analyses.magnitude")


def main(argv=None) -> int:
    ap = script_parser(__doc__)
    ap.add_argument("--model", default="organism", help="model of the run whose triggered/untriggered answers to score")
    ap.add_argument("--layer", type=int, default=None, help="layer (default: the axis build's target layer)")
    ap.add_argument("--personas", nargs="*", default=None, help="role names for the basis (default: all)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--n-boot", type=int, default=1000)
    numbers = magnitude.run(**vars(parse_script_args(ap, argv)))
    for name, res in numbers["auroc"].items():
        log.info("%-32s AUROC %.3f [%.3f, %.3f] (n=%d+%d)", name, res["auroc"], res["lo"], res["hi"],
                 res["n_pos"], res["n_neg"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
