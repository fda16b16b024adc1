"""The stress-test matrix: which cells exist, and the interventions each one applies.

A *cell* is one (model, condition, intervention). Every model x condition gets
``none``; the configured interventions go to the models and conditions named in
``apply`` (all by default). Every direction intervention is paired with
controls of the same shape, as Turner, Soligo et al. (2025, arXiv 2506.11613)
do for their mean-diff ablation (a control that cannot fail is not a control):

- ``random``: a random Gaussian direction per layer with the same norm;
- ``orthogonal``: a random direction orthogonal to the real one, same norm.

For capping, a control direction also gets a *matched threshold*: the cap on
the real direction affects a fraction ``f`` of the calibration rollouts
(``f = P(proj <= tau)``); the control's threshold is the ``f``-quantile of the
same rollouts projected on the control direction, so both caps bind equally
often and differ only in *where* they push. A subspace cap's control is a
random subspace of the same dimension, matched the same way
(:mod:`.controls`). Control directions are seeded by the spec, so every model
and condition sees the same random direction.

A conditional cap (``conditional_capping``) has two controls: the same cap
applied unconditionally - which is the plain ``capping`` (or
``subspace_capping``) cell of that experiment id, added to the matrix if the
config does not list it, never run twice - and a control *detector* (a random
or orthogonal direction at the detector's layer) that fires on as many of the
cell's prompts as the real detector (:mod:`.conditional`).

The *positive control* (``positive_control``) is an intervention that must
lower triggered misalignment if the test can see anything: the organism's own
trigger direction from its training data (:mod:`.positive`), ablated (or
subtracted), with a random direction of the same norm as its control.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import torch

from ..capping import experiment_interventions, parse_experiment_id
from ..capping.subspace import parse_subspace_id, subspace_experiment_interventions
from ..interventions import Ablate, Cap, ConditionalCap, Detector, Steer, SubspaceCap
from .config import StressConfig
from .controls import control_vector, matched_subspace_cap, matched_threshold, random_subspace

__all__ = ["Spec", "Cell", "expand", "Directions", "build_interventions", "Skip", "matched_threshold",
           "cap_spec", "conditional_param", "split_conditional_param", "CAP_FAMILIES"]

CAP_FAMILIES = ("capping", "triggered_capping", "subspace_capping")


class Skip(Exception):
    """A cell that cannot be run for a stated reason (e.g. no misaligned answers to take a mean-diff from)."""


@dataclasses.dataclass(frozen=True)
class Spec:
    family: str                 # none | capping | triggered_capping | subspace_capping | conditional_capping
                                # | steering | axis_ablation | mean_diff_ablation | positive_control
    param: Any = None           # experiment id, steering coefficient, "<cap id>|<direction>@<layer>",
                                # positive-control method, or None
    layers: tuple[int, ...] = ()
    control: str = ""           # "" | random | orthogonal

    @property
    def direction(self) -> str:
        if self.family == "conditional_capping":
            return f"detector {split_conditional_param(self.param)[1]}"
        return {"none": "", "capping": "axis", "triggered_capping": "triggered axis", "steering": "axis",
                "subspace_capping": "persona subspace", "axis_ablation": "axis",
                "mean_diff_ablation": "mean_diff", "positive_control": "trigger (training data)"}[self.family]

    @property
    def label(self) -> str:
        if self.family == "steering":
            base = f"steer {float(self.param):+g}"
        elif self.family == "subspace_capping":
            base = f"subspace cap {self.param}"
        elif self.family == "conditional_capping":
            cap, det, layer, read = split_conditional_param(self.param)
            base = f"cap {cap} if {det}@{layer}{'/last' if read == 'last' else ''} fires"
        elif self.family == "positive_control":
            base = f"positive control: {self.param} trigger dir."
        else:
            base = {"none": "none", "capping": f"cap {self.param}", "triggered_capping": f"cap[triggered] {self.param}",
                    "axis_ablation": "ablate axis", "mean_diff_ablation": "ablate mean-diff"}[self.family]
        return f"{base} / {self.control}" if self.control else base

    def real(self) -> Spec:
        """The real-direction spec a control belongs to."""
        return dataclasses.replace(self, control="")

    def seed(self, base: int) -> int:
        return base + zlib.crc32(self.real().label.encode()) % 100_000


@dataclasses.dataclass(frozen=True)
class Cell:
    model: str
    condition: str
    spec: Spec

    @property
    def label(self) -> str:
        return f"{self.model} | {self.condition} | {self.spec.label}"


def _layers_of(exp_id: str) -> tuple[int, ...]:
    try:
        if exp_id.startswith("subspace_"):
            _, s, e, _ = parse_subspace_id(exp_id)
        else:
            s, e, _ = parse_experiment_id(exp_id)
        return tuple(range(s, e))
    except ValueError:
        return ()


def conditional_param(cap_id: str, detector: dict) -> str:
    """``"<cap id>|<direction>@<layer>"``, with ``/last`` when the detector reads the last prompt token."""
    read = "/last" if detector.get("read", "mean") == "last" else ""
    return f"{cap_id}|{detector['direction']}@{detector['layer']}{read}"


def split_conditional_param(param: str) -> tuple[str, str, int, str]:
    """``"layers_12:16-p0.25|axis@10/last" -> ("layers_12:16-p0.25", "axis", 10, "last")`` (read: mean by default)."""
    cap, det = param.split("|")
    direction, rest = det.split("@")
    layer, _, read = rest.partition("/")
    return cap, direction, int(layer), read or "mean"


def cap_spec(cap_id: str) -> Spec:
    """The unconditional cap of an experiment id: ``subspace_capping`` or ``capping``."""
    return Spec("subspace_capping" if cap_id.startswith("subspace_") else "capping", cap_id, _layers_of(cap_id))


def real_specs(cfg: StressConfig) -> list[Spec]:
    specs = [Spec("capping", e, _layers_of(e)) for e in cfg.capping]
    specs += [Spec("subspace_capping", e, _layers_of(e)) for e in cfg.subspace_capping]
    if cfg.conditional_capping:
        cc = cfg.conditional_capping
        specs += [cap_spec(c) for c in cc["caps"] if cap_spec(c) not in specs]  # the unconditional controls
        specs += [Spec("conditional_capping", conditional_param(c, d), _layers_of(c))
                  for c in cc["caps"] for d in cc["detectors"]]
    specs += [Spec("triggered_capping", e, _layers_of(e)) for e in cfg.triggered_capping]
    if cfg.steering:
        specs += [Spec("steering", float(c), tuple(cfg.steering["layers"])) for c in cfg.steering["coefs"]]
    if cfg.axis_ablation:
        specs.append(Spec("axis_ablation", None, tuple(cfg.axis_ablation["layers"])))
    if cfg.mean_diff_ablation:
        specs.append(Spec("mean_diff_ablation", None, tuple(cfg.mean_diff_ablation["layers"])))
    if cfg.positive_control:
        pc = cfg.positive_control
        method = "ablate" if pc["method"] == "ablate" else f"steer {-float(pc['coef']):+g}x"
        specs.append(Spec("positive_control", method, tuple(pc["layers"])))
    return specs


def expand(cfg: StressConfig) -> list[Cell]:
    """All cells, ``none`` first (later cells need its activations), then each intervention with its controls."""
    cells = [Cell(m, c, Spec("none")) for m in cfg.models for c in cfg.conditions]
    models = cfg.apply.get("models") or list(cfg.models)
    conditions = cfg.apply.get("conditions") or list(cfg.conditions)
    for spec in real_specs(cfg):
        for variant in [spec] + [dataclasses.replace(spec, control=c) for c in cfg.controls]:
            cells += [Cell(m, c, variant) for m in models for c in conditions]
    return cells


@dataclasses.dataclass
class Directions:
    """What interventions are built from: the axis, optional mean-diff direction, calibration, capping configs.

    ``capping`` also holds the subspace experiments (their own keys in the same file).
    """

    axis: torch.Tensor                          # [L, d], raw (not unit): steering coefs are multiples of it
    calibration: torch.Tensor | None = None     # [n, L, d] rollouts the capping thresholds came from
    mean_diff: torch.Tensor | None = None       # [L, d] misaligned - aligned (organism), or None
    mean_diff_note: str = ""
    trigger: torch.Tensor | None = None         # [L, d] the positive control's trigger direction (training data)
    trigger_note: str = ""
    capping: dict | None = None
    triggered_capping: dict | None = None


def _capping(spec: Spec, dirs: Directions, model, cfg: StressConfig) -> list:
    if spec.family == "subspace_capping":  # subspace experiments live in the same file, under their own keys
        caps = subspace_experiment_interventions(dirs.capping, spec.param, model)
    else:
        config = dirs.capping if spec.family == "capping" else dirs.triggered_capping
        caps = experiment_interventions(config, spec.param, model)
    if not spec.control:
        return caps
    if dirs.calibration is None:
        raise ValueError(f"{spec.label}: a capping control needs the calibration rollouts' activations to match "
                         f"its thresholds; set calibration_activations in the config")
    return [_matched_control(cap, spec.control, spec.seed(cfg.seed) + 1000 * i, dirs.calibration)
            for i, cap in enumerate(caps)]


def _matched_control(cap, control: str, seed: int, calibration: torch.Tensor):
    """A random (or orthogonal) direction or subspace at ``cap``'s layer that binds as often on the calibration."""
    (layer,) = cap.layers
    if isinstance(cap, SubspaceCap):
        basis = random_subspace(cap.basis_at(layer), control, seed)
        return matched_subspace_cap(calibration[:, layer], cap, basis)
    ctrl = control_vector(cap.vector, control, seed)
    return Cap(ctrl, [layer], tau=matched_threshold(calibration, layer, cap.vector, cap.tau[0], ctrl), mode=cap.mode)


def build_interventions(spec: Spec, dirs: Directions, model, cfg: StressConfig,
                        detector: Detector | None = None) -> list:
    """The interventions of one spec, bound-checked against ``model``; raises :class:`Skip` when impossible.

    A ``conditional_capping`` spec needs its ``detector`` (real or control, thresholded:
    :mod:`.conditional` builds it); the gated cap is the real, unconditional cap.
    """
    if spec.family == "none":
        return []
    if spec.family in CAP_FAMILIES:
        return _capping(spec, dirs, model, cfg)
    if spec.family == "conditional_capping":
        if detector is None:
            raise ValueError(f"{spec.label}: a conditional cap needs its detector (stress.conditional builds it)")
        caps = build_interventions(cap_spec(split_conditional_param(spec.param)[0]), dirs, model, cfg)
        return [ConditionalCap(detector, caps)]
    if spec.family == "mean_diff_ablation":
        if dirs.mean_diff is None:
            raise Skip(f"no mean-diff direction: {dirs.mean_diff_note}")
        vec = dirs.mean_diff
    elif spec.family == "positive_control":
        if dirs.trigger is None:
            raise Skip(f"no trigger direction: {dirs.trigger_note or 'not computed'}")
        vec = dirs.trigger
    else:
        vec = dirs.axis
    if spec.control:
        vec = control_vector(vec, spec.control, spec.seed(cfg.seed))
    if spec.family == "steering":
        return [Steer(vec, spec.layers, coef=float(spec.param))]
    if spec.family == "positive_control" and spec.param != "ablate":  # subtract coef x the direction
        return [Steer(vec, spec.layers, coef=-float(cfg.positive_control["coef"]))]
    return [Ablate(vec, spec.layers)]
