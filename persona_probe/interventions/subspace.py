"""``SubspaceCap``: bound the component of the residual stream in a k-dimensional persona subspace.

Why: persona drift may be a movement across many persona directions at once,
which one axis (their average) can miss. A subspace cap holds the activation's
coordinates in a basis ``Q`` of such directions inside a region calibrated on
the untriggered model's default rollouts, and leaves the rest of ``h`` alone.

* **Basis.** The given directions are orthonormalised by Gram-Schmidt *in the
  order given* (twice, in float64, for numerical orthogonality), so the first
  basis vector is exactly ``unit(directions[0])`` and the others are what is
  left of each direction outside the span of the earlier ones. A direction
  (numerically) inside that span is an error, not a silent drop.
* **Region**, one of:

  - ``tau`` - per-direction floors ``<h, q_i> >= tau_i``. With one direction,
    this is ``Cap(v, layers, tau, mode="floor")`` bit for bit (same ``unit(v)``,
    same float32 operations; ``tests/test_subspace.py``). Orient each direction
    so that *higher is more Assistant-like* (a ceiling on ``v`` is a floor on
    ``-v`` at ``-tau``).
  - ``radius`` (with ``centre``, the default rollouts' mean coordinates) -
    ``|Q h - centre| <= radius``; an activation outside is pulled straight back
    to the sphere along its centred coordinates.

A basis is ``[k, d]`` (the same at every layer) or ``[n_layers, k, d]`` (row
``l`` at layer ``l``); thresholds are one set for all layers or one per listed
layer, like :class:`~persona_probe.interventions.Cap`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch

from ..vectors import check_vector
from .single import layer_tuple

__all__ = ["SubspaceCap", "orthonormal_basis"]


def orthonormal_basis(directions: torch.Tensor, *, name: str = "basis", tol: float = 1e-4) -> torch.Tensor:
    """Gram-Schmidt in the given order (twice, float64): ``[k, d]`` orthonormal float32 rows.

    Row 0 is exactly ``unit(directions[0])`` in float32. Raises when a direction keeps
    less than ``tol`` of its norm outside the span of the earlier ones.
    """
    v = check_vector(directions, name=name)
    if v.ndim != 2:
        raise ValueError(f"{name} must be [k, d] (k directions); got shape {tuple(v.shape)}")
    rows: list[torch.Tensor] = []
    for i, d in enumerate(v):
        if not rows:
            rows.append(d / d.norm())
            continue
        w = d.double()
        for _ in range(2):
            for q in rows:
                w = w - (w @ q.double()) * q.double()
        if float(w.norm()) <= tol * float(d.norm()):
            raise ValueError(f"{name}: direction {i} lies in the span of directions 0..{i - 1} (less than {tol:g} of "
                             f"its norm is left); drop it or use fewer directions")
        rows.append((w / w.norm()).to(torch.float32))
    return torch.stack(rows)


def _per_layer(value, n_layers_listed: int, k: int, what: str) -> tuple[torch.Tensor, ...]:
    t = torch.as_tensor(value, dtype=torch.float32)
    if t.ndim == 1 and t.shape[0] == k:
        t = t.expand(n_layers_listed, k)
    if t.shape != (n_layers_listed, k):
        raise ValueError(f"SubspaceCap {what} must be [k] = [{k}] or one row per layer [{n_layers_listed}, {k}]; "
                         f"got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"SubspaceCap {what} must be finite, got {t.tolist()}")
    return tuple(row.clone() for row in t)


@dataclasses.dataclass(frozen=True, eq=False)
class SubspaceCap:
    """Hold ``h``'s coordinates in the span of ``basis`` inside floors (``tau``) or a ball (``radius``)."""

    basis: torch.Tensor
    layers: Sequence[int]
    tau: object = None
    radius: object = None
    centre: object = None

    def __post_init__(self):
        b = torch.as_tensor(self.basis)
        if b.ndim == 1:
            b = b[None]
        if b.ndim not in (2, 3):
            raise ValueError(f"SubspaceCap basis must be [k, d] or [n_layers, k, d]; got shape {tuple(b.shape)}")
        ortho = (orthonormal_basis(b, name="SubspaceCap basis") if b.ndim == 2 else torch.stack(
            [orthonormal_basis(x, name=f"SubspaceCap basis (layer row {i})") for i, x in enumerate(b)]))
        object.__setattr__(self, "basis", ortho)
        object.__setattr__(self, "layers", layer_tuple(self.layers))
        if (self.tau is None) == (self.radius is None):
            raise ValueError("SubspaceCap needs exactly one region: tau= (per-direction floors) or radius= (a ball)")
        n, k = len(self.layers), ortho.shape[-2]
        if self.tau is not None:
            if self.centre is not None:
                raise ValueError("SubspaceCap: centre= goes with radius=; floors (tau=) are absolute coordinates")
            object.__setattr__(self, "tau", _per_layer(self.tau, n, k, "tau"))
            return
        radius = [float(self.radius)] * n if isinstance(self.radius, (int, float)) else [float(r) for r in self.radius]
        if len(radius) != n or not all(math.isfinite(r) and r > 0 for r in radius):
            raise ValueError(f"SubspaceCap radius must be one positive number or one per layer ({n}); "
                             f"got {self.radius}")
        object.__setattr__(self, "radius", tuple(radius))
        object.__setattr__(self, "centre", _per_layer(torch.zeros(k) if self.centre is None else self.centre, n, k,
                                                      "centre"))

    @property
    def k(self) -> int:
        return self.basis.shape[-2]

    @property
    def region(self) -> str:
        return "floors" if self.tau is not None else "ball"

    def basis_at(self, layer: int) -> torch.Tensor:
        return self.basis[layer] if self.basis.ndim == 3 else self.basis

    def check(self, *, n_layers: int, d_model: int) -> None:
        if self.basis.shape[-1] != d_model:
            raise ValueError(f"SubspaceCap basis has width {self.basis.shape[-1]} but the model's hidden size is "
                             f"{d_model}; was it computed on a different model?")
        if self.basis.ndim == 3 and self.basis.shape[0] != n_layers:
            raise ValueError(f"SubspaceCap basis has {self.basis.shape[0]} layer rows but the model has {n_layers}")

    def ops(self, layer: int) -> list[tuple]:
        i = self.layers.index(layer)
        if self.tau is not None:
            return [("floors", self.basis_at(layer), self.tau[i])]
        return [("ball", self.basis_at(layer), (self.centre[i], self.radius[i]))]

    def describe(self) -> dict:
        out = {"kind": f"subspace-{self.region}", "layers": list(self.layers), "k": self.k}
        if self.tau is not None:
            return {**out, "tau": [t.tolist() for t in self.tau]}
        return {**out, "radius": list(self.radius), "centre": [c.tolist() for c in self.centre]}
