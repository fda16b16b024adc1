"""The Assistant Axis rebuilt on the triggered organism (see persona_probe/analysis/triggered_axis.py).

    .venv/bin/python analyses/triggered_axis.py --run runs/demo

Builds reduced axes (resumable) under runs/demo/analyses/triggered_axis/axis_{base,organism,triggered}/,
each with a capping_config.pt calibrated like the run's, and writes numbers.json,
cosine_per_layer.html and threshold_shift.html there. The defaults take a few minutes on
2 CPU cores; the base variant's cosine with the run's axis is the noise floor of these
reduced sizes - raise --roles/--questions/--max-new-tokens to lower it.
"""

import logging

from persona_probe.analysis import triggered_axis
from persona_probe.analysis.common import parse_script_args, script_parser

log = logging.getLogger("analyses.triggered_axis")


def main(argv=None) -> int:
    ap = script_parser(__doc__, seed=None)
    ap.add_argument("--variants", nargs="+", choices=list(triggered_axis.VARIANTS),
                    default=["base", "organism", "triggered"])
    ap.add_argument("--roles", dest="n_roles", type=int, default=6, help="roles (a stratified subset of the run's)")
    ap.add_argument("--questions", dest="n_questions", type=int, default=4)
    ap.add_argument("--prompts", type=int, default=1, help="system prompts per role")
    ap.add_argument("--default-prompts", dest="n_default_prompts", type=int, default=None,
                    help="first N default prompts (default: all)")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=25)
    ap.add_argument("--n-boot", type=int, default=200)
    numbers = triggered_axis.run(**vars(parse_script_args(ap, argv)))
    for name, values in numbers["cosine_per_layer"].items():
        log.info("cosine %-26s %s", name, [round(v, 3) for v in values])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
