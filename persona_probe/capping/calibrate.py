"""Capping thresholds from rollouts: percentiles of their axis projections, per layer window.

``tau[l, q]`` is the ``q``-quantile of the rollouts' projections on the unit
axis at layer ``l``. What we mean by capping is a *floor* at ``tau``; the file
stores it in the published ceiling form (vector ``-axis[l]``, cap ``-tau``), as
:mod:`persona_probe.capping.config` explains.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .config import experiment_id

__all__ = ["DEFAULT_PERCENTILES", "windows", "calibrate"]

DEFAULT_PERCENTILES = (0.01, 0.25, 0.5, 0.75)


def windows(layers: Sequence[int] | int, width: int = 4, stride: int = 2) -> list[tuple[int, int]]:
    """Windows ``(start, end)`` (end exclusive) of ``width`` contiguous layers stepping by ``stride``.

    ``layers`` is a layer count or a contiguous run of layer indices to slide over.
    """
    if isinstance(layers, int):
        layers = range(layers)
    layers = sorted(int(x) for x in layers)
    if width < 1 or stride < 1:
        raise ValueError(f"width and stride must be >= 1, got width={width}, stride={stride}")
    if not layers or layers != list(range(layers[0], layers[-1] + 1)):
        raise ValueError(f"layers must be a non-empty contiguous range, got {layers}")
    if width > len(layers):
        raise ValueError(f"window width {width} exceeds the {len(layers)} layers available")
    lo, hi = layers[0], layers[-1] + 1
    return [(s, s + width) for s in range(lo, hi - width + 1, stride)]


def calibrate(projections: torch.Tensor, axis: torch.Tensor, *, layers: Sequence[int] | None = None,
              percentiles: Sequence[float] = DEFAULT_PERCENTILES, width: int = 4, stride: int = 2,
              rollouts: str = "unspecified", extra: dict | None = None) -> dict:
    """A capping config from axis projections ``[n, L]`` of rollouts (unit-axis projections).

    ``tau[l, q] = quantile(projections[:, l], q)`` (torch.quantile, linear
    interpolation). Stored in the published ceiling form: vector ``-axis[l]``,
    cap ``-tau`` - a floor at ``tau`` on the axis. ``rollouts`` says which
    rollouts were projected and is recorded in the file.
    """
    projections = projections.to(torch.float32)
    axis = axis.to(torch.float32)
    if projections.ndim != 2 or projections.shape[0] < 1:
        raise ValueError(f"projections must be [n_rollouts, n_layers] with n >= 1; got {tuple(projections.shape)}")
    if axis.ndim != 2 or axis.shape[0] != projections.shape[1]:
        raise ValueError(f"axis shape {tuple(axis.shape)} does not match projections over "
                         f"{projections.shape[1]} layers")
    qs = [float(q) for q in percentiles]
    if not qs or not all(0.0 <= q <= 1.0 for q in qs):
        raise ValueError(f"percentiles must be fractions in [0, 1] (0.25, not 25); got {list(percentiles)}")
    wins = windows(projections.shape[1] if layers is None else layers, width, stride)
    used = sorted({layer for s, e in wins for layer in range(s, e)})
    if used[-1] >= projections.shape[1]:
        raise ValueError(f"layer {used[-1]} is beyond the {projections.shape[1]} layers of the projections")
    taus = torch.quantile(projections, torch.tensor(qs), dim=0)  # [n_q, L]
    vectors = {f"axis_layer_{layer}": {"layer": layer, "vector": (-axis[layer]).contiguous()} for layer in used}
    experiments = []
    for s, e in wins:
        for qi, q in enumerate(qs):
            experiments.append({"id": experiment_id(s, e, q), "interventions": [
                {"vector": f"axis_layer_{layer}", "cap": -float(taus[qi, layer])} for layer in range(s, e)]})
    calibration = {"rollouts": rollouts, "n_rollouts": int(projections.shape[0]), "percentiles": qs,
                   "width": width, "stride": stride, "quantile": "torch.quantile linear",
                   "meaning": "floor on the axis at tau, stored as ceiling at -tau on -axis", **(extra or {})}
    return {"vectors": vectors, "experiments": experiments, "convention": "ceiling",
            "source": "persona-probe", "calibration": calibration}
