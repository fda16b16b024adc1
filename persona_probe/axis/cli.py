"""``persona-probe axis build``: an Assistant Axis from role-play and default rollouts (resumable).

Role and question data come from :mod:`persona_probe.axis.roledata`: the shipped
files, or ``--roles-file`` / ``--questions-file`` in the same format. Reduced
runs (``--roles N``, ``--questions Q``) take a seeded subset stratified by role
category, so a small run still has roles far from the Assistant.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from persona_probe.schema import non_negative_float, non_negative_int, positive_int, share, top_p

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("axis", help="build an Assistant Axis (resumable)")
    asub = p.add_subparsers(dest="axis_command", metavar="ACTION")
    b = asub.add_parser("build", help="generate -> activations -> judge -> role vectors -> axis -> PCA")
    b.add_argument("--model", default="embedded")
    b.add_argument("--out", required=True, help="run folder (re-run the same command to resume)")
    b.add_argument("--roles", type=positive_int, default=None, help="use N roles (seeded, stratified by category)")
    b.add_argument("--prompts", type=positive_int, default=None, help="use the first K system prompts of each role")
    b.add_argument("--questions", type=positive_int, default=None, help="use Q questions (seeded subset)")
    b.add_argument("--samples", type=positive_int, default=1)
    b.add_argument("--judge", default="none",
                   help="role-adherence judge: none (every response counts) | offline | local[:model] | "
                        "http:<base_url>")
    b.add_argument("--min-count", type=non_negative_int, default=1,
                   help="drop roles with fewer qualifying responses (the reference: 50 of 1,200)")
    b.add_argument("--roles-file")
    b.add_argument("--questions-file")
    b.add_argument("--max-new-tokens", type=positive_int, default=64)
    b.add_argument("--temperature", type=non_negative_float, default=0.7)
    b.add_argument("--top-p", type=top_p, default=0.9)
    b.add_argument("--batch-size", type=positive_int, default=8)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--max-judge-failures", type=share, default=0.0,
                   help="exit non-zero (before the role vectors) when more than this share of role judgements "
                        "failed (network, server); failed ones are retried on the next run (default 0)")
    b.add_argument("--generator", default="local",
                   help="where rollouts are generated: local (in-process, nnsight) | http:<base_url> (an "
                        "OpenAI-compatible server: vLLM, SGLang, transformers serve) | a YAML file of options")
    b.set_defaults(func=cmd_axis_build)
    p.set_defaults(func=None, help_parser=p)


def cmd_axis_build(args: argparse.Namespace) -> int:
    from persona_probe.axis import roledata
    from persona_probe.axis.pipeline import build_axis
    from persona_probe.judges import from_spec, role_judge
    from persona_probe.loading import load_model
    from persona_probe.progress import check_writable
    from persona_probe.rollouts import from_spec as generator_from_spec

    roles = roledata.select_roles(roledata.load_roles(args.roles_file), args.roles, seed=args.seed)
    questions = roledata.select_questions(roledata.load_questions(args.questions_file), args.questions, seed=args.seed)
    if args.prompts is not None:
        roles = [dataclasses.replace(r, prompts=tuple(r.prompts)[: args.prompts]) for r in roles]
    log.info("roles per category: %s", roledata.describe(roles))
    judge = from_spec(args.judge)  # unknown spellings and missing keys fail here, before the model loads
    judge = role_judge(judge) if judge is not None else None
    check_writable(args.out, what="axis build --out", folder=True)
    generator = generator_from_spec(args.generator)
    if generator is not None:  # a dead or wrong server fails before the model loads
        generator.preflight(args.model)
    model = load_model(args.model)
    res = build_axis(model, args.out, roles, questions, roledata.load_default_prompts(model_name=model.name),
                     samples=args.samples,
                     judge=judge, min_count=args.min_count, seed=args.seed, temperature=args.temperature,
                     top_p=args.top_p, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                     max_judge_failures=args.max_judge_failures, generator=generator)
    m = res.manifest
    print(f"axis: {res.axis_path}")
    print(f"roles kept: {len(m['kept_per_role'])}, dropped: {m['dropped_roles'] or 'none'}, judged: {m['judged']}")
    if res.pc1_variance is not None:
        print(f"target layer {res.target_layer}: PC1 variance {res.pc1_variance:.3f}, "
              f"|cos(PC1, axis)| {res.cos_pc1_axis:.3f}")
    print(f"wall time: {m['wall_seconds']} s")
    return 0
