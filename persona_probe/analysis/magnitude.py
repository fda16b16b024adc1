"""Multi-persona magnitude scoring: does a basis of many persona directions see the trigger where one axis does not?

Why: the Assistant Axis is ``default - mean(role vectors)``, i.e. minus the
*average* of the persona directions ``r_i - default``. A triggered persona
that moves toward some roles and away from others can cancel out in that
average and leave the axis projection unchanged (docs/facts.md, persona
vectors: a trait decomposition can separate an EM model from its control
where one direction does not). So we keep the directions separate:

* per-persona magnitude ``m_i(h) = <h - default, unit(r_i - default)>``: how
  far a response has moved from the Assistant toward persona ``i``;
* a non-negative decomposition ``h - default ~= sum_i w_i (r_i - default)``,
  ``w >= 0`` (scipy NNLS): how much of each persona is mixed in, plus the
  fraction of the displacement the personas explain at all;
* triggered vs untriggered organism responses, scored (a) by the single axis
  projection (no fitting, sign fixed a priori: triggered = less Assistant),
  (b) by a cross-validated probe on that one projection, (c) by a
  cross-validated probe on the k persona magnitudes, (d) on the NNLS weights,
  and (e) on k random directions (the control the field asks for: more
  features alone can separate small samples). AUROCs carry stratified
  bootstrap intervals; (c) - (b) carries a paired bootstrap interval.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..vectors import random_like, unit
from .common import (
    auroc_ci,
    cv_scores,
    default_centre,
    mean_ci,
    paired_auroc_diff,
    run_provenance,
    target_layer,
    write_outputs,
)

log = logging.getLogger(__name__)

__all__ = ["PersonaBasis", "persona_basis", "persona_magnitudes", "nnls_weights", "separation", "run"]


@dataclasses.dataclass
class PersonaBasis:
    """Persona directions at one layer: ``raw[i] = r_i - centre`` and their unit vectors."""

    names: list[str]
    raw: torch.Tensor      # [k, d]
    units: torch.Tensor    # [k, d]
    centre: torch.Tensor   # [d]
    layer: int


def persona_basis(role_vectors: dict[str, torch.Tensor], centre: torch.Tensor, layer: int,
                  names: Sequence[str] | None = None) -> PersonaBasis:
    """Directions from the Assistant (``centre``, the default vector ``[L, d]``) to each role at ``layer``."""
    names = list(role_vectors) if names is None else list(names)
    missing = [n for n in names if n not in role_vectors]
    if missing:
        raise ValueError(f"no role vectors named {missing}; the axis run has {sorted(role_vectors)}")
    if len(names) < 2:
        raise ValueError(f"a persona basis needs >= 2 role vectors, got {len(names)}; rebuild the axis with more "
                         f"roles (axis build --roles) or lower its min_count so fewer roles are dropped")
    c = centre[layer].float()
    raw = torch.stack([role_vectors[n][layer].float() - c for n in names])
    zero = [n for n, v in zip(names, raw) if float(v.norm()) == 0.0]
    if zero:
        raise ValueError(f"role vectors {zero} equal the default vector at layer {layer}: no direction")
    return PersonaBasis(names, raw, unit(raw), c, layer)


def persona_magnitudes(acts: torch.Tensor, basis: PersonaBasis) -> torch.Tensor:
    """``[n, d]`` activations at the basis layer -> ``[n, k]`` signed magnitudes toward each persona."""
    return (acts.float() - basis.centre) @ basis.units.T


def nnls_weights(acts: torch.Tensor, basis: PersonaBasis) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative weights ``[n, k]`` with ``h - centre ~= w @ raw``, and the explained fraction ``[n]``.

    The explained fraction is ``1 - |residual|^2 / |h - centre|^2``: near 0
    means the response moved somewhere no persona of the basis points.
    """
    from scipy.optimize import nnls

    A = basis.raw.double().T.numpy()  # [d, k]
    X = (acts.double() - basis.centre.double()).numpy()
    weights, explained = np.zeros((len(X), A.shape[1])), np.zeros(len(X))
    for i, x in enumerate(X):
        w, res = nnls(A, x)
        weights[i] = w
        norm2 = float(x @ x)
        explained[i] = 1.0 - res ** 2 / norm2 if norm2 > 0 else float("nan")
    return weights, explained


def separation(y: np.ndarray, features: dict[str, np.ndarray], *, fixed: dict[str, np.ndarray] | None = None,
               folds: int = 5, seed: int = 0, n_boot: int = 1000) -> dict:
    """AUROC of each score: ``fixed`` scores as they are, ``features`` through a cross-validated probe."""
    out = {}
    for name, s in (fixed or {}).items():
        out[name] = {**auroc_ci(y, s, n_boot=n_boot, seed=seed), "fitted": False, "scores": np.asarray(s)}
    for name, X in features.items():
        s, fold_aucs = cv_scores(X, y, folds=folds, seed=seed)
        out[name] = {**auroc_ci(y, s, n_boot=n_boot, seed=seed), "fitted": True, "n_features": int(X.shape[1]),
                     "fold_aurocs": fold_aucs, "scores": s}
    return out


def _group_stats(values: np.ndarray, y: np.ndarray, names: list[str]) -> list[dict]:
    """Per persona: mean in each group with t intervals, and the Welch difference with its interval."""
    from scipy import stats

    rows = []
    for j, name in enumerate(names):
        a, b = values[y == 1, j], values[y == 0, j]
        t = stats.ttest_ind(a, b, equal_var=False)
        ci = t.confidence_interval()
        rows.append({"persona": name, "triggered": mean_ci(a), "untriggered": mean_ci(b),
                     "diff": float(a.mean() - b.mean()), "diff_lo": float(ci.low), "diff_hi": float(ci.high),
                     "p_welch": float(t.pvalue)})
    return rows


def _figures(stats_mag: list[dict], stats_w: list[dict], sep: dict, y: np.ndarray) -> dict:
    import plotly.graph_objects as go
    from sklearn.metrics import roc_curve

    from ..plots import encoded

    figs = {}
    for key, rows, title in (("magnitudes", stats_mag, "Mean magnitude toward each persona"),
                             ("nnls_weights", stats_w, "Mean NNLS weight of each persona")):
        fig = go.Figure()
        for group, condition in (("untriggered", "no_trigger"), ("triggered", "trigger")):
            m = [r[group]["mean"] for r in rows]
            fig.add_bar(name=f"organism, {condition}", x=[r["persona"] for r in rows], y=m,
                        error_y=dict(type="data", symmetric=False,
                                     array=[(r[group]["hi"] or v) - v for r, v in zip(rows, m)],
                                     arrayminus=[v - (r[group]["lo"] or v) for r, v in zip(rows, m)]),
                        **encoded(condition, kind="bar", legend=True))
        fig.update_layout(title=f"{title} (95% t intervals)", barmode="group", yaxis_title=key.replace("_", " "))
        figs[key] = fig
    fig = go.Figure()
    for name, res in sep.items():
        fpr, tpr, _ = roc_curve(y, res["scores"])
        fig.add_scatter(x=fpr, y=tpr, mode="lines",
                        name=f"{name}: {res['auroc']:.2f} [{res['lo']:.2f}, {res['hi']:.2f}]")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"), name="chance")
    fig.update_layout(title="Triggered vs untriggered organism responses: ROC (AUROC, 95% bootstrap)",
                      xaxis_title="false positive rate", yaxis_title="true positive rate")
    figs["roc"] = fig
    return figs


def run(run_folder, *, model: str = "organism", layer: int | None = None, personas: Sequence[str] | None = None,
        folds: int = 5, n_boot: int = 1000, seed: int = 0, progress: bool = True) -> dict:
    """Score the run's triggered vs untriggered answers of ``model`` on the persona basis; write figures + numbers.

    Reads only files of the run (no generation), so it takes seconds.
    """
    from .rundir import RunFolder

    run = run_folder if isinstance(run_folder, RunFolder) else RunFolder(Path(run_folder))
    axis = run.axis()
    layer = target_layer(run) if layer is None else int(layer)
    if not 0 <= layer < axis.shape[0]:
        raise ValueError(f"layer {layer} is out of range for an axis of {axis.shape[0]} layers")
    centre = default_centre(run)
    basis = persona_basis(run.role_vectors().vectors, centre, layer, personas)
    trig, untrig = run.activations(model, "trigger")[:, layer], run.activations(model, "no_trigger")[:, layer]
    acts = torch.cat([trig, untrig])
    y = np.r_[np.ones(len(trig), int), np.zeros(len(untrig), int)]
    if min(len(trig), len(untrig)) < 2:
        raise ValueError(f"need >= 2 answers per condition for {model!r}; have {len(trig)} triggered and "
                         f"{len(untrig)} untriggered (raise questions.n in the stress config)")
    mags = persona_magnitudes(acts, basis).numpy()
    weights, explained = nnls_weights(acts, basis)
    axis_proj = ((acts.float() - basis.centre) @ unit(axis[layer])).numpy()
    rand_dirs = unit(torch.stack([random_like(basis.raw[i], seed=seed + 1 + i) for i in range(len(basis.names))]))
    rand_proj = ((acts.float() - basis.centre) @ rand_dirs.T).numpy()
    sep = separation(y, {"axis (probe)": axis_proj[:, None], "multi-persona (probe)": mags,
                         "nnls weights (probe)": weights, f"{len(basis.names)} random directions (probe)": rand_proj},
                     fixed={"axis (-projection)": -axis_proj}, folds=folds, seed=seed, n_boot=n_boot)
    diff = paired_auroc_diff(y, sep["multi-persona (probe)"]["scores"], sep["axis (probe)"]["scores"],
                             n_boot=n_boot, seed=seed)
    stats_mag, stats_w = _group_stats(mags, y, basis.names), _group_stats(weights, y, basis.names)
    out = run.out_dir("magnitude")
    figs = _figures(stats_mag, stats_w, sep, y)
    numbers = {
        "analysis": "magnitude", "provenance": {**run_provenance(run, [model]), "model": model, "seed": seed},
        "layer": layer, "personas": basis.names, "centre": "default vector (mean of the axis build's default rollouts)",
        "n": {"triggered": len(trig), "untriggered": len(untrig)}, "folds": folds, "n_boot": n_boot,
        "auroc": {k: {kk: vv for kk, vv in v.items() if kk != "scores"} for k, v in sep.items()},
        "multi_minus_axis_probe": diff,
        "magnitudes": stats_mag, "nnls_weights": stats_w,
        "nnls_explained": {"triggered": mean_ci(explained[y == 1]), "untriggered": mean_ci(explained[y == 0])},
        "axis_projection": {"triggered": mean_ci(axis_proj[y == 1]), "untriggered": mean_ci(axis_proj[y == 0])},
        "notes": ["magnitudes are signed projections of (h - default) on unit(role - default)",
                  "axis (-projection) is unfitted; probes are standardised logistic regressions scored out of fold",
                  "per-persona p-values are not corrected for the number of personas"],
    }
    numbers = write_outputs(out, numbers, figs)
    log.info("magnitude: axis AUROC %.2f, multi-persona AUROC %.2f (n=%d+%d)", sep["axis (probe)"]["auroc"],
             sep["multi-persona (probe)"]["auroc"], len(trig), len(untrig))
    return numbers
