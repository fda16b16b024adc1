"""Direction vectors: validation, unit vectors, projections, random controls.

Bad vectors are the quietest way to get a wrong result, so every vector that
enters an intervention or a projection passes :func:`check_vector` first:
finite, non-zero, and as wide as the model's residual stream.
"""

from __future__ import annotations

import torch

__all__ = ["check_vector", "check_layer", "unit", "project", "project_layers", "random_like", "orthogonal_like",
           "cosine"]


def check_vector(vector, *, d_model: int | None = None, name: str = "vector",
                 n_layers: int | None = None) -> torch.Tensor:
    """Return ``vector`` as float32, or raise a ``ValueError`` that says what to fix.

    Accepts ``[d]`` or, for per-layer directions such as an axis, ``[n_layers, d]``.
    """
    if not isinstance(vector, torch.Tensor):
        try:
            vector = torch.as_tensor(vector)
        except Exception as exc:
            raise ValueError(f"{name} must be a tensor or array of numbers ({exc})") from None
    if vector.ndim not in (1, 2):
        raise ValueError(f"{name} must be [d] or [n_layers, d]; got shape {tuple(vector.shape)}")
    v = vector.detach().to(torch.float32).cpu()
    if d_model is not None and v.shape[-1] != d_model:
        raise ValueError(
            f"{name} has width {v.shape[-1]} but the model's hidden size is {d_model}; "
            "was it computed on a different model?"
        )
    if v.ndim == 2 and n_layers is not None and v.shape[0] != n_layers:
        raise ValueError(f"{name} has {v.shape[0]} layer rows but the model has {n_layers} layers")
    if not torch.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or inf; recompute it (an empty mean over zero responses gives NaN)")
    norms = v.norm(dim=-1)
    if (norms == 0).any():
        where = " in some layer row" if v.ndim == 2 else ""
        raise ValueError(f"{name} is all zeros{where}; a direction needs a non-zero vector")
    return v


def check_layer(layer: int, n_layers: int, *, what: str = "the model") -> int:
    """``layer`` as an int in ``[0, n_layers)``, or a ``ValueError`` naming the valid range."""
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise ValueError(f"layer must be an int, got {layer!r}")
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer {layer} is out of range: {what} has {n_layers} layers (valid: 0..{n_layers - 1})")
    return layer


def unit(v: torch.Tensor) -> torch.Tensor:
    v = v.to(torch.float32)
    return v / v.norm(dim=-1, keepdim=True)


def project(acts: torch.Tensor, axis: torch.Tensor, layer: int | None = None) -> torch.Tensor:
    """Projection of activations on the *unit* axis, in float32.

    With ``layer``: ``acts`` is ``[..., n_layers, d]`` (as returned by
    ``ProbeModel.response_activations``) and ``axis`` is ``[n_layers, d]`` or
    ``[d]``; both are indexed at ``layer``. Without ``layer``: ``acts`` is
    ``[..., d]`` and ``axis`` is ``[d]``.
    """
    acts = acts.to(torch.float32)
    axis = axis.to(torch.float32)
    if layer is not None:
        if axis.ndim == 2:
            check_layer(layer, axis.shape[0], what="the axis")
            axis = axis[layer]
        if acts.ndim >= 2:
            check_layer(layer, acts.shape[-2], what="the activations")
            acts = acts[..., layer, :]
    elif axis.ndim == 2:
        raise ValueError("the axis has one row per layer; pass layer= to choose one")
    if acts.shape[-1] != axis.shape[-1]:
        raise ValueError(f"activations have width {acts.shape[-1]} but the axis has {axis.shape[-1]}")
    _check_nonzero(axis, "the axis" + (f" at layer {layer}" if layer is not None else ""))
    return acts @ unit(axis)


def _check_nonzero(axis: torch.Tensor, what: str) -> None:
    norms = axis.norm(dim=-1)
    if not torch.isfinite(axis).all():
        raise ValueError(f"{what} contains NaN or inf; recompute it")
    if (norms == 0).any():
        rows = (norms == 0).nonzero().flatten().tolist() if norms.ndim else []
        where = f" (rows {rows[:8]})" if rows else ""
        raise ValueError(f"{what} is all zeros{where}, so a projection on it is undefined (it would be NaN); "
                         f"was it computed from empty or identical groups?")


def project_layers(acts: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """Projections ``[..., n_layers]`` of ``acts [..., n_layers, d]`` on each layer's unit axis row (float32)."""
    if acts.shape[-2:] != axis.shape:
        raise ValueError(f"activations {tuple(acts.shape[-2:])} per item do not match the axis {tuple(axis.shape)}")
    _check_nonzero(axis, "the axis")
    return torch.einsum("...ld,ld->...l", acts.to(torch.float32), unit(axis))


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine along the last dimension (float32)."""
    return torch.nn.functional.cosine_similarity(a.to(torch.float32), b.to(torch.float32), dim=-1)


def random_like(v: torch.Tensor, *, seed: int) -> torch.Tensor:
    """A random Gaussian direction with the same norm(s) as ``v`` (the random-direction control)."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(v.shape, generator=g, dtype=torch.float32)
    return r / r.norm(dim=-1, keepdim=True) * v.to(torch.float32).norm(dim=-1, keepdim=True)


def orthogonal_like(v: torch.Tensor, *, seed: int) -> torch.Tensor:
    """A random direction orthogonal to ``v`` (per row) with the same norm (the orthogonal control)."""
    v = v.to(torch.float32)
    r = random_like(v, seed=seed)
    u = unit(v)
    r = r - (r * u).sum(-1, keepdim=True) * u
    return r / r.norm(dim=-1, keepdim=True) * v.norm(dim=-1, keepdim=True)
