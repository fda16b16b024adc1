"""The intervention math: each edit is a *delta* added to the residual stream.

This is the one place where steering, ablation and capping are defined.
Following steering-vectors, every operator returns the change to the
activation ``h`` (shape ``[..., d]``), so each is a few lines that can be tested
alone and :func:`apply_ops` composes any mix of them:

* steer   ``delta = coef * v``
* ablate  ``delta = -u * <h, u>``                     (u = v / |v|)
* ceiling ``delta = -u * max(<h, u> - tau, 0)``       (reference implementation)
* floor   ``delta = +u * max(tau - <h, u>, 0)``

After a ceiling every position satisfies ``<h, u> <= tau``; after a floor
``<h, u> >= tau``; after an ablation ``<h, u> = 0``.

All math is done in float32 whatever the model dtype (bf16 projections lose
about three significant digits, enough to move a cap), and the result is cast
back. This module imports only torch so that it can be shipped to NDIF with
``nnsight.register`` (remote code may import only a few packages).

An *op* is a plain tuple ``(kind, vector, value)`` with ``vector`` float32 on
the layer's device: plain data serializes for remote execution, objects do not.
"""

import torch

KINDS = ("steer", "ablate", "ceiling", "floor")


def steer_delta(h, v, coef):
    return (coef * v).expand_as(h)


def ablate_delta(h, u):
    return -u * (h @ u).unsqueeze(-1)


def ceiling_delta(h, u, tau):
    return -u * torch.clamp(h @ u - tau, min=0).unsqueeze(-1)


def floor_delta(h, u, tau):
    return u * torch.clamp(tau - h @ u, min=0).unsqueeze(-1)


def op_delta(h, op):
    kind, vec, value = op
    if kind == "steer":
        return steer_delta(h, vec, value)
    if kind == "ablate":
        return ablate_delta(h, vec)
    if kind == "ceiling":
        return ceiling_delta(h, vec, value)
    if kind == "floor":
        return floor_delta(h, vec, value)
    raise ValueError(f"unknown edit kind {kind!r}; expected one of {KINDS}")


def apply_ops(h, ops):
    """Apply ``ops`` in order to ``h`` (float32 math); returns a tensor of ``h``'s dtype.

    Ops are applied sequentially, not summed from the original ``h``, so a cap
    listed after a steer bounds the steered activation.
    """
    x = h.float()
    for op in ops:
        x = x + op_delta(x, op)
    return x.to(h.dtype)


def masked_mean(h, weights):
    """Mean over positions: ``h`` ``[b, t, d]``, ``weights`` ``[b, t]`` already divided by counts."""
    return torch.einsum("btd,bt->bd", h.float(), weights)
