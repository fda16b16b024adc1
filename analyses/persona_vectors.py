"""Persona (trait) vectors: monitor the organism with a trait vector, and retrain it with preventative steering.

Reads a finished run folder (``persona-probe demo`` layout) and writes figures and numbers.json into
``<run>/analyses/persona_vectors/``. Everything resumes from its files. Example::

    python analyses/persona_vectors.py --run runs/demo
    python analyses/persona_vectors.py --run runs/demo --max-steps 60 --eval-n 20   # faster, recorded in numbers.json
"""

from __future__ import annotations

import json
import logging

from persona_probe.analysis.common import parse_script_args, script_parser

log = logging.getLogger("analyses.persona_vectors")


def build_parser():
    p = script_parser(__doc__)
    p.add_argument("--trait", default="evil", help="trait name (shipped pairs: evil)")
    p.add_argument("--pairs", help="JSON file: list of [trait system prompt, anti-trait system prompt]")
    p.add_argument("--questions", default="generic", choices=["generic", "run"],
                   help="extraction questions: shipped generic ones or the stress test's")
    p.add_argument("--n-questions", type=int, default=6)
    p.add_argument("--layer", type=int, help="layer (default: the model's target layer)")
    p.add_argument("--coef", type=float, default=5.0, help="preventative steering coefficient on the raw vector")
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--max-steps", type=int, help="cap the retraining's optimiser steps (default: the recipe's)")
    p.add_argument("--eval-n", type=int, default=20, help="held-out questions per condition for the trigger eval")
    p.add_argument("--eval-max-new-tokens", type=int, default=48)
    p.add_argument("--no-train", dest="train", action="store_false", help="skip preventative retraining")
    p.add_argument("--n-boot", type=int, default=1000)
    return p


def main(argv: list[str] | None = None) -> int:
    from persona_probe.analysis import persona_vectors

    args = parse_script_args(build_parser(), argv)
    kw = dict(vars(args))
    if kw["pairs"]:
        with open(kw["pairs"], encoding="utf-8") as fh:
            kw["pairs"] = json.load(fh)
    numbers = persona_vectors.run(**kw)
    m = numbers["monitor"]["trait"]
    log.info("trait %r layer %d: AUROC trigger vs none %.3f [%.3f, %.3f] (n=%d+%d)", numbers["trait"],
             numbers["layer"], m["auroc"], m["lo"], m["hi"], m["n_pos"], m["n_neg"])
    for name, d in numbers.get("trigger_effect", {}).get("trigger_effect", {}).items():
        log.info("%s: trigger effect %+.3f [%+.3f, %+.3f], p=%.3g", name, d["diff"], d["lo"], d["hi"], d["p_value"])
    log.info("wrote %s/analyses/persona_vectors/numbers.json", args.run_folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
