"""Trigger-conditioned drift trajectories on a finished run (see persona_probe/analysis/drift.py).

    .venv/bin/python analyses/drift.py --run runs/demo [--trigger-mode every]

Generates scripted multi-turn conversations with the organism (cached per turn
under the output folder) and writes runs/demo/analyses/drift/{numbers.json, <direction>_layer<L>.html}.
"""

import logging

from persona_probe.analysis import drift
from persona_probe.analysis.common import parse_script_args, script_parser

log = logging.getLogger("analyses.drift")


def main(argv=None) -> int:
    ap = script_parser(__doc__)
    ap.add_argument("--model", default="organism")
    ap.add_argument("--n-scripts", type=int, default=None, help="first N built-in scripts (default: all 4)")
    ap.add_argument("--max-turns", type=int, default=4, help="cut every script to N user turns (0: keep all)")
    ap.add_argument("--samples", type=int, default=2, help="sampled repeats of each script")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--temperature", type=float, default=None, help="default: the run's generation temperature")
    ap.add_argument("--trigger-mode", choices=drift.TRIGGER_MODES, default="first")
    ap.add_argument("--experiment", default=None, help="capping experiment id (default: the run's first)")
    ap.add_argument("--no-cap", dest="capped", action="store_false", help="skip the capped conversations")
    ap.add_argument("--personas", nargs="*", default=None, help="role names (default: the 3 farthest from the Assistant)")
    ap.add_argument("--layer", type=int, default=None)
    kw = vars(parse_script_args(ap, argv))
    kw["max_turns"] = kw["max_turns"] or None
    numbers = drift.run(**kw)
    for label, res in numbers["last_minus_first_turn"]["axis"].items():
        log.info("axis drift (last - first turn) %-40s %s", label, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
