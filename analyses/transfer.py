"""Cross-model transfer: map the run's axis (or mean-diff) direction into another model with a ridge map and
test whether it still separates labelled texts there, against random and orthogonal controls (seed 004).

Model B defaults to MiniLM (a BERT-family encoder; the only second model offline). Pass a causal LM path
as --model-b on a GPU machine for a causal-to-causal transfer. Writes figures and numbers.json into
``<run>/analyses/transfer/``. Example::

    python analyses/transfer.py --run runs/demo
    python analyses/transfer.py --run runs/demo --direction mean_diff
"""

from __future__ import annotations

import logging

from persona_probe.analysis.common import parse_script_args, script_parser

log = logging.getLogger("analyses.transfer")


def build_parser():
    p = script_parser(__doc__)
    p.add_argument("--direction", default="axis", choices=["axis", "mean_diff"])
    p.add_argument("--model-a", help="run model for A (default: base for the axis, the mean-diff source otherwise)")
    p.add_argument("--model-b", default="minilm", help="'minilm' or an HF causal LM path / repo id")
    p.add_argument("--layer-a", type=int, help="A layer (default: A's target layer)")
    p.add_argument("--layer-b", type=int, help="B layer (default: best held-out ridge R2)")
    p.add_argument("--eval-fraction", type=float, default=0.5)
    p.add_argument("--n-controls", type=int, default=20)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=16)
    return p


def main(argv: list[str] | None = None) -> int:
    from persona_probe.analysis import transfer

    args = parse_script_args(build_parser(), argv)
    numbers = transfer.run(**vars(args))
    s = numbers["scores"]
    log.info("ridge A layer %d -> B layer %d: held-out R2 %.3f", numbers["layer_a"], numbers["layer_b"],
             numbers["ridge"]["r2_heldout"])
    for key in ("transferred", "a_native", "b_native"):
        log.info("%s AUROC %.3f [%.3f, %.3f]", key, s[key]["auroc"], s[key]["lo"], s[key]["hi"])
    for key, c in s["controls"].items():
        log.info("control %s: mean separation %.3f, p(control >= transferred) = %.3f", key, c["mean_separation"],
                 c["p_control_ge_transfer"])
    log.info("wrote %s/analyses/transfer/numbers.json", args.run_folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
