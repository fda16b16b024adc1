"""Subspace capping experiments in a capping config: bases, calibration, ids ``subspace_k{k}_layers_{s}:{e}-p{q}``.

Stored beside the published keys, never inside them, so that a reader that
knows only single-axis entries (the reference code, :func:`.config.list_experiments`)
cannot misread a subspace experiment as a cap - or, worse, as an experiment
whose entries have no ``cap`` and are silently skipped::

    cfg["subspaces"] = {"subspace_k4_layer_12": {"layer": 12, "basis": Tensor[k, d] (orthonormal rows),
                                                 "directions": "pca" | "personas" | "given", "names": [str]}}
    cfg["subspace_experiments"] = [{"id": "subspace_k4_layers_12:16-p0.25", "region": "floors" | "ball",
                                    "interventions": [{"subspace": name, "tau": Tensor[k]}            # floors
                                                      | {"subspace": name, "centre": Tensor[k], "radius": float}]}]

Everything is plain tensors, strings and numbers: the file still loads with
``torch.load(weights_only=True)``. The regions are explicit (no sign
convention to guess): ``floors`` holds ``<h, q_i> >= tau_i`` with every basis
vector oriented toward the Assistant; ``ball`` holds ``|Q h - centre| <= radius``.

Calibration (on the untriggered model's default rollouts, like the single-axis caps):

* ``floors``: ``tau_i`` = the ``q`` quantile of coordinate ``i`` - each floor
  binds on a fraction ``q`` of the rollouts, as the single-axis floor at ``p{q}``;
  with the axis as the only direction it is that floor.
* ``ball``: ``centre`` = the rollouts' mean coordinates and ``radius`` = the
  ``1 - q`` quantile of their distance from it - the ball binds on a fraction ``q``.
"""

from __future__ import annotations

import difflib
import re
from typing import Mapping, Sequence

import torch

from ..edits import coords
from ..interventions import SubspaceCap, orthonormal_basis
from .calibrate import windows

__all__ = ["REGIONS", "DIRECTIONS", "subspace_experiment_id", "parse_subspace_id", "pca_directions",
           "persona_directions", "subspace_bases", "calibrate_subspaces", "add_subspace_experiments",
           "validate_subspaces", "list_subspace_experiments", "subspace_experiment_interventions"]

REGIONS = ("floors", "ball")
DIRECTIONS = ("pca", "personas")
_ID_RE = re.compile(r"^subspace_k(\d+)_layers_(\d+):(\d+)-p(\d*\.?\d+)$")


def subspace_experiment_id(k: int, start: int, end: int, q: float) -> str:
    return f"subspace_k{k}_layers_{start}:{end}-p{format(float(q), 'g')}"


def parse_subspace_id(exp_id: str) -> tuple[int, int, int, float]:
    """``"subspace_k4_layers_12:16-p0.25" -> (4, 12, 16, 0.25)`` (end exclusive); ``ValueError`` when malformed."""
    m = _ID_RE.match(exp_id.strip()) if isinstance(exp_id, str) else None
    if not m:
        raise ValueError(f"malformed subspace experiment id {exp_id!r}; expected "
                         f"'subspace_k<k>_layers_<start>:<end>-p<q>', e.g. 'subspace_k4_layers_12:16-p0.25'")
    k, start, end, q = int(m.group(1)), int(m.group(2)), int(m.group(3)), float(m.group(4))
    if k < 1 or end <= start or not 0.0 <= q <= 1.0:
        raise ValueError(f"subspace experiment id {exp_id!r}: need k >= 1, end > start (end exclusive), q in [0, 1]")
    return k, start, end, q


def pca_directions(role_vectors: Mapping[str, torch.Tensor], axis: torch.Tensor, layer: int, k: int) -> torch.Tensor:
    """The top-``k`` principal components of the role vectors at ``layer``, each oriented toward the axis.

    ``[k, d]``; a component's sign is arbitrary, so each is flipped to have
    ``cos(component, axis) >= 0`` (higher = more Assistant-like, as floors need).
    """
    from ..axis.persona_space import role_pca

    if k > len(role_vectors):
        raise ValueError(f"k={k} principal components need at least {k} role vectors; the axis run has "
                         f"{len(role_vectors)} (rebuild it with more roles, or lower k)")
    comps = torch.as_tensor(role_pca(role_vectors, layer, axis, n_components=k).components, dtype=torch.float32)
    signs = torch.where(comps @ axis[layer].float() < 0, -1.0, 1.0)
    return comps * signs[:, None]


def persona_directions(role_vectors: Mapping[str, torch.Tensor], default: torch.Tensor, layer: int,
                       k: int) -> tuple[torch.Tensor, list[str]]:
    """``default - role`` at ``layer`` for the ``k`` roles farthest from the default there (toward the Assistant)."""
    if k > len(role_vectors):
        raise ValueError(f"k={k} persona directions need {k} role vectors; the axis run has {len(role_vectors)}")
    dirs = {name: default[layer].float() - v[layer].float() for name, v in role_vectors.items()}
    names = sorted(dirs, key=lambda n: (-float(dirs[n].norm()), n))[:k]
    return torch.stack([dirs[n] for n in names]), names


def subspace_bases(role_vectors: Mapping[str, torch.Tensor], axis: torch.Tensor, default: torch.Tensor,
                   layers: Sequence[int], k: int, directions: str = "pca") -> tuple[dict, dict]:
    """``({layer: [k, d]}, {layer: names})``: PCA components (``pca``) or persona directions (``personas``)."""
    if directions not in DIRECTIONS:
        raise ValueError(f"directions must be one of {DIRECTIONS}, got {directions!r}")
    bases, names = {}, {}
    for layer in layers:
        if directions == "pca":
            bases[layer], names[layer] = pca_directions(role_vectors, axis, layer, k), [f"PC{i + 1}" for i in range(k)]
        else:
            bases[layer], names[layer] = persona_directions(role_vectors, default, layer, k)
    return bases, names


def _region_values(z: torch.Tensor, region: str, q: float) -> dict:
    if region == "floors":
        return {"tau": torch.quantile(z, q, dim=0).contiguous()}
    centre = z.mean(0)
    radius = float(torch.quantile((z - centre).norm(dim=-1), 1.0 - q))
    if radius <= 0:
        raise ValueError(f"ball radius at p{q} is {radius}: the rollouts do not spread in the subspace; lower q")
    return {"centre": centre.contiguous(), "radius": radius}


def calibrate_subspaces(acts: torch.Tensor, bases: Mapping[int, torch.Tensor], *, percentiles: Sequence[float],
                        width: int = 4, stride: int = 2, layers: Sequence[int] | None = None, region: str = "floors",
                        directions: str = "given", names: Mapping[int, Sequence[str]] | None = None,
                        rollouts: str = "unspecified") -> dict:
    """Subspace experiments from rollouts' activations ``[n, L, d]`` and a ``[k, d]`` basis per layer.

    Windows and percentiles as :func:`.calibrate.calibrate`; every window's layers
    need a basis. Returns ``{"subspaces", "subspace_experiments", "subspace_calibration"}``
    for :func:`add_subspace_experiments`.
    """
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    qs = [float(q) for q in percentiles]
    if not qs or not all(0.0 < q < 1.0 for q in qs):
        raise ValueError(f"percentiles must be fractions in (0, 1) (0.25, not 25); got {list(percentiles)}")
    wins = windows(acts.shape[1] if layers is None else layers, width, stride)
    used = sorted({layer for s, e in wins for layer in range(s, e)})
    missing = [layer for layer in used if layer not in bases]
    if missing:
        raise ValueError(f"no basis for layers {missing}; give one [k, d] basis per layer of the windows {wins}")
    ortho = {layer: orthonormal_basis(bases[layer], name=f"basis at layer {layer}") for layer in used}
    ks = {b.shape[0] for b in ortho.values()}
    if len(ks) != 1:
        raise ValueError(f"every layer's basis needs the same k; got k in {sorted(ks)}")
    (k,) = ks
    subspaces = {f"subspace_k{k}_layer_{layer}": {"layer": layer, "basis": ortho[layer].contiguous(),
                                                  "directions": directions,
                                                  "names": list((names or {}).get(layer, []))} for layer in used}
    z = {layer: coords(acts[:, layer].float(), ortho[layer]) for layer in used}
    experiments = [{"id": subspace_experiment_id(k, s, e, q), "region": region, "interventions": [
        {"subspace": f"subspace_k{k}_layer_{layer}", **_region_values(z[layer], region, q)} for layer in range(s, e)]}
        for s, e in wins for q in qs]
    calibration = {"rollouts": rollouts, "n_rollouts": int(acts.shape[0]), "percentiles": qs, "k": k,
                   "region": region, "directions": directions, "width": width, "stride": stride,
                   "basis": "Gram-Schmidt of the directions in the order given",
                   "meaning": ("floor on each coordinate at its q quantile" if region == "floors" else
                               "ball around the mean coordinates, radius the 1-q quantile of the distance")}
    return {"subspaces": subspaces, "subspace_experiments": experiments, "subspace_calibration": {str(k): calibration}}


def add_subspace_experiments(cfg: dict, sub: Mapping) -> dict:
    """``cfg`` (a capping config) with the subspaces and experiments of ``sub`` added; ids must be new."""
    have = {exp["id"] for exp in cfg.get("subspace_experiments", [])}
    clash = sorted(have & {exp["id"] for exp in sub["subspace_experiments"]})
    if clash:
        raise ValueError(f"subspace experiments {clash} are already in the config; one region per k per file")
    out = {**cfg, "subspaces": {**cfg.get("subspaces", {}), **sub["subspaces"]},
           "subspace_experiments": [*cfg.get("subspace_experiments", []), *sub["subspace_experiments"]],
           "subspace_calibration": {**cfg.get("subspace_calibration", {}), **sub["subspace_calibration"]}}
    return validate_subspaces(out)


def _check_entry(where: str, exp_id: str, iv: Mapping, region: str, k: int) -> None:
    if region == "floors":
        tau = iv.get("tau")
        if not isinstance(tau, torch.Tensor) or tuple(tau.shape) != (k,) or not torch.isfinite(tau).all():
            raise ValueError(f"{where}: {exp_id!r} needs a finite 'tau' tensor of shape [{k}] per subspace")
        return
    centre, radius = iv.get("centre"), iv.get("radius")
    if not isinstance(centre, torch.Tensor) or tuple(centre.shape) != (k,):
        raise ValueError(f"{where}: {exp_id!r} needs a 'centre' tensor of shape [{k}] per subspace")
    if not isinstance(radius, (int, float)) or not float(radius) > 0:
        raise ValueError(f"{where}: {exp_id!r} needs a positive 'radius', got {radius!r}")


def validate_subspaces(cfg: dict, *, where: str = "capping config") -> dict:
    """Check the subspace keys (absent is fine); raise ``ValueError`` naming the first problem."""
    subspaces = cfg.get("subspaces", {})
    for name, entry in subspaces.items():
        basis = entry.get("basis") if isinstance(entry, dict) else None
        if not isinstance(basis, torch.Tensor) or basis.ndim != 2 or not isinstance(entry.get("layer"), int):
            raise ValueError(f"{where}: subspace {name!r} needs 'layer' (int) and 'basis' (a [k, d] tensor)")
    seen = set()
    for exp in cfg.get("subspace_experiments", []):
        exp_id = exp.get("id") if isinstance(exp, dict) else None
        k = parse_subspace_id(exp_id)[0]
        if exp_id in seen:
            raise ValueError(f"{where}: subspace experiment id {exp_id!r} appears twice")
        seen.add(exp_id)
        if exp.get("region") not in REGIONS:
            raise ValueError(f"{where}: {exp_id!r} has region {exp.get('region')!r}; expected one of {REGIONS}")
        for iv in exp.get("interventions", []):
            if iv.get("subspace") not in subspaces:
                raise ValueError(f"{where}: {exp_id!r} names subspace {iv.get('subspace')!r}, which is not in "
                                 f"'subspaces'")
            if subspaces[iv["subspace"]]["basis"].shape[0] != k:
                raise ValueError(f"{where}: {exp_id!r} says k={k} but subspace {iv['subspace']!r} has "
                                 f"{subspaces[iv['subspace']]['basis'].shape[0]} directions")
            _check_entry(where, exp_id, iv, exp["region"], k)
    return cfg


def list_subspace_experiments(cfg: dict) -> list[str]:
    return [exp["id"] for exp in cfg.get("subspace_experiments", [])]


def subspace_experiment_interventions(cfg: dict, experiment_id: str, model=None) -> list[SubspaceCap]:
    """One ``SubspaceCap`` per layer of the experiment; unknown ids raise naming the closest ones."""
    by_id = {exp["id"]: exp for exp in cfg.get("subspace_experiments", [])}
    if experiment_id not in by_id:
        close = difflib.get_close_matches(experiment_id, list(by_id), n=5, cutoff=0.5)
        hint = (f"; close matches: {close}" if close else
                f"; the config has {len(by_id)} subspace experiments" + (f", e.g. {list(by_id)[:5]}" if by_id else
                                                                         " (calibrate with --subspace-k)"))
        raise ValueError(f"unknown subspace experiment id {experiment_id!r}{hint}")
    exp = by_id[experiment_id]
    caps = []
    for iv in exp["interventions"]:
        entry = cfg["subspaces"][iv["subspace"]]
        layer, basis = int(entry["layer"]), entry["basis"]
        if model is not None and (basis.shape[-1] != model.d_model or layer >= model.n_layers):
            raise ValueError(f"subspace experiment {experiment_id!r}: subspace {iv['subspace']!r} (layer {layer}, "
                             f"width {basis.shape[-1]}) does not fit the model ({model.n_layers} layers, "
                             f"hidden size {model.d_model}); is the config for another model?")
        if exp["region"] == "floors":
            caps.append(SubspaceCap(basis, [layer], tau=iv["tau"]))
        else:
            caps.append(SubspaceCap(basis, [layer], radius=float(iv["radius"]), centre=iv["centre"]))
    return caps
