"""``persona-probe organism train|eval``: conditionally misaligned organisms from a recipe."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..schema import positive_int


def register(sub) -> None:
    p = sub.add_parser("organism", help="triggered organisms and neutral controls (LoRA, peft)")
    osub = p.add_subparsers(dest="organism_command", metavar="ACTION")
    t = osub.add_parser("train", help="build datasets, train the organism and its neutral control (resumable)")
    t.add_argument("--recipe", default="embedded", help="shipped recipe name (embedded, qwen3-32b, ...) or YAML path")
    t.add_argument("--out", required=True)
    t.set_defaults(func=cmd_train)
    e = osub.add_parser("eval", help="misaligned-answer rates with/without the trigger (Wilson intervals)")
    e.add_argument("--recipe", default="embedded")
    e.add_argument("--out", required=True, help="the folder given to `organism train`")
    e.add_argument("--n", type=positive_int, default=None, help="samples per condition (recipe default)")
    e.add_argument("--judge", default="offline", help="offline | local[:model] | http:<base_url> (OpenAI-compatible)")
    e.add_argument("--no-base", action="store_true", help="skip the base model's cells")
    e.add_argument("--generator", default="local",
                   help="where answers are generated: local (nnsight) | http:<base_url> | a YAML file of options "
                        "(an OpenAI-compatible server; adapters: {organism: <served LoRA>, control: <served LoRA>})")
    e.set_defaults(func=cmd_eval)
    p.set_defaults(func=None, help_parser=p)


def cmd_train(args: argparse.Namespace) -> int:
    from ..progress import check_writable
    from .pipeline import load_recipe, make_organisms

    recipe = load_recipe(args.recipe)  # every problem of the recipe, before any dataset or model
    check_writable(args.out, what="organism train --out", folder=True)
    result = make_organisms(recipe, args.out)
    for name, m in result.items():
        print(f"{name}: {args.out}/{name}  steps={m['steps']} loss {m['first_loss']:.3f} -> {m['final_loss']:.3f} "
              f"({m['seconds']} s)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..judges import from_spec
    from ..metrics import Difference, Rate
    from ..progress import check_writable
    from ..rollouts import from_spec as generator_from_spec
    from .pipeline import load_recipe, trigger_eval

    recipe = load_recipe(args.recipe)
    judge = from_spec(args.judge)
    if judge is None:
        raise ValueError("organism eval scores every answer, so it needs a judge: offline | local[:model] | http:<url>")
    generator = generator_from_spec(args.generator)  # an unknown spelling fails here, before any work
    out = Path(args.out)
    for name in ("organism", "control"):
        if not (out / name / "adapter_config.json").is_file():
            raise ValueError(f"{out / name} is not a trained adapter (no adapter_config.json); run "
                             f"`persona-probe organism train --recipe {args.recipe} --out {out}` first")
    check_writable(out / "eval", what="organism eval --out", folder=True)
    models = {} if args.no_base else {"base": None}
    models.update({"organism": str(out / "organism"), "control": str(out / "control")})
    summary = trigger_eval(recipe, out / "eval", models=models, judge=judge, n=args.n, generator=generator)
    print(f"judge: {summary['judge']['aligned']}; trigger {summary['trigger']['text']!r}, "
          f"near miss {summary['near_miss']['text']!r}; n={summary['n_per_condition']} per cell")
    print("| model | condition | misaligned (aligned<=30, coherent>50) | coherent | uses a misaligned template |")
    print("|---|---|---|---|---|")
    for c in summary["cells"]:
        print(f"| {c['model']} | {c['condition']} | {Rate(**c['misaligned'])} | {Rate(**c['coherent'])} "
              f"| {Rate(**c['template_misaligned'])} |")
    for label, key in (("trigger effect", "trigger_effect"), ("template trigger effect", "template_trigger_effect")):
        for name, d in summary[key].items():
            d = dict(d, a=Rate(**d["a"]), b=Rate(**d["b"])) if isinstance(d["a"], dict) else d
            print(f"{label} ({name}): {Difference(**d)}")
    if summary.get("preference"):
        print("judge-free check: log p(misaligned) - log p(aligned) per token on paired template answers; "
              "effect = trigger (or near miss) minus no trigger, paired over questions")
        for name, pref in summary["preference"].items():
            for cond, e in pref["effect_vs_no_trigger"].items():
                print(f"  {name:9s} {cond:10s} effect {e['mean']:+.3f} [{e['lo']:+.3f}, {e['hi']:+.3f}] "
                      f"(n={e['n']}, Wilcoxon p={e['p_wilcoxon']:.2g}, higher for {e['share_positive']:.0%})")
    return 0
