"""``persona-probe axis build`` and ``persona-probe capping calibrate|list``.

Role and question data come from :mod:`persona_probe.roledata`: the shipped
files, or ``--roles-file`` / ``--questions-file`` in the same format. Reduced
runs (``--roles N``, ``--questions Q``) take a seeded subset stratified by role
category, so a small run still has roles far from the Assistant.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("axis", help="build an Assistant Axis (resumable)")
    asub = p.add_subparsers(dest="axis_command", metavar="ACTION")
    b = asub.add_parser("build", help="generate -> activations -> judge -> role vectors -> axis -> PCA")
    b.add_argument("--model", default="embedded")
    b.add_argument("--out", required=True, help="run folder (re-run the same command to resume)")
    b.add_argument("--roles", type=int, default=None, help="use N roles (seeded, stratified by category)")
    b.add_argument("--prompts", type=int, default=None, help="use the first K system prompts of each role")
    b.add_argument("--questions", type=int, default=None, help="use Q questions (seeded subset)")
    b.add_argument("--samples", type=int, default=1)
    b.add_argument("--judge", default="none", help="none (every response counts) | offline | http:<base_url>")
    b.add_argument("--min-count", type=int, default=1,
                   help="drop roles with fewer qualifying responses (the reference: 50 of 1,200)")
    b.add_argument("--roles-file")
    b.add_argument("--questions-file")
    b.add_argument("--max-new-tokens", type=int, default=64)
    b.add_argument("--temperature", type=float, default=0.7)
    b.add_argument("--top-p", type=float, default=0.9)
    b.add_argument("--batch-size", type=int, default=8)
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=cmd_axis_build)
    p.set_defaults(func=lambda a: _need_action(p))

    p = sub.add_parser("capping", help="capping configs in the published capping_config.pt structure")
    csub = p.add_subparsers(dest="capping_command", metavar="ACTION")
    c = csub.add_parser("calibrate", help="thresholds from percentiles of rollouts' axis projections")
    c.add_argument("--axis", required=True, help="axis.safetensors (ours) or assistant_axis.pt")
    c.add_argument("--model", default="embedded")
    c.add_argument("--out", required=True, help="capping config .pt to write")
    c.add_argument("--rollouts", default="default",
                   help="'default': the default-prompt rollouts of the axis build beside --axis; "
                        "or a JSONL of {'messages': [..., assistant turn]} conversations")
    c.add_argument("--percentiles", type=float, nargs="+", default=[0.01, 0.25, 0.5, 0.75])
    c.add_argument("--width", type=int, default=4)
    c.add_argument("--stride", type=int, default=2)
    c.set_defaults(func=cmd_capping_calibrate)
    lst = csub.add_parser("list", help="list a config's experiments")
    lst.add_argument("config")
    lst.add_argument("--convention", choices=["ceiling", "floor"], default=None)
    lst.set_defaults(func=cmd_capping_list)
    p.set_defaults(func=lambda a: _need_action(p))


def _need_action(parser) -> int:
    parser.print_help()
    return 2


# ------------------------------------------------------------------ data
def _make_judge(spec: str):
    """A ``judge_role(role, description, question, answer)`` callable, or None for ``none``."""
    if spec == "none":
        return None
    try:
        from persona_probe.judges import make_judge
    except ImportError as exc:
        raise RuntimeError(f"--judge {spec}: the judges package is not available yet ({exc})") from None
    if spec == "offline":
        j = make_judge("offline")
    elif spec.startswith("http:"):
        j = make_judge("http", base_url=spec[len("http:"):])
    else:
        raise ValueError(f"--judge must be none, offline or http:<base_url>; got {spec!r}")

    def judge_role(role, description, question, answer):
        return j.score("role", question, answer, role=role, role_description=description).score

    judge_role.judge_id = j.judge_id("role")
    return judge_role


# -------------------------------------------------------------- commands
def cmd_axis_build(args: argparse.Namespace) -> int:
    from persona_probe import load_model
    from persona_probe.axis_pipeline import build_axis

    from persona_probe import roledata

    roles = roledata.select_roles(roledata.load_roles(args.roles_file), args.roles, seed=args.seed)
    questions = roledata.select_questions(roledata.load_questions(args.questions_file), args.questions, seed=args.seed)
    if args.prompts is not None:
        roles = [dataclasses.replace(r, prompts=tuple(r.prompts)[: args.prompts]) for r in roles]
    log.info("roles per category: %s", roledata.describe(roles))
    judge = _make_judge(args.judge)
    model = load_model(args.model)
    res = build_axis(model, args.out, roles, questions, roledata.load_default_prompts(model_name=model.name),
                     samples=args.samples,
                     judge=judge, min_count=args.min_count, seed=args.seed, temperature=args.temperature,
                     top_p=args.top_p, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    m = res.manifest
    print(f"axis: {res.axis_path}")
    print(f"roles kept: {len(m['kept_per_role'])}, dropped: {m['dropped_roles'] or 'none'}, judged: {m['judged']}")
    if res.pc1_variance is not None:
        print(f"target layer {res.target_layer}: PC1 variance {res.pc1_variance:.3f}, "
              f"|cos(PC1, axis)| {res.cos_pc1_axis:.3f}")
    print(f"wall time: {m['wall_seconds']} s")
    return 0


def cmd_capping_calibrate(args: argparse.Namespace) -> int:
    from persona_probe import load_model
    from persona_probe.axis import load_axis
    from persona_probe.capping import calibrate, save_capping_config
    from persona_probe.io import load_tensors
    from persona_probe.vectors import check_vector, project_layers

    axis = load_axis(args.axis)
    model = load_model(args.model)
    check_vector(axis, d_model=model.d_model, n_layers=model.n_layers, name=f"axis {args.axis}")
    if args.rollouts == "default":
        path = Path(args.axis).parent / "default_activations.safetensors"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no default rollouts beside the axis; pass --rollouts FILE.jsonl")
        acts = load_tensors(path)[0]["acts"]
        what = f"default-prompt rollouts of the axis build ({path})"
    else:
        from persona_probe.commands.core import _read_messages

        acts = model.response_activations(_read_messages(args.rollouts))
        what = f"rollouts from {args.rollouts}"
    if acts.shape[1:] != axis.shape:
        raise ValueError(f"rollout activations {tuple(acts.shape[1:])} do not match the axis {tuple(axis.shape)}")
    proj = project_layers(acts, axis)
    cfg = calibrate(proj, axis, percentiles=args.percentiles, width=args.width, stride=args.stride, rollouts=what,
                    extra={"axis_file": str(args.axis), "model": model.name})
    save_capping_config(args.out, cfg)
    print(f"wrote {len(cfg['experiments'])} experiments to {args.out} (ceiling form: vector -axis, cap -tau; "
          f"calibrated on {acts.shape[0]} {what})")
    return 0


def cmd_capping_list(args: argparse.Namespace) -> int:
    from persona_probe.capping import load_capping_config, parse_experiment_id

    cfg = load_capping_config(args.config, convention=args.convention)
    print(f"convention: {cfg['convention']}  source: {cfg.get('source', 'unknown')}")
    if "calibration" in cfg:
        print(f"calibration: {cfg['calibration']}")
    for exp in cfg["experiments"]:
        caps = [iv["cap"] for iv in exp["interventions"] if iv.get("cap") is not None]
        try:
            s, e, q = parse_experiment_id(exp["id"])
            desc = f"layers {s}..{e - 1}, p{q}"
        except ValueError:
            desc = "non-standard id"
        print(f"{exp['id']}\t{desc}\t{len(caps)} caps" + (f", cap range {min(caps):.3g}..{max(caps):.3g}" if caps else ""))
    return 0
