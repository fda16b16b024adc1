"""SAE decomposition at one layer: features aligned with the Assistant Axis and the mean-diff direction.

Trains a small sae_lens SAE on the run's token activations (or loads one with --sae PATH) and writes
figures and numbers.json into ``<run>/analyses/sae/``. Resumes from its files. Example::

    python analyses/sae.py --run runs/demo
    python analyses/sae.py --run runs/my-qwen --sae saes/qwen3-32b-l32 --layer 32
"""

from __future__ import annotations

import logging

from persona_probe.analysis.common import parse_script_args, script_parser

log = logging.getLogger("analyses.sae")


def build_parser():
    p = script_parser(__doc__)
    p.add_argument("--sae", dest="sae_path", help="load this sae_lens SAE folder (cfg.json + weights) instead")
    p.add_argument("--layer", type=int, help="layer (default: the SAE's hook layer, else the model's target layer)")
    p.add_argument("--source-model", default="organism", help="run model whose activations are read")
    p.add_argument("--architecture", default="topk", choices=["topk", "standard"])
    p.add_argument("--d-sae", type=int, default=1024)
    p.add_argument("--k", type=int, default=32, help="active features per token (topk)")
    p.add_argument("--l1-coefficient", type=float, default=5.0, help="sparsity penalty (standard)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--max-tokens", type=int, default=20000)
    p.add_argument("--n-top", type=int, default=10, help="features listed per direction")
    p.add_argument("--no-axis-rollouts", dest="axis_rollouts", action="store_false")
    return p


def main(argv: list[str] | None = None) -> int:
    from persona_probe.analysis import sae

    args = parse_script_args(build_parser(), argv)
    numbers = sae.run(**vars(args))
    rec = numbers["reconstruction"]["heldout"]
    log.info("layer %d: held-out explained variance %.3f, L0 %.1f, dead %.1f%% (%d tokens)", numbers["layer"],
             rec["explained_variance"], rec["l0"], 100 * rec["dead_fraction"], rec["n_tokens"])
    for name, a in numbers["alignment"].items():
        log.info("%s: best feature %d, |cos| %.3f (isotropic p=%.3f, covariance p=%.3f)", name, a["best_feature"],
                 a["max_abs_cos"], a["baselines"]["isotropic"]["p_baseline_ge_real"],
                 a["baselines"]["covariance"]["p_baseline_ge_real"])
    log.info("wrote %s/analyses/sae/numbers.json", args.run_folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
