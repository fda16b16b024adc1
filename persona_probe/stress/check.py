"""The second half of config validation: what only the files and the model's config can tell.

:func:`check_stress_config` runs before any model loads (``stress run`` and
``stress run --dry-run`` run exactly this pass, after the schema of
:mod:`.schema`): adapter folders exist and are peft adapters, the axis, capping
configs, calibration activations and question file exist and read, experiment
ids are in their capping config, and every layer a cell would edit (steering,
ablations, the capped layers of each experiment) exists in the model, whose
depth and width come from its ``config.json`` alone
(:func:`persona_probe.loading.model_dims`). Problems are collected and reported
together.
"""

from __future__ import annotations

import logging
import types
from pathlib import Path

from ..io import load_tensors
from .config import StressConfig
from .matrix import Directions

log = logging.getLogger(__name__)

__all__ = ["check_stress_config", "load_directions"]


def load_directions(cfg: StressConfig, dims: tuple[int, int] | None = None) -> Directions:
    """The axis, calibration activations and capping configs of ``cfg``; ids and (with ``dims``) layers checked."""
    from ..axis import load_axis
    from ..capping import (
                           experiment_interventions,
                           load_capping_config,
                           subspace_experiment_interventions,
                           validate_subspaces,
    )

    axis = load_axis(cfg.axis)
    calib_path = cfg.calibration_activations or cfg.axis.parent / "default_activations.safetensors"
    calibration = load_tensors(calib_path)[0]["acts"].float() if calib_path.exists() else None
    if calibration is not None and calibration.shape[1:] != axis.shape:
        raise ValueError(f"{calib_path}: calibration activations {tuple(calibration.shape[1:])} do not match "
                         f"the axis {tuple(axis.shape)}")
    dirs = Directions(
        axis=axis, calibration=calibration,
        capping=load_capping_config(cfg.capping_config) if cfg.capping_config else None,
        triggered_capping=load_capping_config(cfg.triggered_capping_config) if cfg.triggered_capping_config else None)
    shape = types.SimpleNamespace(n_layers=dims[0], d_model=dims[1]) if dims else None
    conditional = list((cfg.conditional_capping or {}).get("caps", []))
    subspace = list(cfg.subspace_capping) + [c for c in conditional if c.startswith("subspace_")]
    if subspace:
        validate_subspaces(dirs.capping, where=str(cfg.capping_config))
    single = list(cfg.capping) + [c for c in conditional if not c.startswith("subspace_")]
    for ids, config, path in ((single + subspace, dirs.capping, cfg.capping_config),
                              (cfg.triggered_capping, dirs.triggered_capping, cfg.triggered_capping_config)):
        for exp_id in ids:  # unknown ids fail now, naming close matches; layers and widths against the model
            read = subspace_experiment_interventions if exp_id.startswith("subspace_") else experiment_interventions
            read(config, exp_id, shape)
        if ids and calibration is None:
            raise ValueError(f"capping controls need the calibration rollouts' activations ({calib_path} is missing); "
                             f"set calibration_activations to the file {path} was calibrated on")
    return dirs


def _file_problems(cfg: StressConfig) -> list[str]:
    problems = []
    for name, adapter in cfg.models.items():
        if adapter is None:
            continue
        folder = Path(adapter)
        if not folder.is_dir():
            problems.append(f"models.{name}: {folder} does not exist; train it with `persona-probe organism train` "
                            f"or fix the path (null means the base model)")
        elif not (folder / "adapter_config.json").is_file():
            problems.append(f"models.{name}: {folder} is not a peft adapter folder (no adapter_config.json)")
        else:
            problems += _edit_problems(cfg, name, folder)
    for key in ("axis", "capping_config", "triggered_capping_config", "calibration_activations"):
        path = getattr(cfg, key)
        if path is not None and not Path(path).is_file():
            problems.append(f"{key}: {path}: no such file")
    if "file" in cfg.questions:
        qfile = Path(cfg.questions["file"])
        if not qfile.is_file():
            problems.append(f"questions.file: {qfile}: no such file")
    return problems


def _edit_problems(cfg: StressConfig, name: str, folder: Path) -> list[str]:
    """An adapter applied as LoraEdit graph edits (``ndif:`` base or ``load.adapter_mode: edit``): its features,
    and for ``ndif:`` its per-request size against ``load.max_adapter_mb``."""
    from ..lora import DEFAULT_MAX_ADAPTER_MB, check_remote_adapter

    remote = cfg.base.startswith("ndif:")
    if not remote and cfg.load.get("adapter_mode") != "edit":
        return []
    try:
        check_remote_adapter(folder, cfg.load.get("max_adapter_mb", DEFAULT_MAX_ADAPTER_MB) if remote else None)
    except ValueError as exc:
        return [f"models.{name}: {exc}"]
    return []


def _layer_problems(cfg: StressConfig, dims: tuple[int, int]) -> list[str]:
    n_layers, d_model = dims
    problems = []
    detectors = {"conditional_capping.detectors": {"layers": [d["layer"] for d in
                                                          (cfg.conditional_capping or {}).get("detectors", [])]}}
    for key in ("steering", "axis_ablation", "mean_diff_ablation", "positive_control", *detectors):
        spec = detectors[key] if key in detectors else getattr(cfg, key)
        bad = [layer for layer in (spec or {}).get("layers", []) if layer >= n_layers]
        if bad:
            problems.append(f"interventions.{key}.layers: {bad} out of range; {cfg.base} has {n_layers} layers "
                            f"(valid: 0..{n_layers - 1})")
    return problems


def _axis_problems(cfg: StressConfig, dims: tuple[int, int]) -> list[str]:
    from ..axis import load_axis

    try:
        shape = tuple(load_axis(cfg.axis).shape)
    except (ValueError, FileNotFoundError) as exc:
        return [f"axis: {exc}"]
    if shape != tuple(dims):
        return [f"axis: {cfg.axis} is {list(shape)} but {cfg.base} has {dims[0]} layers of width {dims[1]}; "
                f"was it built on another model?"]
    return []


def check_stress_config(cfg: StressConfig) -> Directions:
    """Check files and layers against the model's config (no weights loaded); returns the loaded directions.

    Raises one ``ValueError`` listing every problem found.
    """
    from ..loading import model_dims

    problems = _file_problems(cfg)
    dims = None
    try:
        dims = model_dims(cfg.base, revision=cfg.load.get("revision"))
    except ValueError as exc:
        problems.append(f"base: {exc}")
    if dims is not None:
        problems += _layer_problems(cfg, dims)
    if not problems and dims is not None:
        problems += _axis_problems(cfg, dims)
    dirs = None
    if not problems:
        try:
            dirs = load_directions(cfg, dims)
        except (ValueError, FileNotFoundError) as exc:
            problems.append(str(exc))
    if problems:
        head = f"{cfg.source}: " + ("" if len(problems) == 1 else f"{len(problems)} problems:\n  - ")
        raise ValueError(head + "\n  - ".join(problems))
    return dirs
