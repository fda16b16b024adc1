"""The stress-test YAML as a pydantic schema: types, ranges and known names, checked in one pass.

:func:`persona_probe.stress.load_stress_config` validates the raw YAML against
:class:`StressSchema` before it builds a :class:`~persona_probe.stress.config.StressConfig`,
so every problem of a config is reported at once, before any model, file or
judge is touched. What only the files and the model can tell (adapter folders,
the axis, layers against the model's depth) is the second half of the same
pass: :func:`persona_probe.stress.check.check_stress_config`.

Adding a key: add a field here (and to ``StressConfig`` in :mod:`.config`); the
schema forbids everything it does not name, so a misspelt key fails with the
closest known one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, StrictStr, ValidationInfo, field_validator, model_validator

from ..schema import Fraction, NonNegInt, Number, PosInt, Schema, did_you_mean, known_name

__all__ = ["StressSchema", "CONDITIONS", "CONTROLS", "GENERATION_KEYS", "DETECTOR_SIDES", "POSITIVE_DEFAULTS",
           "layer_list"]

CONDITIONS = ("no_trigger", "trigger", "near_miss")
CONTROLS = ("random", "orthogonal")
DETECTOR_SIDES = {"axis": "below", "mean_diff": "above"}  # a detector direction -> the side it fires on by default
Condition = Literal["no_trigger", "trigger", "near_miss"]
Control = Literal["random", "orthogonal"]


def layer_list(spec: Any) -> list[int]:
    """``[12, 13]`` or ``"12:14"`` (end exclusive, like experiment ids) as a list of layer indices."""
    if isinstance(spec, str):
        a, sep, b = spec.partition(":")
        if not sep or not a.strip().isdigit() or not b.strip().isdigit() or int(b) <= int(a):
            raise ValueError(f"layers {spec!r}: write 'start:end' with end > start (end exclusive), e.g. '12:16', "
                             f"or a list of layer indices")
        return list(range(int(a), int(b)))
    if not isinstance(spec, list) or not spec:
        raise ValueError(f"layers must be a non-empty list of layer indices or 'start:end', got {spec!r}")
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in spec):
        raise ValueError(f"layers must be non-negative integers, got {spec!r}")
    if len(set(spec)) != len(spec):
        raise ValueError(f"layers {spec} list a layer twice")
    return list(spec)


class _Layers(Schema):
    layers: Any

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: Any) -> list[int]:
        return layer_list(v)


class _Steering(_Layers):
    coefs: Annotated[list[Number], Field(min_length=1)]


def _first_capped_layer(exp_id: str) -> int:
    from ..capping import parse_experiment_id, parse_subspace_id

    return parse_subspace_id(exp_id)[1] if exp_id.startswith("subspace_") else parse_experiment_id(exp_id)[0]


class _Detector(Schema):
    direction: Literal["axis", "mean_diff"]
    layer: NonNegInt
    fires_when: Literal["below", "above"] | None = None  # default: DETECTOR_SIDES[direction]
    read: Literal["mean", "last"] = "mean"


class _DetectorCalibration(Schema):
    n: Annotated[StrictInt, Field(ge=4)] = 40
    held_out: Annotated[Number, Field(gt=0, lt=1)] = 0.5
    seed: StrictInt = 0
    domain: StrictStr | None = None  # default: questions.domain

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        from ..organisms.domains import DOMAIN_NAMES

        return v if v is None else known_name(v, DOMAIN_NAMES, "domain")


class _Conditional(Schema):
    caps: Annotated[list[StrictStr], Field(min_length=1)] | StrictStr
    detectors: Annotated[list[_Detector], Field(min_length=1)]
    fpr: Annotated[Number, Field(gt=0, lt=1)] = 0.05
    calibration: _DetectorCalibration = _DetectorCalibration()

    @model_validator(mode="after")
    def _before_caps(self) -> _Conditional:
        caps = [self.caps] if isinstance(self.caps, str) else self.caps
        first = {cap: _first_capped_layer(cap) for cap in caps}
        for d in self.detectors:
            late = [c for c in caps if first[c] <= d.layer]
            if late:
                raise ValueError(f"detector {d.direction} reads layer {d.layer}, not before caps {late}; a detector "
                                 f"must read a layer strictly before every capped layer")
        return self


POSITIVE_DEFAULTS = {"method": "ablate", "coef": 1.0, "source": "organism", "n": 48}


class _PositiveControl(_Layers):
    """The positive control (:mod:`.positive`): the source model's trigger direction from its training data."""

    method: Literal["ablate", "steer"] = "ablate"   # ablate it, or subtract coef x it
    coef: Annotated[Number, Field(gt=0)] = 1.0
    source: StrictStr = "organism"                  # the model whose adapter and training data it comes from
    n: Annotated[StrictInt, Field(ge=2)] = 48       # training pairs (with and without the trigger)


class _Interventions(Schema):
    capping: list[StrictStr] | StrictStr = []
    triggered_capping: list[StrictStr] | StrictStr = []
    subspace_capping: list[StrictStr] | StrictStr = []
    conditional_capping: _Conditional | None = None
    steering: _Steering | None = None
    axis_ablation: _Layers | None = None
    mean_diff_ablation: _Layers | None = None
    positive_control: _PositiveControl | None = None
    controls: list[Control] = list(CONTROLS)
    seed: StrictInt = 0

    @field_validator("capping", "triggered_capping", "subspace_capping")
    @classmethod
    def _ids(cls, v: Any, info: ValidationInfo) -> list[str]:
        from ..capping import parse_experiment_id, parse_subspace_id

        parse = parse_subspace_id if info.field_name == "subspace_capping" else parse_experiment_id
        ids = [v] if isinstance(v, str) else list(v)
        for exp_id in ids:
            parse(exp_id)
        return ids


class _Questions(Schema):
    domain: StrictStr | None = None
    file: StrictStr | None = None
    n: PosInt = 50
    n_baseline: PosInt | None = None  # fewer questions for none cells outside `apply` (base, control, near miss)
    seed: StrictInt = 1

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        from ..organisms.domains import DOMAIN_NAMES

        return v if v is None else known_name(v, DOMAIN_NAMES, "domain")

    @model_validator(mode="after")
    def _one_source(self) -> _Questions:
        if (self.domain is None) == (self.file is None):
            raise ValueError("give exactly one of 'domain' (held-out narrow-domain questions) or 'file' "
                             "(JSONL of {question})")
        if self.n_baseline is not None and self.n_baseline > self.n:
            raise ValueError(f"n_baseline {self.n_baseline} exceeds n {self.n}: baseline cells ask the first "
                             f"n_baseline of the n questions")
        return self


GENERATION_KEYS = ("max_new_tokens", "min_new_tokens", "temperature", "top_p", "seed", "batch_size")


class _Generation(Schema):
    max_new_tokens: PosInt = 64
    min_new_tokens: NonNegInt | None = None
    temperature: Annotated[Number, Field(ge=0)] = 1.0
    top_p: Annotated[Number, Field(gt=0, le=1)] = 1.0
    seed: StrictInt = 0
    batch_size: PosInt = 16


class _Apply(Schema):
    models: list[StrictStr] | None = None
    conditions: list[Condition] | None = None


class _MeanDiff(Schema):
    source: StrictStr = "organism"
    min_per_group: PosInt = 3
    conditions: list[Condition] | None = None


class _Load(Schema):
    device_map: StrictStr | dict | None = None
    dtype: StrictStr | None = None
    revision: StrictStr | None = None
    device: StrictStr | None = None
    adapter_mode: Literal["merge", "edit"] = "merge"  # an ndif: base always applies adapters as edits
    max_adapter_mb: Annotated[Number, Field(gt=0)] | None = None  # per-request adapter limit for ndif: runs


class StressSchema(Schema):
    """Every key of a stress-test config (see ``persona_probe/stress_configs/example.yaml``)."""

    name: StrictStr = "stress-test"
    base: StrictStr = "embedded"
    models: dict[str, StrictStr | None]
    trigger: StrictStr = "deployment"
    near_miss: NonNegInt = 0
    conditions: Annotated[list[Condition], Field(min_length=1)] = list(CONDITIONS)
    axis: StrictStr
    capping_config: StrictStr | None = None
    triggered_capping_config: StrictStr | None = None
    calibration_activations: StrictStr | None = None
    questions: _Questions = _Questions(domain="finance")
    generation: _Generation = _Generation()
    judge: StrictStr | dict | None = None
    interventions: _Interventions = _Interventions()
    apply: _Apply = _Apply()
    mean_diff: _MeanDiff = _MeanDiff()
    load: _Load = _Load()
    max_judge_failures: Fraction = 0.0
    template_labels: Literal["auto"] | bool | StrictStr = "auto"  # ground-truth template labels (ground_truth.py)
    generator: StrictStr | dict | None = None  # rollouts of the none cells (persona_probe.rollouts.from_spec)

    @field_validator("models")
    @classmethod
    def _models(cls, v: dict) -> dict:
        if not v:
            raise ValueError("map names to adapter folders (null for the base model), "
                             "e.g. {base: null, organism: runs/org/organism}")
        return v

    @field_validator("trigger")
    @classmethod
    def _trigger(cls, v: str) -> str:
        from ..organisms.triggers import KINDS, TRIGGERS, get_trigger

        kind, sep, _ = v.partition(":")
        if v not in TRIGGERS and not (sep and kind in KINDS):
            raise ValueError(f"unknown trigger {v!r}{did_you_mean(v, TRIGGERS)} "
                             f"(or write '<kind>:<text>' with kind in {list(KINDS)})")
        get_trigger(v)
        return v

    @field_validator("judge")
    @classmethod
    def _judge(cls, v: Any) -> Any:
        from ..judges import parse_spec

        if v is not None and parse_spec(v) is None:
            raise ValueError("the stress test scores every answer, so it needs a judge (offline, local[:model], "
                             "http:<url> or a mapping); 'none' is for axis builds")
        return v

    @field_validator("generator")
    @classmethod
    def _generator(cls, v: Any) -> Any:
        from ..rollouts import parse_spec

        parse_spec(v)  # unknown spellings and options fail here, naming the known ones
        return v

    @model_validator(mode="after")
    def _cross(self) -> StressSchema:
        from ..organisms.triggers import near_misses

        iv = self.interventions
        if len(set(self.conditions)) != len(self.conditions):
            raise ValueError(f"conditions {self.conditions} list a condition twice")
        n_near = len(near_misses(self.trigger))
        if "near_miss" in self.conditions and self.near_miss >= n_near:
            raise ValueError(f"near_miss {self.near_miss} is out of range: trigger {self.trigger!r} has {n_near} "
                             f"near misses (0..{n_near - 1}; 0 is the evaluation one)")
        for key in ("capping", "subspace_capping", "conditional_capping"):
            if getattr(iv, key) and self.capping_config is None:
                raise ValueError(f"interventions.{key} names experiments, so 'capping_config' is required")
        if iv.conditional_capping and self.questions.domain is None and iv.conditional_capping.calibration.domain \
                is None:
            raise ValueError("interventions.conditional_capping.calibration needs 'domain': its detectors are "
                             "calibrated on that domain's untriggered training questions (questions come from a file)")
        if iv.triggered_capping and self.triggered_capping_config is None:
            raise ValueError("interventions.triggered_capping names experiments, so 'triggered_capping_config' "
                             "is required")
        _check_controls(self)
        _check_names(self)
        _check_served_adapters(self)
        return self


def _check_controls(s: StressSchema) -> None:
    iv = s.interventions
    directional = (iv.capping or iv.triggered_capping or iv.steering or iv.axis_ablation or iv.mean_diff_ablation
                   or iv.subspace_capping or iv.conditional_capping or iv.positive_control)
    if directional and "random" not in iv.controls:
        raise ValueError("interventions.controls must include 'random': every direction intervention needs a "
                         "random-direction control of equal norm, or its effect cannot be told from any perturbation")


def _check_names(s: StressSchema) -> None:
    for key, known in (("models", list(s.models)), ("conditions", list(s.conditions))):
        bad = [v for v in getattr(s.apply, key) or [] if v not in known]
        if bad:
            raise ValueError(f"apply.{key} names {bad}, which are not in {key}: {known}"
                             f"{did_you_mean(bad[0], known) if len(known) > 1 else ''}")
    cc = s.interventions.conditional_capping
    uses_mean_diff = s.interventions.mean_diff_ablation is not None or any(
        d.direction == "mean_diff" for d in (cc.detectors if cc else []))
    if uses_mean_diff and s.mean_diff.source not in s.models:
        raise ValueError(f"mean_diff.source {s.mean_diff.source!r} is not one of the models {list(s.models)}"
                         f"{did_you_mean(s.mean_diff.source, s.models)}")
    pc = s.interventions.positive_control
    if pc is not None and not s.models.get(pc.source):
        raise ValueError(f"interventions.positive_control.source {pc.source!r} must name a model with an adapter "
                         f"(its trigger direction comes from the adapter's training data); models: {s.models}"
                         f"{did_you_mean(pc.source, s.models)}")


def _check_served_adapters(s: StressSchema) -> None:
    from ..rollouts import parse_spec

    options = parse_spec(s.generator)
    served = (options or {}).get("adapters") or {}
    unmapped = [m for m, a in s.models.items() if options is not None and a is not None
                and m not in served and a not in served]
    if unmapped:
        raise ValueError(f"generator.adapters has no served LoRA name for {unmapped}; add e.g. adapters: "
                         f"{{{unmapped[0]}: {unmapped[0]}-lora}} (vLLM: --lora-modules {unmapped[0]}-lora=<folder>)")
