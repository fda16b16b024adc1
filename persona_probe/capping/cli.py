"""``persona-probe capping calibrate|list``: capping configs in the published ``capping_config.pt`` structure."""

from __future__ import annotations

import argparse
from pathlib import Path

from persona_probe.schema import positive_int, share


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
    c.add_argument("--percentiles", type=share, nargs="+", default=[0.01, 0.25, 0.5, 0.75],
                   help="fractions in [0, 1] (0.25, not 25)")
    c.add_argument("--width", type=positive_int, default=4)
    c.add_argument("--stride", type=positive_int, default=2)
    c.add_argument("--subspace-k", type=positive_int, nargs="*", default=[],
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
    from persona_probe.loading import model_dims
    from persona_probe.progress import check_writable
    from persona_probe.spans import read_conversations
    from persona_probe.tensor_files import iter_tensor_rows

    axis = load_axis(args.axis)
    dims = model_dims(args.model)
    if dims is not None and tuple(axis.shape) != tuple(dims):
        raise ValueError(f"axis {args.axis} is {list(axis.shape)} but {args.model} has {dims[0]} layers of width "
                         f"{dims[1]}; was it built on another model?")
    out = check_writable(args.out, what="capping calibrate --out")
    if args.rollouts == "default":
        path = Path(args.axis).parent / "default_activations.safetensors"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no default rollouts beside the axis; pass --rollouts FILE.jsonl")
        blocks, name = iter_tensor_rows(path, "acts"), _model_name(args.model)  # a block of rows at a time
        what = f"default-prompt rollouts of the axis build ({path})"
    else:
        convs = read_conversations(args.rollouts)
        acts, name = _rollout_activations(args.model, convs, out)
        blocks = [acts]
        what = f"rollouts from {args.rollouts}"
    proj, acts = _project(blocks, axis, keep=bool(args.subspace_k), what=what)
    cfg = calibrate(proj, axis, percentiles=args.percentiles, width=args.width, stride=args.stride, rollouts=what,
                    extra={"axis_file": str(args.axis), "model": name})
    for k in args.subspace_k:
        cfg = _add_subspaces(cfg, args, axis, acts, k, what)
    save_capping_config(out, cfg)
    print(f"wrote {len(cfg['experiments'])} experiments to {out} (ceiling form: vector -axis, cap -tau; "
          f"calibrated on {proj.shape[0]} {what})")
    return 0


def _project(blocks, axis, *, keep: bool, what: str):
    """Axis projections of the rollouts' rows, a block at a time (at paper scale the default rows are several GB);
    the rows themselves only when ``keep`` (subspace experiments need them all)."""
    import torch

    from persona_probe.vectors import project_layers

    projected, kept = [], []
    for block in blocks:
        if block.shape[1:] != axis.shape:
            raise ValueError(f"rollout activations {tuple(block.shape[1:])} do not match the axis {tuple(axis.shape)}")
        projected.append(project_layers(block, axis))
        if keep:
            kept.append(block)
    if not sum(len(p) for p in projected):
        raise ValueError(f"no rows in the {what} (every answer was empty?); rebuild the axis with more "
                         f"max_new_tokens or pass --rollouts FILE.jsonl")
    return torch.cat(projected), (torch.cat(kept) if kept else None)


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


def _model_name(source: str) -> str:
    from persona_probe.embedded import EMBEDDED_NAME

    return EMBEDDED_NAME if source == "embedded" else source


ROLLOUT_CHUNK = 64  # rollouts per activation step file


def _rollout_activations(source: str, convs: list, out: Path):
    """Activations of the rollouts, :data:`ROLLOUT_CHUNK` per step file beside ``out`` (kept until done)."""
    import shutil

    import torch

    from persona_probe.io import cached_tensor, content_hash
    from persona_probe.loading import load_model
    from persona_probe.progress import note_progress

    model = load_model(source)
    steps = out.with_name(f".{out.name}.steps")
    parts = []
    for i in range(0, len(convs), ROLLOUT_CHUNK):
        part = convs[i:i + ROLLOUT_CHUNK]
        path = steps / f"acts-{i}-{content_hash(model.provenance(), part)}.safetensors"
        parts.append(cached_tensor(path, lambda part=part: model.response_activations(part)))
        note_progress("capping calibrate", f"activations of {i + len(part)} of {len(convs)} rollouts in {steps}")
    acts = torch.cat(parts)
    shutil.rmtree(steps, ignore_errors=True)
    return acts, model.name


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
