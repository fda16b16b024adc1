"""The intervention math: each edit is a *delta* added to the residual stream.

This is the one place where steering, ablation and capping are defined.
Following steering-vectors, every operator returns the change to the
activation ``h`` (shape ``[..., d]``), so each is a few lines that can be tested
alone and :func:`apply_ops` composes any mix of them:

* steer   ``delta = coef * v``
* ablate  ``delta = -u * <h, u>``                     (u = v / |v|)
* ceiling ``delta = -u * max(<h, u> - tau, 0)``       (reference implementation)
* floor   ``delta = +u * max(tau - <h, u>, 0)``
* floors  ``delta = sum_i q_i * max(tau_i - <h, q_i>, 0)``      (orthonormal rows q_i of a basis Q)
* ball    ``delta = -(1 - r / |z|)_+ * z Q``,  ``z = Q h - c``   (coordinates centred at c)

After a ceiling every position satisfies ``<h, u> <= tau``; after a floor
``<h, u> >= tau``; after an ablation ``<h, u> = 0``; after ``floors`` every
coordinate ``<h, q_i> >= tau_i``; after ``ball`` ``|Q h - c| <= r`` (the part of
``h`` outside the subspace is untouched by both). ``floors`` with one row is
``floor`` bit for bit: coordinates are computed one row at a time with the
same ``h @ u`` (a single matrix product over rows would sum in another order).

Conditional edits (CAST-style gating, Lee et al. 2024, arXiv 2409.05907) are two
more kinds: ``detect`` reads a layer during the prompt pass and stores a
per-sequence gate in ``gates``; ``gated`` applies its inner ops only to rows
whose gate is set, and returns the other rows *unchanged* (``torch.where``, not
a multiplication by zero, so they are bit-identical to no intervention).

A LoRA adapter is one more delta, on a module *inside* a decoder block rather
than on the residual stream: ``out += scale * B(A(x))`` with ``x`` the module's
input (peft's ``lora_B(lora_A(x)) * scaling``). :func:`edit_block` applies one
block's edits in a fixed order: the adapter's module edits first, in the block's
forward order (attention q, k, v, o, then MLP gate, up, down), then the defence
ops on the block's output. So a cap bounds the adapted model's residual stream.

All math is done in float32 whatever the model dtype (bf16 projections lose
about three significant digits, enough to move a cap), and the result is cast
back. To reproduce outputs published with the reference implementation, an op
whose kind starts with ``model:`` (``math_dtype="model"`` on an intervention)
does the reference's arithmetic instead (:func:`model_dtype_delta`): the raw
vector is cast to the model's dtype, normalised there (``v / (|v| + 1e-8)``),
and projection, clamp and update all run in that dtype.

This module imports only torch so that it can be shipped to NDIF with
``nnsight.register`` (remote code may import only a few packages).

An *op* is a plain tuple ``(kind, vector, value)`` with ``vector`` float32 on
the layer's device, and a LoRA *module edit* a tuple ``(path, A, B, scale)``
(``path`` relative to the block, e.g. ``"mlp.down_proj"``; ``A`` ``[r, in]``,
``B`` ``[out, r]``): plain data serializes for remote execution, objects do not.
"""

import torch

KINDS = ("steer", "ablate", "ceiling", "floor", "floors", "ball", "detect", "gated")


def steer_delta(h, v, coef):
    return (coef * v).expand_as(h)


def ablate_delta(h, u):
    return -u * (h @ u).unsqueeze(-1)


def ceiling_delta(h, u, tau):
    return -u * torch.clamp(h @ u - tau, min=0).unsqueeze(-1)


def floor_delta(h, u, tau):
    return u * torch.clamp(tau - h @ u, min=0).unsqueeze(-1)


def coords(h, basis):
    """``[..., k]`` coordinates of ``h`` on the orthonormal rows of ``basis`` ``[k, d]``, one row at a time."""
    return torch.stack([h @ q for q in basis], dim=-1)


def combine(basis, dz):
    """``sum_i basis[i] * dz[..., i]``: a coordinate change ``[..., k]`` back in the residual stream."""
    out = basis[0] * dz[..., 0:1]
    for i in range(1, basis.shape[0]):
        out = out + basis[i] * dz[..., i:i + 1]
    return out


def floors_delta(h, basis, taus):
    z = coords(h, basis)
    return combine(basis, torch.clamp(z, min=taus) - z)


def ball_delta(h, basis, centre, radius):
    z = coords(h, basis) - centre
    shrink = torch.clamp(1 - radius / z.norm(dim=-1, keepdim=True), min=0)  # |z| = 0 gives -inf, clamped to 0
    return combine(basis, -shrink * z)


def prompt_scores(h, u, weights, read="mean"):
    """Per-sequence detector score on the prompt pass, ``h`` ``[b, t, d]`` (left-padded).

    ``read="mean"``: mean of ``<h, u>`` over the prompt (``weights`` ``[b, t]`` sum to 1 per row);
    ``"last"``: ``<h, u>`` at the last prompt token.
    """
    if read == "last":
        return h[:, -1] @ u
    return ((h @ u) * weights).sum(-1)


def fires(scores, threshold, side):
    """Which sequences a detector fires on: ``side`` ``"below"`` (score < threshold) or ``"above"``."""
    return scores < threshold if side == "below" else scores > threshold


def op_delta(h, op):
    kind, vec, value = op
    vec = vec.to(h.device)  # a no-op locally; on a remote GPU the shipped vector arrives on the CPU
    if kind == "steer":
        return steer_delta(h, vec, value)
    if kind == "ablate":
        return ablate_delta(h, vec)
    if kind == "ceiling":
        return ceiling_delta(h, vec, value)
    if kind == "floor":
        return floor_delta(h, vec, value)
    if kind == "floors":
        return floors_delta(h, vec, value.to(h.device))
    if kind == "ball":
        return ball_delta(h, vec, value[0].to(h.device), value[1])
    raise ValueError(f"unknown edit kind {kind!r}; expected one of {KINDS}")


def model_dtype_delta(h, op):
    """The reference implementation's arithmetic in ``h``'s own dtype; ``op`` holds the raw (not unit) vector."""
    kind, vec, value = op
    v = vec.to(h.dtype)
    if kind == "steer":
        return (value * v).expand_as(h)
    u = v / (v.norm() + 1e-8)
    proj = torch.einsum("...d,d->...", h, u)
    if kind == "ablate":
        scale = -proj
    elif kind == "ceiling":
        scale = -(proj - value).clamp(min=0.0)
    elif kind == "floor":
        scale = (value - proj).clamp(min=0.0)
    else:
        raise ValueError(f"unknown edit kind {kind!r}; expected one of {KINDS}")
    return torch.einsum("...,d->...d", scale, u)


def apply_ops(h, ops, gates=None, weights=None):
    """Apply ``ops`` in order to ``h`` (float32 math); returns a tensor of ``h``'s dtype.

    Ops are applied sequentially, not summed from the original ``h``, so a cap
    listed after a steer bounds the steered activation. ``gates`` (a dict, kept
    across generation steps) and ``weights`` (``[b, t]`` prompt-mean weights)
    are needed only by ``detect``/``gated`` ops. ``model:<kind>`` ops do their
    math in ``h``'s dtype (the reference's arithmetic).
    """
    return _apply(h.float(), ops, gates, weights, h.dtype).to(h.dtype)


def _apply(x, ops, gates, weights, dtype):
    for op in ops:
        kind, vec, value = op
        if kind == "detect":  # ("detect", u, (name, threshold, side, read)): the prompt pass sets the gate
            name, threshold, side, read = value
            if gates is None or weights is None:
                raise ValueError("a detector needs the gates dict and the prompt weights (generation only)")
            if name not in gates:
                gates[name] = fires(prompt_scores(x, vec.to(x.device), weights, read), threshold, side)
        elif kind == "gated":  # ("gated", name, inner ops): rows whose gate is off are returned unchanged
            if gates is None or vec not in gates:
                raise ValueError(f"gate {vec!r} is applied before its detector has read the prompt")
            x = torch.where(gates[vec][:, None, None], _apply(x, value, gates, weights, dtype), x)
        elif kind.startswith("model:"):
            native = x.to(dtype)
            x = (native + model_dtype_delta(native, (kind[6:], vec, value))).float()
        else:
            x = x + op_delta(x, op)
    return x


def lora_delta(x, a, b, scale):
    """peft's LoRA delta ``scale * B(A(x))`` for a module input ``x`` ``[..., in]``, in float32."""
    return scale * ((x.float() @ a.to(x.device).float().T) @ b.to(x.device).float().T)


def edit_block(block, block_edits, gates=None, weights=None):
    """Apply one decoder block's ``(module_edits, ops)`` inside an nnsight trace (``block``: its envoy).

    Order, fixed: each LoRA module edit in forward order (the order given), then
    the defence ops on the block's output. nnsight requires modules to be reached
    in execution order, and a cap (or a conditional cap's detector) must see the
    adapted stream. ``gates`` and ``weights`` go to :func:`apply_ops` (detectors).
    """
    module_edits, ops = block_edits
    for path, a, b, scale in module_edits:
        module = block
        for part in path.split("."):
            module = getattr(module, part)
        x = module.input
        out = module.output
        module.output = (out.float() + lora_delta(x, a, b, scale)).to(out.dtype)
    if ops:
        block.output = apply_ops(block.output, ops, gates, weights)


def masked_mean(h, weights):
    """Mean over positions: ``h`` ``[b, t, d]``, ``weights`` ``[b, t]`` already divided by counts."""
    return torch.einsum("btd,bt->bd", h.float(), weights)
