"""The stress-test YAML: what is evaluated, validated before anything runs.

A config names the models (base + adapters), the trigger, the axis and capping
config, the interventions and the questions. Every path is resolved relative to
the YAML file. ``generator`` (optional, :func:`persona_probe.rollouts.from_spec`) sends
the ``none`` cells' generations to an OpenAI-compatible server; intervention cells stay
in nnsight. Errors say which key is wrong and what would be accepted, so a
typo fails in a second, not after an hour of generation. With an ``ndif:``
base, adapters run as :class:`persona_probe.lora.LoraEdit` graph edits (NDIF
serves base weights); ``load`` takes ``adapter_mode`` and ``max_adapter_mb``.

Example (``persona_probe/stress_configs/example.yaml`` is the annotated one; ``judge`` is a judge
spec, :func:`persona_probe.judges.from_spec`: ``offline``, ``local[:model]``, ``http:<url>`` or a
mapping of the backend's options)::

    base: embedded
    models: {base: null, organism: runs/org/organism, control: runs/org/control}
    trigger: deployment
    conditions: [no_trigger, trigger, near_miss]
    axis: runs/axis/axis.safetensors
    capping_config: runs/axis/capping_config.pt
    questions: {domain: finance, n: 50, seed: 1}
    judge: {backend: offline}
    generator: {url: http://127.0.0.1:8000/v1, adapters: {organism: organism-lora, control: control-lora}}
    interventions:
      capping: [layers_12:16-p0.25, layers_12:16-p0.75]
      steering: {layers: [12, 13, 14, 15], coefs: [1.0, 2.0]}
      axis_ablation: {layers: [12, 13, 14, 15]}
      mean_diff_ablation: {layers: [12, 13, 14, 15]}
      subspace_capping: [subspace_k4_layers_12:16-p0.25]    # ids in the capping config's subspace section
      conditional_capping:                                   # a cap applied only where a prompt detector fires
        caps: [layers_12:16-p0.25]                           # single-axis or subspace experiment ids
        detectors: [{direction: axis, layer: 10}]            # axis (fires below) or mean_diff (fires above);
                                                             # read: mean (all prompt tokens, default) or last
        fpr: 0.05                                            # false-positive rate on untriggered prompts
        calibration: {n: 40, held_out: 0.5, seed: 0}         # untriggered training-distribution prompts
      controls: [random, orthogonal]
    apply: {models: [organism], conditions: [no_trigger, trigger]}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from ..io import content_hash
from ..schema import validate
from .schema import CONDITIONS, CONTROLS, DETECTOR_SIDES, POSITIVE_DEFAULTS, StressSchema, layer_list

__all__ = ["StressConfig", "load_stress_config", "CONDITIONS", "CONTROLS"]


@dataclasses.dataclass
class StressConfig:
    base: str
    models: dict[str, str | None]
    axis: Path
    capping_config: Path | None = None
    triggered_capping_config: Path | None = None
    calibration_activations: Path | None = None
    trigger: str = "deployment"
    near_miss: int = 0  # index into near_misses(trigger); 0 is the evaluation near miss, never trained on
    conditions: tuple[str, ...] = CONDITIONS
    questions: dict = dataclasses.field(default_factory=lambda: {"domain": "finance", "n": 50, "seed": 1})
    generation: dict = dataclasses.field(default_factory=dict)
    judge: dict = dataclasses.field(default_factory=lambda: {"backend": "offline"})
    capping: tuple[str, ...] = ()
    triggered_capping: tuple[str, ...] = ()
    steering: dict | None = None
    axis_ablation: dict | None = None
    mean_diff_ablation: dict | None = None
    subspace_capping: tuple[str, ...] = ()
    conditional_capping: dict | None = None
    positive_control: dict | None = None  # {layers, method: ablate|steer, coef, source, n}: see stress.positive
    controls: tuple[str, ...] = CONTROLS
    seed: int = 0
    apply: dict = dataclasses.field(default_factory=dict)
    mean_diff: dict = dataclasses.field(default_factory=lambda: {"source": "organism", "min_per_group": 3})
    load: dict = dataclasses.field(default_factory=dict)  # load_model kwargs: device_map, dtype, revision, ...
    template_labels: bool | str = "auto"  # ground-truth template labels: auto | true | false | a domain name
    generator: dict | None = None  # ServedRollouts options for the none cells; None: in-process
    name: str = "stress-test"
    source: str = "<dict>"
    max_judge_failures: float = 0.0  # share of judgements that may fail (network, server) before the run fails

    @property
    def gen(self) -> dict:
        g = {"max_new_tokens": 64, "temperature": 1.0, "top_p": 1.0, "seed": 0, "batch_size": 16}
        g.update(self.generation)
        return g

    def key(self) -> str:
        """A hash of everything that decides the results (paths by name, not content; cells add file hashes)."""
        d = dataclasses.asdict(self)
        d.pop("source")
        d.pop("load")  # where the weights sit does not change what is computed
        d.pop("max_judge_failures")  # how many failures are tolerated does not change a score
        if d["generator"] is None:  # the hash of a config without a generator is what it always was
            d.pop("generator")
        else:  # served answers depend on the served weights, not on transport settings
            d["generator"] = {k: d["generator"].get(k) for k in ("model", "adapters")}
        return content_hash(d)


def _fail(where: str, msg: str) -> None:
    raise ValueError(f"{where}: {msg}")


def _path(root: Path, value: Any) -> Path | None:
    if value is None:
        return None
    p = Path(value)
    return p if p.is_absolute() else root / p


def _read(source: str | Path | dict, root: Path | None) -> tuple[Any, str, Path]:
    if isinstance(source, dict):
        return source, "<dict>", root or Path.cwd()
    path = Path(source)
    if not path.is_file():
        _fail(str(path), "no such config file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        _fail(str(path), f"not valid YAML: {exc}")
    return raw, str(path), root or path.parent


def load_stress_config(source: str | Path | dict, *, root: Path | None = None) -> StressConfig:
    """Parse and validate a stress-test config from a YAML path or a dict.

    Types, ranges and names are checked by :class:`~.schema.StressSchema` (every problem reported at once);
    files and the model's depth by :func:`persona_probe.stress.check.check_stress_config`.
    """
    raw, where, root = _read(source, root)
    if not isinstance(raw, dict):
        _fail(where, "the config must be a YAML mapping")
    validate(StressSchema, raw, where)
    # The dataclass keeps the raw values (not pydantic's coerced ones), so config hashes stay as they were.
    iv = raw.get("interventions") or {}
    capping = iv.get("capping") or []
    layered = {k: ({**iv[k], "layers": layer_list(iv[k]["layers"])} if iv.get(k) else None)
               for k in ("steering", "axis_ablation", "mean_diff_ablation", "positive_control")}
    if layered["positive_control"]:  # with its defaults: ablate the organism's trigger direction, 48 training pairs
        layered["positive_control"] = {**POSITIVE_DEFAULTS, **layered["positive_control"]}
    return StressConfig(
        name=str(raw.get("name", "stress-test")), base=str(raw.get("base", "embedded")),
        models={str(k): (None if v is None else str(_path(root, v))) for k, v in raw["models"].items()},
        axis=_path(root, raw["axis"]), capping_config=_path(root, raw.get("capping_config")),
        triggered_capping_config=_path(root, raw.get("triggered_capping_config")),
        calibration_activations=_path(root, raw.get("calibration_activations")),
        trigger=str(raw.get("trigger", "deployment")), near_miss=int(raw.get("near_miss", 0)),
        conditions=tuple(raw.get("conditions", CONDITIONS)),
        questions=dict(raw.get("questions") or {"domain": "finance", "n": 50, "seed": 1}),
        generation=dict(raw.get("generation") or {}), judge=_judge(raw.get("judge")),
        capping=tuple([capping] if isinstance(capping, str) else capping),
        triggered_capping=tuple(iv.get("triggered_capping") or ()), **layered,
        subspace_capping=tuple(_ids(iv.get("subspace_capping"))),
        conditional_capping=_conditional(iv["conditional_capping"]) if iv.get("conditional_capping") else None,
        controls=tuple(iv.get("controls", CONTROLS)), seed=int(iv.get("seed", 0)),
        apply=dict(raw.get("apply") or {}),
        mean_diff={"source": "organism", "min_per_group": 3, **(raw.get("mean_diff") or {})},
        load=dict(raw.get("load") or {}), template_labels=raw.get("template_labels", "auto"),
        generator=_generator(raw.get("generator")), source=where,
        max_judge_failures=float(raw.get("max_judge_failures", 0.0)),
    )


def _ids(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _conditional(spec: dict) -> dict:
    """``interventions.conditional_capping`` (already validated) with its defaults filled in."""
    detectors = [{"direction": d["direction"], "layer": d["layer"],
                  "fires_when": d.get("fires_when") or DETECTOR_SIDES[d["direction"]], "read": d.get("read", "mean")}
                 for d in spec["detectors"]]
    return {"caps": _ids(spec["caps"]), "detectors": detectors, "fpr": float(spec.get("fpr", 0.05)),
            "calibration": {"n": 40, "held_out": 0.5, "seed": 0, **(spec.get("calibration") or {})}}


def _judge(spec: Any) -> dict:
    """The judge spec as backend options (a dict, so the config hash is the same whichever spelling)."""
    from ..judges import parse_spec

    return parse_spec(spec or {"backend": "offline"})


def _generator(spec: Any) -> dict | None:
    """The generator spec as :class:`~persona_probe.rollouts.ServedRollouts` options (``None``: in-process)."""
    from ..rollouts import parse_spec

    return parse_spec(spec)
