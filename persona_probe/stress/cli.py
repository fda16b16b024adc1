"""``persona-probe stress run --config FILE``: run the matrix, print the table, write figures.

``persona-probe stress-test`` is the old spelling; it still works for one release and says so.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

EXAMPLE = "persona_probe/stress_configs/example.yaml"


def register(sub) -> None:
    p = sub.add_parser("stress", help="does capping stop the triggered organism? (resumable)")
    ssub = p.add_subparsers(dest="stress_command", metavar="ACTION")
    _run_options(ssub.add_parser("run", help="generate, judge and tabulate every cell (re-run to resume)",
                                 description=f"Run a stress test. An annotated config: {EXAMPLE}."))
    p.set_defaults(func=None, help_parser=p)
    old = sub.add_parser("stress-test", description="Deprecated: use `persona-probe stress run`.")
    _run_options(old)
    old.set_defaults(func=cmd_stress_test_deprecated)


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help=f"stress-test YAML (annotated example: {EXAMPLE})")
    p.add_argument("--out", default=None, help="run folder (default runs/<config name>); re-run to resume")
    p.add_argument("--figures-only", action="store_true", help="redraw the figures of a finished run")
    p.add_argument("--dry-run", action="store_true", help="validate the config and list the cells, run nothing")
    p.set_defaults(func=cmd_stress_run)


def cmd_stress_test_deprecated(args: argparse.Namespace) -> int:
    log.warning("`persona-probe stress-test` is deprecated and will be removed in the next release; "
                "use `persona-probe stress run` (same options)")
    return cmd_stress_run(args)


def cmd_stress_run(args: argparse.Namespace) -> int:
    from .cells import cell_questions
    from .check import check_stress_config
    from .config import load_stress_config
    from .figures import write_figures
    from .matrix import expand
    from .report import results_table
    from .run import run_stress_test

    cfg = load_stress_config(args.config)
    out = Path(args.out or Path("runs") / cfg.name)
    if args.dry_run:  # the validation `stress run` does before any model loads: schema, files, layers, server
        check_stress_config(cfg)
        if cfg.generator is not None:
            from ..rollouts import from_spec

            served = from_spec(cfg.generator).preflight(cfg.base, cfg.models)
            print(f"generator: {cfg.generator['url']} serves {served!r} and every adapter's LoRA")
        cells, n = expand(cfg), cfg.questions.get("n", 50)
        sizes = [len(cell_questions(cfg, list(range(n)), c.model, c.condition)) for c in cells]
        for c, size in zip(cells, sizes):
            print(f"{c.label}  (n={size})")
        print(f"{len(cells)} cells, {sum(sizes)} answers; config OK")
        return 0
    from ..report import write_stress_page

    if args.figures_only:
        for path in write_figures(out):
            print(path)
        print(write_stress_page(out))
        return 0
    rows = run_stress_test(cfg, out)
    print(results_table(rows))
    print()
    print((out / "headline.md").read_text())
    print(f"results: {out / 'results.jsonl'}; headline: {out / 'headline.json'}; figures: {out / 'figures'}; "
          f"page: {write_stress_page(out)}")
    return 0
