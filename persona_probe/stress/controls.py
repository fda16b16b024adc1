"""Matched controls: random directions, subspaces and detectors that act as often as the real ones.

A control that cannot fail is not a control, and a
control that acts less often than the real intervention is a weak one, so each
control is matched on *how often it binds*, and differs only in *where* it pushes:

- a single-direction cap: the control direction's threshold binds on the same
  fraction of the calibration rollouts (:func:`matched_threshold`);
- a subspace cap: a random k-dimensional subspace at the same layers; floors
  matched coordinate by coordinate, a ball matched on the fraction of rollouts
  outside it (:func:`matched_subspace_cap`);
- a detector: a control direction at the same layer whose threshold fires on
  exactly as many of the cell's prompts as the real detector does
  (:func:`matched_rate_threshold`). This control is not a defence anyone could
  deploy - it is matched on the evaluated prompts themselves - it is the null:
  the same number of capped sequences, chosen without regard to the trigger.
"""

from __future__ import annotations

import torch

from ..edits import coords
from ..interventions import SubspaceCap, orthonormal_basis
from ..vectors import orthogonal_like, random_like, unit

__all__ = ["control_vector", "matched_threshold", "random_subspace", "matched_subspace_cap",
           "matched_rate_threshold"]


def control_vector(v: torch.Tensor, control: str, seed: int) -> torch.Tensor:
    """A random (``random``) or random orthogonal (``orthogonal``) direction with ``v``'s norm(s)."""
    return random_like(v, seed=seed) if control == "random" else orthogonal_like(v, seed=seed)


def matched_threshold(calibration: torch.Tensor, layer: int, real: torch.Tensor, tau: float,
                      control: torch.Tensor) -> float:
    """The control's threshold that binds on the same fraction of calibration rollouts as ``tau`` on ``real``."""
    acts = calibration[:, layer].to(torch.float32)
    frac = float((acts @ unit(real) <= tau).float().mean())
    return float(torch.quantile(acts @ unit(control), frac))


def random_subspace(basis: torch.Tensor, control: str, seed: int) -> torch.Tensor:
    """An orthonormal ``[k, d]`` random basis; ``orthogonal``: also orthogonal to every row of ``basis``."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(basis.shape, generator=g, dtype=torch.float32)
    if control == "orthogonal":
        q = orthonormal_basis(basis)
        r = r - (r @ q.T) @ q
    return orthonormal_basis(r, name="random control subspace")


def matched_subspace_cap(acts: torch.Tensor, real: SubspaceCap, control_basis: torch.Tensor) -> SubspaceCap:
    """A cap on ``control_basis`` at ``real``'s one layer that binds as often on ``acts`` ``[n, d]`` (calibration)."""
    (layer,) = real.layers
    acts = acts.to(torch.float32)
    z_real, z_ctrl = coords(acts, real.basis_at(layer)), coords(acts, orthonormal_basis(control_basis))
    if real.tau is not None:
        frac = (z_real <= real.tau[0]).float().mean(0)  # per coordinate, as the single-direction caps
        tau = torch.stack([torch.quantile(z_ctrl[:, i], float(f)) for i, f in enumerate(frac)])
        return SubspaceCap(control_basis, [layer], tau=tau)
    frac = float(((z_real - real.centre[0]).norm(dim=-1) >= real.radius[0]).float().mean())
    centre = z_ctrl.mean(0)
    dist = (z_ctrl - centre).norm(dim=-1)
    radius = float(torch.quantile(dist, 1.0 - frac))
    return SubspaceCap(control_basis, [layer], radius=max(radius, 1e-6 * float(dist.max())), centre=centre)


def matched_rate_threshold(scores: torch.Tensor, n_fire: int, fires_when: str) -> float:
    """A threshold that fires on exactly ``n_fire`` of ``scores`` (midway between neighbours, so rounding
    of the same scores in another batch rarely flips one)."""
    s = torch.sort(torch.as_tensor(scores, dtype=torch.float32).flatten(), descending=fires_when == "above").values
    n = s.numel()
    if not 0 <= n_fire <= n:
        raise ValueError(f"cannot fire on {n_fire} of {n} prompts")
    spread = float(s.max() - s.min()) or 1.0
    step = spread if fires_when == "below" else -spread
    if n_fire == 0:
        return float(s[0]) - step
    if n_fire == n:
        return float(s[-1]) + step
    return float((s[n_fire - 1] + s[n_fire]) / 2)
