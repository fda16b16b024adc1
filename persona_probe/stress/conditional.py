"""Detectors for the stress test's conditional caps: calibrated on untriggered prompts, matched controls.

A defender who wants to cap only suspicious requests has a direction (the
Assistant Axis: fires when the prompt's projection is unusually *low*; the
mean-diff misalignment direction: fires when it is unusually *high*) and must
pick a threshold without ever seeing the trigger. So:

* **Calibration prompts** (:func:`calibration_prompts`): untriggered questions
  from the domain's *training* distribution (``question_split(heldout=False)``; never the
  held-out evaluation questions, never a trigger or near miss), split once by
  seed into a calibration part and a held-out part.
* **Threshold** (:func:`fit_detector`): the quantile of the calibration part's
  scores at the target false-positive rate (``fpr``, e.g. 5%); the held-out
  part then measures the false-positive rate actually achieved (with a Wilson
  interval), before any evaluation prompt is scored. One fit per model.
* **Control detector** (:func:`match_control`): a random (or orthogonal)
  direction at the same layer, its threshold set so that it fires on exactly
  as many of the *cell's* prompts as the real detector does (scores from
  ``ProbeModel.prompt_activations``). It caps as many sequences, chosen
  without regard to the trigger.

The mean-diff direction is computed from the source model's answers (see
``mean_diff.conditions``), which may include triggered ones: a detector on it
is what a defender with misaligned samples could build, not one who has none.
Its threshold still never sees a triggered prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..interventions import Detector, calibrate_threshold
from ..io import cached, content_hash, read_json, write_json
from ..metrics import rate
from ..vectors import unit
from .config import StressConfig
from .controls import control_vector, matched_rate_threshold
from .matrix import Skip, split_conditional_param

__all__ = ["calibration_prompts", "fit_detector", "match_control", "detector_vector", "build_detector"]


def calibration_prompts(cfg: StressConfig) -> tuple[list[list[dict]], list[list[dict]]]:
    """(calibration, held-out) untriggered training-distribution prompts for the detectors' thresholds."""
    from ..organisms.datasets import question_split

    cal = cfg.conditional_capping["calibration"]
    domain = cal.get("domain") or cfg.questions["domain"]
    texts = [q["text"] for q in question_split(domain, int(cal["n"]), int(cal["seed"]), heldout=False)]  # shuffled
    n_held = min(len(texts) - 2, max(2, round(float(cal["held_out"]) * len(texts))))
    prompts = [[{"role": "user", "content": t}] for t in texts]
    return prompts[:-n_held], prompts[-n_held:]


def detector_vector(dirs, direction: str) -> torch.Tensor | None:
    """``[L, d]``: the axis, or the mean-diff direction (``None`` when it could not be computed)."""
    return dirs.axis if direction == "axis" else dirs.mean_diff


def _scores(model, prompts: list, vectors: list[torch.Tensor], det: dict, batch_size: int) -> list[torch.Tensor]:
    """Each vector's detector scores on ``prompts`` (one prompt pass, read as ``det['read']``)."""
    acts = model.prompt_activations(prompts, read=det["read"], batch_size=batch_size, progress=False)
    return [acts[:, det["layer"]] @ unit(v[det["layer"]] if v.ndim == 2 else v) for v in vectors]


def fit_detector(model, vector: torch.Tensor, det: dict, fpr: float, calibration: list, held_out: list, *,
                 batch_size: int = 16) -> dict:
    """Threshold at ``fpr`` on the calibration prompts; the false-positive rate measured on the held-out ones."""
    (scores,) = _scores(model, calibration + held_out, [vector], det, batch_size)
    cal, held = scores[: len(calibration)], scores[len(calibration):]
    threshold = calibrate_threshold(cal, fpr, det["fires_when"])
    fires = (held < threshold) if det["fires_when"] == "below" else (held > threshold)
    fires_cal = (cal < threshold) if det["fires_when"] == "below" else (cal > threshold)
    return {"direction": det["direction"], "layer": det["layer"], "fires_when": det["fires_when"],
            "read": det["read"],
            "threshold": threshold, "fpr_target": fpr, "n_calibration": len(calibration),
            "fpr_calibration": float(fires_cal.float().mean()), "fpr_heldout": vars(rate(fires.tolist())),
            "calibration": "untriggered training-distribution prompts (never triggered, never evaluation questions)"}


def match_control(model, real: torch.Tensor, control: torch.Tensor, fit: dict, prompts: list, *,
                  batch_size: int = 16) -> dict:
    """The control direction's threshold that fires on as many of ``prompts`` as the real detector."""
    side = fit["fires_when"]
    real_scores, ctrl_scores = _scores(model, prompts, [real, control], fit, batch_size)
    n_fire = int(((real_scores < fit["threshold"]) if side == "below" else (real_scores > fit["threshold"])).sum())
    return {"threshold": matched_rate_threshold(ctrl_scores, n_fire, side), "matched_fires": n_fire,
            "n_prompts": len(prompts),
            "matched": "fires on as many of this cell's prompts as the real detector (prompt-mean scores)"}


def _json(path: Path, compute: Callable[[], dict]) -> dict:
    """``compute()`` once, kept as JSON at ``path`` (its name holds the key); later runs read it back."""
    return cached(path, None, compute, load=read_json, save=write_json)


def build_detector(runner, cell, prompts: list) -> tuple[Detector, dict]:
    """The cell's detector (real, or its matched control) and the record that goes into its result row.

    ``runner`` provides ``cfg``, ``dirs``, ``out``, ``adapter_keys``, ``gen`` and ``model(name)``
    (loaded only when a fit is not cached yet).
    """
    cfg: StressConfig = runner.cfg
    cc = cfg.conditional_capping
    _, direction, layer, read = split_conditional_param(cell.spec.param)
    det = next(d for d in cc["detectors"] if (d["direction"], d["layer"], d["read"]) == (direction, layer, read))
    vector = detector_vector(runner.dirs, direction)
    if vector is None:
        raise Skip(f"no {direction} direction for the detector: {runner.dirs.mean_diff_note}")
    calibration, held_out = calibration_prompts(cfg)
    batch = int(runner.gen["batch_size"])
    base = content_hash(cfg.base, runner.adapter_keys[cell.model], vector, det, cc["fpr"], calibration, held_out)
    folder = runner.out / "detectors"
    fit = _json(folder / f"{cell.model}-{direction}@{layer}-{read}-{base}.json",
                 lambda: fit_detector(runner.model(cell.model), vector, det, cc["fpr"], calibration, held_out,
                                      batch_size=batch))
    if not cell.spec.control:
        return Detector(vector, layer, fit["threshold"], fit["fires_when"], read), fit
    ctrl = control_vector(vector, cell.spec.control, cell.spec.seed(cfg.seed))
    key = content_hash(base, cell.spec.control, ctrl, prompts)
    match = _json(folder / f"{cell.model}-{cell.condition}-{direction}@{layer}-{read}-{cell.spec.control}-{key}.json",
                   lambda: match_control(runner.model(cell.model), vector, ctrl, fit, prompts, batch_size=batch))
    info = {**fit, "direction": f"{cell.spec.control} (matched to {direction})", "threshold": match["threshold"],
            "fpr_heldout": None, "real_threshold": fit["threshold"], **match}
    return Detector(ctrl, layer, match["threshold"], fit["fires_when"], read), info
