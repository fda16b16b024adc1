"""``persona-probe capping calibrate|list``: capping configs in the published ``capping_config.pt`` structure."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
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
    c.add_argument("--subspace-k", type=int, nargs="*", default=[],
                   help="also write subspace experiments subspace_k{k}_layers_{s}:{e}-p{q} for each k "
                        "(needs role_vectors.safetensors beside --axis)")
    c.add_argument("--subspace-directions", choices=["pca", "personas"], default="pca",
                   help="basis: top-k PCA components of the role vectors, or default - role for the k farthest roles")
    c.add_argument("--subspace-region", choices=["ball", "floors"], default="ball",
                   help="ball: distance from the rollouts' mean coordinates; floors: one floor per direction")
    c.set_defaults(func=cmd_capping_calibrate)
    lst = csub.add_parser("list", help="list a config's experiments")
    lst.add_argument("config")
    lst.add_argument("--convention", choices=["ceiling", "floor"], default=None)
    lst.set_defaults(func=cmd_capping_list)
    p.set_defaults(func=None, help_parser=p)


def cmd_capping_calibrate(args: argparse.Namespace) -> int:
    from persona_probe.axis import load_axis
    from persona_probe.capping import calibrate, save_capping_config
    from persona_probe.io import load_tensors
    from persona_probe.loading import load_model
    from persona_probe.spans import read_conversations
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
        acts = model.response_activations(read_conversations(args.rollouts))
        what = f"rollouts from {args.rollouts}"
    if acts.shape[1:] != axis.shape:
        raise ValueError(f"rollout activations {tuple(acts.shape[1:])} do not match the axis {tuple(axis.shape)}")
    proj = project_layers(acts, axis)
    cfg = calibrate(proj, axis, percentiles=args.percentiles, width=args.width, stride=args.stride, rollouts=what,
                    extra={"axis_file": str(args.axis), "model": model.name})
    for k in args.subspace_k:
        cfg = _add_subspaces(cfg, args, axis, acts, k, what)
    save_capping_config(args.out, cfg)
    print(f"wrote {len(cfg['experiments'])} experiments to {args.out} (ceiling form: vector -axis, cap -tau; "
          f"calibrated on {acts.shape[0]} {what})")
    return 0


def _add_subspaces(cfg: dict, args: argparse.Namespace, axis, acts, k: int, what: str) -> dict:
    from persona_probe.axis import load_role_vectors
    from persona_probe.capping import add_subspace_experiments, calibrate_subspaces, subspace_bases

    path = Path(args.axis).parent / "role_vectors.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path}: subspace experiments need the role vectors of the axis build beside --axis")
    layers = sorted({cfg["vectors"][iv["vector"]]["layer"] for exp in cfg["experiments"]
                     for iv in exp["interventions"]})
    bases, names = subspace_bases(load_role_vectors(path).vectors, axis, acts.mean(0), layers, k,
                                  args.subspace_directions)
    return add_subspace_experiments(cfg, calibrate_subspaces(
        acts, bases, percentiles=args.percentiles, width=args.width, stride=args.stride, region=args.subspace_region,
        directions=args.subspace_directions, names=names, rollouts=what))


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
        span = f", cap range {min(caps):.3g}..{max(caps):.3g}" if caps else ""
        print(f"{exp['id']}\t{desc}\t{len(caps)} caps{span}")
    for exp in cfg.get("subspace_experiments", []):
        print(f"{exp['id']}\t{exp['region']}\t{len(exp['interventions'])} layers")
    return 0
