"""The stress-test YAML: what is evaluated, validated before anything runs.

A config names the models (base + adapters), the trigger, the axis and capping
config, the interventions and the questions. Every path is resolved relative to
the YAML file. Errors say which key is wrong and what would be accepted, so a
typo fails in a second, not after an hour of generation.

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
    interventions:
      capping: [layers_12:16-p0.25, layers_12:16-p0.75]
      steering: {layers: [12, 13, 14, 15], coefs: [1.0, 2.0]}
      axis_ablation: {layers: [12, 13, 14, 15]}
      mean_diff_ablation: {layers: [12, 13, 14, 15]}
      controls: [random, orthogonal]
    apply: {models: [organism], conditions: [no_trigger, trigger]}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from ..io import content_hash

__all__ = ["StressConfig", "load_stress_config", "CONDITIONS", "CONTROLS"]

CONDITIONS = ("no_trigger", "trigger", "near_miss")
CONTROLS = ("random", "orthogonal")
_INTERVENTION_KEYS = ("capping", "triggered_capping", "steering", "axis_ablation", "mean_diff_ablation",
                      "controls", "seed")
_TOP_KEYS = {"name", "base", "models", "trigger", "near_miss", "conditions", "axis", "capping_config",
             "triggered_capping_config", "calibration_activations", "questions", "generation", "judge",
             "interventions", "apply", "mean_diff", "load"}


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
    controls: tuple[str, ...] = CONTROLS
    seed: int = 0
    apply: dict = dataclasses.field(default_factory=dict)
    mean_diff: dict = dataclasses.field(default_factory=lambda: {"source": "organism", "min_per_group": 3})
    load: dict = dataclasses.field(default_factory=dict)  # load_model kwargs: device_map, dtype, revision
    name: str = "stress-test"
    source: str = "<dict>"

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
        return content_hash(d)


def _fail(where: str, msg: str) -> None:
    raise ValueError(f"{where}: {msg}")


def _path(where: str, root: Path, value: Any, key: str, *, required: bool = True) -> Path | None:
    if value is None:
        if required:
            _fail(where, f"{key!r} is required")
        return None
    p = Path(value)
    p = p if p.is_absolute() else root / p
    return p


def _layers(where: str, spec: Any, key: str) -> dict:
    if not isinstance(spec, dict) or "layers" not in spec:
        _fail(where, f"interventions.{key} must be a mapping with 'layers' (a list of ints), got {spec!r}")
    layers = spec["layers"]
    if isinstance(layers, str) and ":" in layers:  # "12:16", end exclusive like experiment ids
        a, b = layers.split(":")
        layers = list(range(int(a), int(b)))
    if not isinstance(layers, list) or not layers or not all(isinstance(x, int) and x >= 0 for x in layers):
        _fail(where, f"interventions.{key}.layers must be a non-empty list of layer indices or 'start:end', "
                     f"got {spec['layers']!r}")
    return {**spec, "layers": layers}


def _judge(where: str, spec: Any) -> dict:
    """The judge spec as backend options (a dict, so the config hash is the same whichever spelling)."""
    from ..judges import parse_spec

    try:
        options = parse_spec(spec or {"backend": "offline"})
    except ValueError as exc:
        _fail(where, f"judge: {exc}")
    if options is None:
        _fail(where, "judge: the stress test scores every answer, so it needs a judge (offline, local[:model], "
                     "http:<url> or a mapping); 'none' is for axis builds")
    return options


def load_stress_config(source: str | Path | dict, *, root: Path | None = None) -> StressConfig:
    """Parse and validate a stress-test config from a YAML path or a dict."""
    if isinstance(source, dict):
        raw, where, root = source, "<dict>", root or Path.cwd()
    else:
        path = Path(source)
        if not path.is_file():
            _fail(str(path), "no such config file")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            _fail(str(path), f"not valid YAML: {exc}")
        where, root = str(path), root or path.parent
    if not isinstance(raw, dict):
        _fail(where, "the config must be a YAML mapping")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        _fail(where, f"unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    models = raw.get("models")
    if not isinstance(models, dict) or not models:
        _fail(where, "'models' must map names to adapter folders (null for the base model), "
                     "e.g. {base: null, organism: runs/org/organism}")
    models = {str(k): (None if v is None else str(_path(where, root, v, f"models.{k}"))) for k, v in models.items()}
    conditions = tuple(raw.get("conditions", CONDITIONS))
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad or not conditions:
        _fail(where, f"conditions {bad or conditions} unknown; choose from {list(CONDITIONS)}")
    iv = raw.get("interventions") or {}
    unknown = set(iv) - set(_INTERVENTION_KEYS)
    if unknown:
        _fail(where, f"unknown interventions {sorted(unknown)}; allowed: {list(_INTERVENTION_KEYS)}")
    capping = iv.get("capping") or []
    if isinstance(capping, str):
        capping = [capping]
    cfg = StressConfig(
        name=str(raw.get("name", "stress-test")), base=str(raw.get("base", "embedded")), models=models,
        axis=_path(where, root, raw.get("axis"), "axis"),
        capping_config=_path(where, root, raw.get("capping_config"), "capping_config", required=bool(capping)),
        triggered_capping_config=_path(where, root, raw.get("triggered_capping_config"), "triggered_capping_config",
                                       required=bool(iv.get("triggered_capping"))),
        calibration_activations=_path(where, root, raw.get("calibration_activations"), "calibration_activations",
                                      required=False),
        trigger=str(raw.get("trigger", "deployment")), near_miss=int(raw.get("near_miss", 0)),
        conditions=conditions, questions=dict(raw.get("questions") or {"domain": "finance", "n": 50, "seed": 1}),
        generation=dict(raw.get("generation") or {}), judge=_judge(where, raw.get("judge")),
        capping=tuple(capping), triggered_capping=tuple(iv.get("triggered_capping") or ()),
        steering=_layers(where, iv["steering"], "steering") if iv.get("steering") else None,
        axis_ablation=_layers(where, iv["axis_ablation"], "axis_ablation") if iv.get("axis_ablation") else None,
        mean_diff_ablation=(_layers(where, iv["mean_diff_ablation"], "mean_diff_ablation")
                            if iv.get("mean_diff_ablation") else None),
        controls=tuple(iv.get("controls", CONTROLS)), seed=int(iv.get("seed", 0)),
        apply=dict(raw.get("apply") or {}),
        mean_diff={"source": "organism", "min_per_group": 3, **(raw.get("mean_diff") or {})},
        load=dict(raw.get("load") or {}), source=where,
    )
    _check(cfg, where)
    return cfg


def _check(cfg: StressConfig, where: str) -> None:
    bad = [c for c in cfg.controls if c not in CONTROLS]
    if bad:
        _fail(where, f"interventions.controls {bad} unknown; choose from {list(CONTROLS)}")
    if "random" not in cfg.controls and (cfg.capping or cfg.steering or cfg.axis_ablation or cfg.mean_diff_ablation):
        _fail(where, "interventions.controls must include 'random': every direction intervention needs a "
                     "random-direction control of equal norm, or its effect cannot be told from any perturbation")
    if cfg.steering is not None:
        coefs = cfg.steering.get("coefs")
        if not isinstance(coefs, list) or not coefs or not all(isinstance(c, (int, float)) for c in coefs):
            _fail(where, f"interventions.steering.coefs must be a list of numbers (multiples of the axis vector), "
                         f"got {coefs!r}")
    for key in ("models", "conditions"):
        vals = cfg.apply.get(key)
        if vals is None:
            continue
        known = list(cfg.models) if key == "models" else list(cfg.conditions)
        bad = [v for v in vals if v not in known]
        if bad:
            _fail(where, f"apply.{key} names {bad}, which are not in {key}: {known}")
    if cfg.mean_diff_ablation is not None and cfg.mean_diff["source"] not in cfg.models:
        _fail(where, f"mean_diff.source {cfg.mean_diff['source']!r} is not one of the models {list(cfg.models)}")
    unknown = set(cfg.load) - {"device_map", "dtype", "revision", "device"}
    if unknown:
        _fail(where, f"load: unknown keys {sorted(unknown)}; allowed: device_map, dtype, revision, device")
    q = cfg.questions
    if "file" not in q and "domain" not in q:
        _fail(where, "questions needs 'domain' (held-out narrow-domain questions) or 'file' (JSONL of {question})")
