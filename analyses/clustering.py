"""Implicit vs explicit misalignment clustering on a finished run (see persona_probe/analysis/clustering.py).

    .venv/bin/python analyses/clustering.py --run runs/demo [--judge]

Generates the base model's instructed answers (cached under the output folder),
then writes runs/demo/analyses/clustering/{numbers.json, umap.html, cosine_per_layer.html}.
"""

import logging

from persona_probe.analysis import clustering
from persona_probe.analysis.common import parse_script_args, script_parser

log = logging.getLogger("analyses.clustering")


def main(argv=None) -> int:
    ap = script_parser(__doc__)
    ap.add_argument("--n-questions", type=int, default=None, help="first N of the run's questions (default: all)")
    ap.add_argument("--implicit", choices=clustering.IMPLICIT, default="all",
                    help="triggered organism answers to use: all, or only those judged misaligned")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: the run's generation setting")
    ap.add_argument("--layer", type=int, default=None)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--n-perm", type=int, default=200)
    ap.add_argument("--judge", action="store_true", help="score the instructed answers with the run's judge")
    kw = vars(parse_script_args(ap, argv))
    if kw.pop("judge"):
        from persona_probe.analysis.rundir import RunFolder
        from persona_probe.judges import make_judge

        kw["judge"] = make_judge(**RunFolder(kw["run_folder"]).config.judge)
    numbers = clustering.run(**kw)
    log.info("silhouette %.3f (p=%.3f); probe AUROCs %s", numbers["silhouette"]["silhouette"],
             numbers["silhouette"]["p_perm"], {k: round(v["auroc"], 3) for k, v in numbers["probe"].items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
