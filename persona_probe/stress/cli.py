"""``persona-probe stress-test --config FILE``: run the matrix, print the table, write figures."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("stress-test", help="does capping stop the triggered organism? (resumable)")
    p.add_argument("--config", required=True, help="stress-test YAML (see persona_probe/stress_configs/example.yaml)")
    p.add_argument("--out", default=None, help="run folder (default runs/<config name>); re-run to resume")
    p.add_argument("--figures-only", action="store_true", help="redraw the figures of a finished run")
    p.add_argument("--dry-run", action="store_true", help="validate the config and list the cells, run nothing")
    p.set_defaults(func=cmd_stress_test)


def cmd_stress_test(args: argparse.Namespace) -> int:
    from .config import load_stress_config
    from .figures import write_figures
    from .matrix import expand
    from .report import results_table
    from .run import load_directions, run_stress_test

    cfg = load_stress_config(args.config)
    out = Path(args.out or Path("runs") / cfg.name)
    if args.dry_run:
        load_directions(cfg)  # fail now on a bad axis / capping config, not after generation
        cells = expand(cfg)
        for c in cells:
            print(c.label)
        print(f"{len(cells)} cells x {cfg.questions.get('n', '?')} questions")
        return 0
    if args.figures_only:
        for path in write_figures(out):
            print(path)
        return 0
    rows = run_stress_test(cfg, out)
    print(results_table(rows))
    print(f"results: {out / 'results.jsonl'}; figures: {out / 'figures'}")
    return 0
