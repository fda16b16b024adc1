"""Interventions a researcher names, and their binding to per-layer ops for :mod:`persona_probe.edits`.

* :mod:`.single` - ``Steer``, ``Ablate``, ``Cap`` (one direction; the cap's two sign conventions);
* :mod:`.subspace` - ``SubspaceCap`` (a k-dimensional persona subspace held in a calibrated region);
* :mod:`.conditional` - ``Detector`` and ``ConditionalCap`` (a cap applied only where a detector fires).

Each is a frozen dataclass that validates itself early and, given a model,
*binds* to plain per-layer ops (tuples of tensors and numbers, which serialize
for remote execution). Binding checks what only the model knows: layer range
and hidden size.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch

from ..vectors import check_layer
from .conditional import ConditionalCap, Detector, calibrate_threshold
from .single import Ablate, Cap, Steer
from .subspace import SubspaceCap, orthonormal_basis

__all__ = ["Steer", "Ablate", "Cap", "SubspaceCap", "ConditionalCap", "Detector", "Intervention",
           "bind_interventions", "calibrate_threshold", "orthonormal_basis", "is_conditional"]

Intervention = Steer | Ablate | Cap | SubspaceCap | ConditionalCap
_TYPES = (Steer, Ablate, Cap, SubspaceCap, ConditionalCap)


def _to(obj, device: torch.device):
    """Move every tensor of an op (nested tuples/lists) to ``device`` as float32."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device=device, dtype=torch.float32)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to(x, device) for x in obj)
    return obj


def is_conditional(ops: dict[int, list[tuple]]) -> bool:
    """Whether bound ops hold a detector or a gated edit (these run in generation only)."""
    return any(op[0] in ("detect", "gated") for layer_ops in ops.values() for op in layer_ops)


def bind_interventions(
    interventions: Iterable[Intervention], *, n_layers: int, d_model: int, devices: Sequence[torch.device] | None = None
) -> dict[int, list[tuple]]:
    """Per-layer op lists for a model, in forward order; validates layers and widths.

    ``devices[l]`` is where layer ``l`` lives (multi-GPU); ops are moved there once.
    """
    by_layer: dict[int, list[tuple]] = {}
    gates: set[str] = set()
    for iv in interventions:
        if not isinstance(iv, _TYPES):
            raise ValueError(f"not an intervention: {iv!r}; use Steer, Ablate, Cap, SubspaceCap or ConditionalCap")
        iv.check(n_layers=n_layers, d_model=d_model)
        if isinstance(iv, ConditionalCap):
            if iv.name in gates:
                raise ValueError(f"two ConditionalCaps are named {iv.name!r}; give each its own name=")
            gates.add(iv.name)
        for layer in iv.layers:
            check_layer(layer, n_layers)
            dev = devices[layer] if devices is not None else torch.device("cpu")
            for op in iv.ops(layer):
                by_layer.setdefault(layer, []).append(_to(op, dev))
    return dict(sorted(by_layer.items()))
