"""Single-direction interventions: ``Steer``, ``Ablate``, ``Cap``.

Each is a frozen dataclass that validates itself early (finite, non-zero
vector; finite coefficients; a known cap mode) and, given a model, *binds* to
plain per-layer ops for :mod:`persona_probe.edits`, which holds the math.
Binding checks what only the model knows: layer range and hidden size.

A vector may be ``[d]`` (used at every listed layer) or ``[n_layers, d]``
(row ``l`` used at layer ``l``, as for an axis).

Capping has two explicit conventions, because the published configs and the
paper's prose disagree in sign (Lu et al. 2026, arXiv 2601.10387; docs/facts.md):

* ``mode="ceiling"`` - the reference code: ``h - u * max(<h,u> - tau, 0)``,
  an upper bound on the projection onto the *stored* vector.
* ``mode="floor"`` - ``h + u * max(tau - <h,u>, 0)``, a lower bound. A ceiling
  at ``tau`` on ``-a`` is exactly a floor at ``-tau`` on ``a``;
  :meth:`Cap.as_floor` and :meth:`Cap.as_ceiling` convert between the two.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Sequence

import torch

from ..vectors import check_vector, unit

__all__ = ["Steer", "Ablate", "Cap", "layer_tuple", "vector_at", "norm_of", "MAX_STEER", "MATH_DTYPES"]


def layer_tuple(layers) -> tuple[int, ...]:
    if isinstance(layers, int):
        layers = (layers,)
    layers = tuple(layers)
    if not layers:
        raise ValueError("an intervention needs at least one layer")
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise ValueError(f"layers must be ints, got {layer!r}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers {layers} list a layer twice")
    return layers


# |coef| x norm beyond this squares to inf in float32 (RMSNorm/LayerNorm variance): sqrt(3.4e38) ~ 1.8e19
MAX_STEER = 1e19
MATH_DTYPES = ("float32", "model")


def _number(value, what: str) -> float:
    """``value`` as a float; a string or a bool is an error that says how to write the number."""
    if isinstance(value, str):
        raise ValueError(f"{what} must be a number, got the string {value!r}; write it without quotes "
                         f"(e.g. {what.split()[-1]}=2.0)")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _check_math(value: str, what: str) -> None:
    if value not in MATH_DTYPES:
        raise ValueError(f"{what} math_dtype must be 'float32' (default: exact projections) or 'model' (the "
                         f"reference implementation's arithmetic in the model's dtype), got {value!r}")


def _op(kind: str, v: torch.Tensor, value: float, math_dtype: str) -> tuple:
    """A float32 op on the unit vector, or a ``model:`` op on the raw vector (normalised in the model's dtype)."""
    if math_dtype == "model":
        return (f"model:{kind}", v, value)
    return (kind, unit(v) if kind != "steer" else v, value)


def vector_at(v: torch.Tensor, layer: int) -> torch.Tensor:
    return v[layer] if v.ndim == 2 else v


@dataclasses.dataclass(frozen=True, eq=False)
class Steer:
    """Add ``coef * vector`` at every position of each layer."""

    vector: torch.Tensor
    layers: Sequence[int]
    coef: float = 1.0
    math_dtype: str = "float32"

    def __post_init__(self):
        _check_math(self.math_dtype, "Steer")
        object.__setattr__(self, "vector", check_vector(self.vector, name="Steer vector"))
        object.__setattr__(self, "layers", layer_tuple(self.layers))
        coef = _number(self.coef, "Steer coef")
        if not math.isfinite(coef):
            raise ValueError(f"Steer coef must be finite, got {self.coef}")
        size = abs(coef) * float(self.vector.norm(dim=-1).max())
        if size >= MAX_STEER:
            raise ValueError(f"Steer coef {coef:g} times the vector's norm adds {size:.3g} to the residual stream; "
                             f"its square overflows float32 in the model's norm layers, so every logit becomes NaN "
                             f"and generation returns empty text. Use |coef| x norm < {MAX_STEER:.0e} (residual "
                             f"streams are typically 1-1000 in norm)")
        object.__setattr__(self, "coef", coef)

    def check(self, *, n_layers: int, d_model: int) -> None:
        """What only the model knows: hidden size (and layer rows for a per-layer vector)."""
        check_vector(self.vector, d_model=d_model, n_layers=n_layers if self.vector.ndim == 2 else None,
                     name=f"{type(self).__name__} vector")

    def ops(self, layer: int) -> list[tuple]:
        return [_op("steer", vector_at(self.vector, layer), float(self.coef), self.math_dtype)]

    def describe(self) -> dict:
        return {"kind": "steer", "layers": list(self.layers), "coef": float(self.coef), "norm": norm_of(self.vector)}


@dataclasses.dataclass(frozen=True, eq=False)
class Ablate:
    """Remove the component along ``vector`` (directional ablation) at each layer."""

    vector: torch.Tensor
    layers: Sequence[int]
    math_dtype: str = "float32"

    def __post_init__(self):
        _check_math(self.math_dtype, "Ablate")
        object.__setattr__(self, "vector", check_vector(self.vector, name="Ablate vector"))
        object.__setattr__(self, "layers", layer_tuple(self.layers))

    def check(self, *, n_layers: int, d_model: int) -> None:
        """What only the model knows: hidden size (and layer rows for a per-layer vector)."""
        check_vector(self.vector, d_model=d_model, n_layers=n_layers if self.vector.ndim == 2 else None,
                     name=f"{type(self).__name__} vector")

    def ops(self, layer: int) -> list[tuple]:
        return [_op("ablate", vector_at(self.vector, layer), 0.0, self.math_dtype)]

    def describe(self) -> dict:
        return {"kind": "ablate", "layers": list(self.layers), "norm": norm_of(self.vector)}


@dataclasses.dataclass(frozen=True, eq=False)
class Cap:
    """Bound the projection on ``vector``: ``ceiling`` (<= tau) or ``floor`` (>= tau).

    ``tau`` is one float for all layers or one per layer (same order as ``layers``).
    """

    vector: torch.Tensor
    layers: Sequence[int]
    tau: float | Sequence[float]
    mode: str = "ceiling"
    math_dtype: str = "float32"

    def __post_init__(self):
        _check_math(self.math_dtype, "Cap")
        object.__setattr__(self, "vector", check_vector(self.vector, name="Cap vector"))
        object.__setattr__(self, "layers", layer_tuple(self.layers))
        if self.mode not in ("ceiling", "floor"):
            raise ValueError(f"Cap mode must be 'ceiling' or 'floor', got {self.mode!r}")
        taus = self.tau
        if isinstance(taus, torch.Tensor):
            taus = taus.tolist()
        if isinstance(taus, (numbers.Real, str)) and not isinstance(taus, bool):
            taus = [taus] * len(self.layers)
        if not isinstance(taus, (list, tuple)):
            raise ValueError(f"Cap tau must be a number or one number per layer, got {type(self.tau).__name__}")
        taus = tuple(_number(t, "Cap tau") for t in taus)
        if len(taus) != len(self.layers):
            raise ValueError(f"Cap has {len(self.layers)} layers but {len(taus)} thresholds; "
                             "give one tau or one per layer")
        if not all(math.isfinite(t) for t in taus):
            raise ValueError(f"Cap thresholds must be finite, got {taus}")
        object.__setattr__(self, "tau", taus)

    def check(self, *, n_layers: int, d_model: int) -> None:
        """What only the model knows: hidden size (and layer rows for a per-layer vector)."""
        check_vector(self.vector, d_model=d_model, n_layers=n_layers if self.vector.ndim == 2 else None,
                     name=f"{type(self).__name__} vector")

    def tau_at(self, layer: int) -> float:
        return self.tau[self.layers.index(layer)]

    def ops(self, layer: int) -> list[tuple]:
        return [_op(self.mode, vector_at(self.vector, layer), self.tau_at(layer), self.math_dtype)]

    def flipped(self) -> Cap:
        """The same edit written in the other convention (negated vector and thresholds)."""
        other = "floor" if self.mode == "ceiling" else "ceiling"
        return Cap(-self.vector, self.layers, tuple(-t for t in self.tau), other, self.math_dtype)

    def as_floor(self) -> Cap:
        return self if self.mode == "floor" else self.flipped()

    def as_ceiling(self) -> Cap:
        return self if self.mode == "ceiling" else self.flipped()

    def describe(self) -> dict:
        return {"kind": f"cap-{self.mode}", "layers": list(self.layers), "tau": list(self.tau),
                "norm": norm_of(self.vector)}


def norm_of(v: torch.Tensor) -> float | list[float]:
    n = v.norm(dim=-1)
    return n.tolist() if n.ndim else float(n)
