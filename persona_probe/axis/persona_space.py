"""Persona space: PCA over role vectors, and how PC1 lines up with the Assistant Axis.

The paper's check that the axis is meaningful is that the first principal
component of the role vectors points along it (Gemma layer 22: PC1 explains
48.8% of variance). Choices made here, on purpose:

* **Centred, not standardised** by default. Role vectors are centred (PCA
  always does) but each dimension keeps its scale: the axis is a direction in
  raw activation units, and standardising would reweight dimensions (residual
  streams have a few huge-magnitude dimensions) so PC1 would no longer be
  comparable to the axis. ``standardize=True`` is offered for exploration; the
  cosine is then computed in the standardised space's original coordinates
  (components are mapped back by the per-dimension scale) and is less meaningful.
* **Sign**: a principal component's sign is arbitrary, so we *flip PC1* (and
  the roles' PC1 scores) to make ``cos(PC1, axis) >= 0``. The reported cosine
  is therefore ``|cos|``, and a role with a high PC1 score is Assistant-like.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = ["PCAResult", "role_pca", "layer_summary", "write_figures"]


@dataclasses.dataclass
class PCAResult:
    layer: int
    names: list[str]
    components: np.ndarray          # [k, d], PC1 sign-aligned with the axis when one was given
    explained_ratio: np.ndarray     # [k]
    scores: np.ndarray              # [n_roles, k]
    cos_pc1_axis: float | None      # |cos| after the flip; None without an axis
    standardized: bool = False


def role_pca(role_vectors: Mapping[str, torch.Tensor], layer: int, axis: torch.Tensor | None = None,
             *, standardize: bool = False, n_components: int | None = None) -> PCAResult:
    """PCA of the role vectors at ``layer`` (each ``[L, d]``); ``axis`` ``[L, d]`` aligns PC1's sign."""
    from sklearn.decomposition import PCA

    names = list(role_vectors)
    if len(names) < 2:
        raise ValueError(f"PCA needs at least 2 role vectors, got {len(names)}")
    X = torch.stack([role_vectors[n][layer].to(torch.float32) for n in names]).numpy().astype(np.float64)
    scale = np.ones(X.shape[1])
    if standardize:
        scale = X.std(0)
        scale[scale == 0] = 1.0
        X = (X - X.mean(0)) / scale
    k = min(len(names), X.shape[1]) if n_components is None else n_components
    pca = PCA(n_components=k, svd_solver="full").fit(X)
    comps = pca.components_.copy()
    scores = pca.transform(X)
    cos = None
    if axis is not None:
        a = axis[layer].to(torch.float64).numpy()
        pc1 = comps[0] * scale  # the raw-space direction the roles vary along (no-op unless standardised)
        cos = float(pc1 @ a / (np.linalg.norm(pc1) * np.linalg.norm(a)))
        if cos < 0:
            comps[0] *= -1
            scores[:, 0] *= -1
            cos = -cos
    return PCAResult(layer, names, comps, pca.explained_variance_ratio_.copy(), scores, cos, standardize)


def layer_summary(role_vectors: Mapping[str, torch.Tensor], axis: torch.Tensor,
                  layers: Sequence[int] | None = None, *, standardize: bool = False) -> list[dict]:
    """Per layer: PC1 (and PC2) variance fraction and |cos(PC1, axis)|."""
    layers = range(axis.shape[0]) if layers is None else layers
    out = []
    for layer in layers:
        r = role_pca(role_vectors, layer, axis, standardize=standardize)
        out.append({"layer": int(layer), "pc1_variance": float(r.explained_ratio[0]),
                    "pc2_variance": float(r.explained_ratio[1]) if len(r.explained_ratio) > 1 else 0.0,
                    "cos_pc1_axis": r.cos_pc1_axis})
    return out


def write_figures(fig_dir: str | Path, role_vectors: Mapping[str, torch.Tensor], axis: torch.Tensor,
                  target_layer: int, summary: list[dict] | None = None) -> list[Path]:
    """Three HTML figures: variance explained (target layer), per-layer |cos|, roles on PC1/PC2.

    HTML files share one ``plotly.min.js`` in the folder, so they open offline.
    """
    import plotly.graph_objects as go

    from ..plots import save_figures
    from ..vectors import project

    summary = summary or layer_summary(role_vectors, axis)
    r = role_pca(role_vectors, target_layer, axis)
    figs = {}
    k = len(r.explained_ratio)
    figs["variance_explained"] = go.Figure(
        go.Bar(x=[f"PC{i + 1}" for i in range(k)], y=r.explained_ratio.tolist()),
        layout=dict(title=f"Role-vector variance explained, layer {target_layer}", yaxis_title="fraction"))
    figs["pc1_axis_cosine"] = go.Figure(
        go.Scatter(x=[s["layer"] for s in summary], y=[s["cos_pc1_axis"] for s in summary], mode="lines+markers"),
        layout=dict(title="|cos(PC1, Assistant Axis)| per layer (PC1 sign-aligned)", xaxis_title="layer",
                    yaxis_title="|cos|", yaxis_range=[0, 1]))
    proj = [float(project(role_vectors[n], axis, target_layer)) for n in r.names]
    figs["roles_pc1_pc2"] = go.Figure(
        go.Scatter(x=r.scores[:, 0].tolist(), y=(r.scores[:, 1] if k > 1 else np.zeros(len(r.names))).tolist(),
                   mode="markers+text", text=r.names, textposition="top center",
                   marker=dict(color=proj, colorscale="Viridis", showscale=True, colorbar=dict(title="axis proj."))),
        layout=dict(title=f"Roles on PC1/PC2, layer {target_layer} (colour: projection on the axis)",
                    xaxis_title="PC1 (toward Assistant)", yaxis_title="PC2"))
    return save_figures(fig_dir, figs)
