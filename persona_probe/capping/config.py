"""Capping configs: the published ``capping_config.pt`` structure, read, written, validated, applied.

Structure (the one the Assistant Axis reference tools read; Lu et al. 2026,
arXiv 2601.10387; see ``docs/facts.md``)::

    {"vectors": {name: {"layer": int, "vector": Tensor[d]}},
     "experiments": [{"id": "layers_{start}:{end}-p{q}",
                      "interventions": [{"vector": name, "cap": float}, ...]}]}

Sign convention - the one thing never to guess. The reference code applies a
CEILING on the stored vector: ``h <- h - v^ * max(<h, v^> - cap, 0)``. What we
*mean* by capping is a FLOOR on the Assistant Axis at ``tau`` (the percentile
of the axis projections of some rollouts): keep the model at least this
Assistant-like. A ceiling at ``-tau`` on ``-axis`` is exactly that floor, so
:func:`~persona_probe.capping.calibrate.calibrate` writes our configs in the published ceiling form - the stored
vector is ``-axis[layer]`` and ``cap`` is ``-tau`` - which the reference tools
apply correctly too. Our files also carry ``"convention": "ceiling"``,
``"source": "persona-probe"`` and a ``"calibration"`` record (which rollouts,
which percentiles). Subspace experiments (:mod:`persona_probe.capping.subspace`)
live under their own keys, which this module and the reference code ignore.
Published files have no ``convention`` key:
:func:`load_capping_config` then assumes ``"ceiling"`` (what the reference code
does) and logs a warning saying so, unless the caller states one.
"""

from __future__ import annotations

import difflib
import logging
import math
import numbers
import os
import re
from pathlib import Path
from typing import Any

import torch

from ..interventions import Cap
from ..io import atomic_write, load_pt

log = logging.getLogger(__name__)

__all__ = [
    "CONVENTIONS", "experiment_id", "parse_experiment_id", "save_capping_config",
    "load_capping_config", "validate_config", "list_experiments", "experiment_interventions",
]

CONVENTIONS = ("ceiling", "floor")
_ID_RE = re.compile(r"^layers_(\d+):(\d+)-p(\d*\.?\d+)$")


def _fmt_q(q: float) -> str:
    return format(float(q), "g")  # 0.25 -> "0.25", 0.5 -> "0.5", 0.01 -> "0.01"


def experiment_id(start: int, end: int, q: float) -> str:
    return f"layers_{start}:{end}-p{_fmt_q(q)}"


def parse_experiment_id(exp_id: str) -> tuple[int, int, float]:
    """``"layers_46:54-p0.25" -> (46, 54, 0.25)`` (end exclusive); ``ValueError`` when malformed."""
    m = _ID_RE.match(exp_id.strip()) if isinstance(exp_id, str) else None
    if not m:
        raise ValueError(f"malformed experiment id {exp_id!r}; expected 'layers_<start>:<end>-p<q>', "
                         "e.g. 'layers_46:54-p0.25'")
    start, end, q = int(m.group(1)), int(m.group(2)), float(m.group(3))
    if end <= start:
        raise ValueError(f"experiment id {exp_id!r}: end ({end}) must be greater than start ({start}); "
                         "end is exclusive")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"experiment id {exp_id!r}: percentile {q} must be in [0, 1]")
    return start, end, q


def save_capping_config(path: str | os.PathLike, cfg: dict) -> Path:
    """``torch.save`` to a temp file and rename: a ``.pt`` the reference tools can read."""
    validate_config(cfg, where=str(path))
    with atomic_write(path, "wb") as fh:
        torch.save(cfg, fh)
    return Path(path)


def validate_config(cfg: Any, *, where: str = "capping config") -> dict:
    """Check the published structure; raise ``ValueError`` naming the first problem."""
    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: expected a dict with 'vectors' and 'experiments', got {type(cfg).__name__}")
    for key in ("vectors", "experiments"):
        if key not in cfg:
            raise ValueError(f"{where}: missing key {key!r}; a capping config has 'vectors' and 'experiments'")
    if not isinstance(cfg["vectors"], dict):
        raise ValueError(f"{where}: 'vectors' must be a dict name -> {{'layer', 'vector'}}")
    for name, entry in cfg["vectors"].items():
        if not isinstance(entry, dict) or "layer" not in entry or "vector" not in entry:
            raise ValueError(f"{where}: vector {name!r} needs 'layer' and 'vector' keys")
        layer = entry["layer"]
        if (isinstance(layer, torch.Tensor) and layer.numel() == 1 and not layer.is_floating_point()) or (
                isinstance(layer, numbers.Integral) and not isinstance(layer, bool)):
            entry["layer"] = layer = int(layer)  # a 0-d tensor or a numpy integer, as files written from numpy hold
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
            raise ValueError(f"{where}: vector {name!r} has layer {layer!r}; expected a non-negative int")
        vec = entry["vector"]
        if not isinstance(vec, torch.Tensor) or vec.ndim != 1:
            shape = tuple(vec.shape) if isinstance(vec, torch.Tensor) else type(vec).__name__
            raise ValueError(f"{where}: vector {name!r} must be a 1-D tensor [d], got {shape}")
    if not isinstance(cfg["experiments"], list):
        raise ValueError(f"{where}: 'experiments' must be a list")
    seen = set()
    for i, exp in enumerate(cfg["experiments"]):
        if not isinstance(exp, dict) or "id" not in exp or "interventions" not in exp:
            raise ValueError(f"{where}: experiment {i} needs 'id' and 'interventions'")
        if exp["id"] in seen:
            raise ValueError(f"{where}: experiment id {exp['id']!r} appears twice")
        seen.add(exp["id"])
        for j, iv in enumerate(exp["interventions"]):
            if not isinstance(iv, dict) or "vector" not in iv:
                raise ValueError(f"{where}: experiment {exp['id']!r} intervention {j} needs a 'vector' name")
            if iv["vector"] not in cfg["vectors"]:
                raise ValueError(f"{where}: experiment {exp['id']!r} names vector {iv['vector']!r}, "
                                 "which is not in 'vectors'")
            if "cap" in iv and iv["cap"] is not None:
                cap = iv["cap"]
                if isinstance(cap, (str, bool)) or not isinstance(cap, (numbers.Real, torch.Tensor)):
                    raise ValueError(f"{where}: experiment {exp['id']!r} intervention {j} has cap {cap!r}; "
                                     f"expected a number")
                iv["cap"] = cap = float(cap)  # numpy and 0-d tensor caps become plain floats
                if not math.isfinite(cap):
                    raise ValueError(f"{where}: experiment {exp['id']!r} intervention {j} "
                                     f"has a non-finite cap {cap!r}")
    conv = cfg.get("convention")
    if conv is not None and conv not in CONVENTIONS:
        raise ValueError(f"{where}: convention {conv!r} is not one of {CONVENTIONS}")
    return cfg


def load_capping_config(path: str | os.PathLike, convention: str | None = None) -> dict:
    """Read a config with ``torch.load(weights_only=True)`` and validate it.

    The file's own ``convention`` wins; stating a different one is an error.
    A file without one (the published configs) gets ``convention`` or, if not
    given, ``"ceiling"`` - what the reference code applies - with a warning.
    """
    if convention is not None and convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    cfg = validate_config(load_pt(path), where=str(path))
    stored = cfg.get("convention")
    if stored is not None:
        if convention is not None and convention != stored:
            raise ValueError(f"{path}: the file says convention {stored!r} but {convention!r} was requested")
    elif convention is not None:
        cfg["convention"] = convention
        log.info("%s has no 'convention' key; applying it as %s (as requested)", path, convention)
    else:
        cfg["convention"] = "ceiling"
        log.warning("%s has no 'convention' key: ASSUMING 'ceiling' (h <- h - v^ max(<h,v^> - cap, 0)), "
                    "as the reference code applies it. Pass convention= to state it explicitly.", path)
    return cfg


def list_experiments(cfg: dict) -> list[str]:
    return [exp["id"] for exp in cfg["experiments"]]


def experiment_interventions(cfg: dict, experiment_id: str, model=None, *, math_dtype: str = "float32") -> list[Cap]:
    """The ``Cap`` ops of one experiment (one per intervention with a ``cap``).

    With ``model``, vector widths and layers are checked against it. Unknown
    ids raise a ``ValueError`` listing the closest ids. ``math_dtype="model"``
    reproduces the reference implementation's arithmetic (vector cast to the
    model's dtype before it is normalised; see :mod:`persona_probe.edits`).
    """
    by_id = {exp["id"]: exp for exp in cfg["experiments"]}
    if experiment_id not in by_id and str(experiment_id).startswith("subspace_"):
        raise ValueError(f"{experiment_id!r} is a subspace experiment, not a single-axis cap: read it with "
                         f"persona_probe.capping.subspace_experiment_interventions (stress configs: "
                         f"interventions.subspace_capping)")
    if experiment_id not in by_id:
        close = difflib.get_close_matches(experiment_id, list(by_id), n=5, cutoff=0.5)
        hint = f"; close matches: {close}" if close else f"; {len(by_id)} experiments, e.g. {list(by_id)[:5]}"
        raise ValueError(f"unknown experiment id {experiment_id!r}{hint}")
    mode = cfg.get("convention") or "ceiling"
    caps = []
    for iv in by_id[experiment_id]["interventions"]:
        if iv.get("cap") is None:
            continue
        entry = cfg["vectors"][iv["vector"]]
        layer, vec = int(entry["layer"]), entry["vector"]
        if model is not None:
            if vec.shape[-1] != model.d_model:
                raise ValueError(f"experiment {experiment_id!r}: vector {iv['vector']!r} has width {vec.shape[-1]} "
                                 f"but the model's hidden size is {model.d_model}; is the config for another model?")
            if layer >= model.n_layers:
                raise ValueError(f"experiment {experiment_id!r}: vector {iv['vector']!r} is at layer {layer} "
                                 f"but the model has {model.n_layers} layers (valid: 0..{model.n_layers - 1})")
        caps.append(Cap(vec, [layer], tau=float(iv["cap"]), mode=mode, math_dtype=math_dtype))
    return caps
