"""Preventative steering (Chen et al. 2025, "Persona Vectors", arXiv 2507.21509): retrain the organism with a steer.

``coef * v`` is added at one layer *during fine-tuning only*, so the model need
not learn to move along ``v`` itself. :func:`train_preventative` retrains the
run's organism on its own data and settings with that hook (and, when a step
cap makes the step count differ, an unsteered twin with the same steps, so the
comparison never confounds steering with training length);
:func:`trigger_effect` measures the misaligned rate with vs without the trigger
for both (Wilson intervals, exact tests). Used by :mod:`.persona_vectors`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..io import read_json
from .rundir import RunFolder

log = logging.getLogger(__name__)

__all__ = ["train_preventative", "trigger_effect"]


def _organism_inputs(run: RunFolder) -> tuple[Path, dict, list[dict]]:
    from ..organisms.datasets import dataset_hash, read_dataset

    adapter = run.config.models.get("organism")
    if not adapter:
        raise ValueError(f"{run.root / 'stress_config.yaml'}: no 'organism' model with an adapter")
    adapter = Path(adapter)
    manifest = read_json(adapter / "manifest.json")
    data = adapter.parent / "data" / "organism.jsonl"
    if not data.exists():
        raise FileNotFoundError(f"{data}: the organism's training set is missing (written by make_organisms)")
    records = read_dataset(data)
    if dataset_hash(records) != manifest["data_hash"]:
        raise ValueError(f"{data} no longer matches the data {adapter} was trained on (hash "
                         f"{dataset_hash(records)} vs {manifest['data_hash']}); rebuild the organisms")
    return adapter, manifest, records


def train_preventative(run: RunFolder, vector: torch.Tensor, layer: int, coef: float, out: str | Path, *,
                       max_steps: int | None = None, progress: bool = True) -> dict:
    """Retrain the organism with ``coef * vector`` added at ``layer`` during training; returns adapters + manifests.

    Same data and :class:`TrainConfig` as the run's organism (from its manifest), ``max_steps`` optionally
    lowered. When the step count differs from the run's organism, an unsteered twin with the same steps is
    trained as the reference (``organism_same_steps/``). Both resume via ``train_adapter``'s key.
    """
    import dataclasses

    from ..loading import load_model
    from ..organisms.train import TrainConfig, train_adapter

    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    adapter, manifest, records = _organism_inputs(run)
    cfg = TrainConfig.from_dict(manifest["train"])
    if max_steps is not None:
        cfg = dataclasses.replace(cfg, max_steps=min(max_steps, cfg.max_steps or max_steps))
    out = Path(out)
    model = load_model(run.config.base)
    meta = {**manifest.get("data", {}), "kind": "organism, preventative steering", "trait_layer": layer, "coef": coef}
    steered = train_adapter(model, records, out / "organism_preventative", cfg, data_meta=meta,
                            preventative=(vector, layer, float(coef)), progress=progress)
    ref_path, ref = adapter, manifest
    if steered["steps"] != manifest["steps"]:
        log.info("steered organism trained %d steps vs the run's %d; training an unsteered twin for the comparison",
                 steered["steps"], manifest["steps"])
        ref_path = out / "organism_same_steps"
        ref = train_adapter(model, records, ref_path, cfg, data_meta={**manifest.get("data", {}),
                                                                       "kind": "organism, same steps"},
                            progress=progress)
    return {"steered": str(out / "organism_preventative"), "reference": str(ref_path),
            "steered_manifest": steered, "reference_manifest": ref,
            "reference_is_run_organism": ref_path == adapter}


def trigger_effect(run: RunFolder, adapters: dict[str, str], out: str | Path, *, n: int = 30, judge=None,
                   max_new_tokens: int = 64, progress: bool = True) -> dict:
    """``trigger_eval`` on held-out questions for each adapter; plus steered vs reference under the trigger."""
    from ..metrics import Rate, compare
    from ..organisms.pipeline import trigger_eval

    _, manifest, _ = _organism_inputs(run)
    data = manifest.get("data", {})
    recipe = {"model": run.config.base,
              "dataset": {"domain": data.get("domain", "finance"), "seed": data.get("seed", 0),
                          "trigger": run.config.trigger},
              "eval": {"max_new_tokens": max_new_tokens, "temperature": 1.0}}
    summary = trigger_eval(recipe, out, models=adapters, judge=judge, n=n, progress=progress)
    cells = {(c["model"], c["condition"]): c for c in summary["cells"]}
    names = list(adapters)
    result = {"judge": summary["judge"], "n_per_condition": summary["n_per_condition"],
              "generation": summary["generation"], "cells": [
                  {k: c[k] for k in ("model", "condition", "n", "misaligned", "coherent", "samples")}
                  for c in summary["cells"]],
              "trigger_effect": {m: _diff(d) for m, d in summary["trigger_effect"].items()}}
    if len(names) == 2:
        a, b = (Rate(**cells[(m, "trigger")]["misaligned"]) for m in names)
        if a.n and b.n:
            result["triggered_steered_vs_reference"] = _diff(vars(compare(a, b)))
    return result


def _diff(d: dict) -> dict:
    return {k: (vars(v) if hasattr(v, "__dataclass_fields__") else v) for k, v in d.items()}
