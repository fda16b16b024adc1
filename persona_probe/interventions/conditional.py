"""``ConditionalCap``: apply a cap only to sequences whose prompt a linear detector flags.

Conditional activation steering (CAST; Lee et al. 2024, arXiv 2409.05907) reads
a *condition* at the prompt and applies the behaviour edit only when it passes
a threshold. Here the condition is a :class:`Detector` - a direction read at an
earlier layer than every capped layer - and the edit is any cap (or other
intervention). How it runs in :meth:`ProbeModel.generate`:

* during the first forward pass (the prompt), at ``detector.layer``, the score
  of each sequence is ``<h, unit(v)>`` read over its prompt: the mean over
  every non-padding token of the chat-templated prompt, generation prompt
  included (``read="mean"``, as CAST), or the last prompt token alone
  (``read="last"``, where Chen et al. 2025, arXiv 2507.21509, found the
  projection to predict trait expression); the sequence *fires* when the score
  is below (or above) the threshold;
* that per-sequence gate is kept for every later generation step; at the
  capped layers the edit is applied to the firing rows only, and the other rows
  are returned unchanged (bit-identical to no intervention).

Thresholds are calibrated on untriggered prompts only
(:func:`calibrate_threshold`, a quantile at the target false-positive rate);
checking the false-positive rate on a held-out split of untriggered prompts is
the caller's job (the stress test does it and reports it).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ..vectors import check_layer, check_vector, unit
from .single import vector_at

__all__ = ["Detector", "ConditionalCap", "calibrate_threshold", "SIDES", "READS"]

SIDES = ("below", "above")
READS = ("mean", "last")


def calibrate_threshold(scores: torch.Tensor, fpr: float, fires_when: str) -> float:
    """The threshold that fires on a fraction ``fpr`` of ``scores`` (untriggered prompts' detector scores).

    ``below``: the ``fpr`` quantile (fires when score < threshold); ``above``: the
    ``1 - fpr`` quantile. torch.quantile with linear interpolation.
    """
    if fires_when not in SIDES:
        raise ValueError(f"fires_when must be one of {SIDES}, got {fires_when!r}")
    if not 0.0 < fpr < 1.0:
        raise ValueError(f"the target false-positive rate must be a fraction in (0, 1) (0.05, not 5); got {fpr}")
    scores = torch.as_tensor(scores, dtype=torch.float32).flatten()
    if scores.numel() < 2:
        raise ValueError(f"calibrating a detector needs at least 2 untriggered prompts, got {scores.numel()}")
    return float(torch.quantile(scores, fpr if fires_when == "below" else 1.0 - fpr))


@dataclasses.dataclass(frozen=True, eq=False)
class Detector:
    """Fires on a sequence when its prompt's projection on ``vector`` at ``layer`` passes ``threshold``."""

    vector: torch.Tensor
    layer: int
    threshold: float
    fires_when: str = "below"
    read: str = "mean"

    def __post_init__(self):
        object.__setattr__(self, "vector", check_vector(self.vector, name="Detector vector"))
        if isinstance(self.layer, bool) or not isinstance(self.layer, int) or self.layer < 0:
            raise ValueError(f"Detector layer must be a non-negative int, got {self.layer!r}")
        if self.fires_when not in SIDES:
            raise ValueError(f"Detector fires_when must be one of {SIDES}, got {self.fires_when!r}")
        if self.read not in READS:
            raise ValueError(f"Detector read must be one of {READS}, got {self.read!r}")
        if not math.isfinite(float(self.threshold)):
            raise ValueError(f"Detector threshold must be finite, got {self.threshold}")
        object.__setattr__(self, "threshold", float(self.threshold))

    def unit_at_layer(self) -> torch.Tensor:
        return unit(vector_at(self.vector, self.layer))

    def scores(self, prompt_acts: torch.Tensor) -> torch.Tensor:
        """Scores from prompt activations ``[n, n_layers, d]`` (``ProbeModel.prompt_activations(read=self.read)``)."""
        return prompt_acts[:, self.layer].to(torch.float32) @ self.unit_at_layer()

    def fires(self, prompt_acts: torch.Tensor) -> torch.Tensor:
        s = self.scores(prompt_acts)
        return s < self.threshold if self.fires_when == "below" else s > self.threshold


@dataclasses.dataclass(frozen=True, eq=False)
class ConditionalCap:
    """Apply ``cap`` (one intervention or several) only to the sequences ``detector`` fires on.

    ``name`` keys the gate; two conditional interventions in one call need different names.
    """

    detector: Detector
    cap: object
    name: str = "detector"

    def __post_init__(self):
        caps = tuple(self.cap) if isinstance(self.cap, (list, tuple)) else (self.cap,)
        if not caps:
            raise ValueError("ConditionalCap needs at least one intervention to gate")
        for c in caps:
            if isinstance(c, ConditionalCap) or not hasattr(c, "ops") or not hasattr(c, "layers"):
                raise ValueError(f"ConditionalCap gates Steer, Ablate, Cap or SubspaceCap, not {c!r}")
        if not isinstance(self.detector, Detector):
            raise ValueError(f"ConditionalCap needs a Detector, got {self.detector!r}")
        first = min(layer for c in caps for layer in c.layers)
        if self.detector.layer >= first:
            raise ValueError(f"the detector reads layer {self.detector.layer} but the cap starts at layer {first}: "
                             f"it must read a layer strictly before every capped layer (e.g. {max(first - 2, 0)}), so "
                             f"the gate is known before any edit and is not itself edited")
        object.__setattr__(self, "cap", caps)

    @property
    def capped_layers(self) -> tuple[int, ...]:
        return tuple(sorted({layer for c in self.cap for layer in c.layers}))

    @property
    def layers(self) -> tuple[int, ...]:
        return (self.detector.layer,) + self.capped_layers

    def check(self, *, n_layers: int, d_model: int) -> None:
        check_layer(self.detector.layer, n_layers, what="the model (detector layer)")
        check_vector(self.detector.vector, d_model=d_model, name="Detector vector",
                     n_layers=n_layers if self.detector.vector.ndim == 2 else None)
        for c in self.cap:
            c.check(n_layers=n_layers, d_model=d_model)

    def ops(self, layer: int) -> list[tuple]:
        if layer == self.detector.layer:
            d = self.detector
            return [("detect", d.unit_at_layer(), (self.name, d.threshold, d.fires_when, d.read))]
        inner = [op for c in self.cap if layer in c.layers for op in c.ops(layer)]
        return [("gated", self.name, inner)]

    def describe(self) -> dict:
        d = self.detector
        return {"kind": "conditional", "name": self.name, "detector_layer": d.layer, "threshold": d.threshold,
                "fires_when": d.fires_when, "read": d.read, "cap": [c.describe() for c in self.cap]}

