"""Assistant Axis math: role vectors, default vector, axis; our files and the reference's.

Definitions follow Lu et al. 2026 ("The Assistant Axis", arXiv 2601.10387):

* a *role vector* is the mean response activation of the responses that the
  role-adherence judge scored fully in role (score 3); a role with fewer than
  ``min_count`` such responses is dropped (the reference uses 50 of 1,200);
* the *default vector* is the unfiltered mean over default-prompt responses;
* ``axis = default - mean(role vectors)``, each role weighted equally (so a role
  with many kept responses does not pull the axis more than one with few).

Everything here is a pure function on float32 tensors so it can be tested on
synthetic data. Our files are safetensors (no pickle); the reference's
``assistant_axis.pt`` is read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

import torch

from ..io import atomic_write, load_pt, load_tensors, save_tensors

log = logging.getLogger(__name__)

__all__ = [
    "RoleVectors", "compute_role_vectors", "default_vector", "compute_axis",
    "save_axis", "load_axis", "export_reference_axis", "save_role_vectors", "load_role_vectors",
]

_ROLE_PREFIX = "role/"


@dataclasses.dataclass
class RoleVectors:
    """Role vectors plus the report of how they were made.

    ``counts`` is the number of responses averaged per kept role; ``dropped``
    maps each dropped role to its count of qualifying responses. ``judged`` is
    False when no judge filtered the responses (every response counted).
    """

    vectors: dict[str, torch.Tensor]
    counts: dict[str, int]
    dropped: dict[str, int]
    judged: bool
    score_required: int = 3
    min_count: int = 1

    def report(self) -> dict:
        return {"counts": dict(self.counts), "dropped": dict(self.dropped), "judged": self.judged,
                "score_required": self.score_required, "min_count": self.min_count}


def _qualifies(score, required: int) -> bool:
    # Logprob judges return probability-weighted floats (e.g. 2.93): round to the
    # nearest integer grade. A missing score (None) never qualifies.
    return score is not None and int(round(float(score))) >= required


def compute_role_vectors(
    acts: torch.Tensor,
    role_labels: Sequence[str],
    scores: Sequence[float | None] | None = None,
    min_count: int = 1,
    score_required: int = 3,
) -> RoleVectors:
    """Mean activation per role over qualifying responses; ``acts`` is ``[n, L, d]``.

    With ``scores=None`` every response qualifies and the result says ``judged=False``.
    """
    if acts.ndim != 3:
        raise ValueError(f"acts must be [n, n_layers, d]; got shape {tuple(acts.shape)}")
    if len(role_labels) != acts.shape[0]:
        raise ValueError(f"{len(role_labels)} role labels for {acts.shape[0]} activation rows")
    if scores is not None and len(scores) != acts.shape[0]:
        raise ValueError(f"{len(scores)} scores for {acts.shape[0]} activation rows")
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    acts = acts.to(torch.float32)
    rows: dict[str, list[int]] = {}
    for i, role in enumerate(role_labels):
        rows.setdefault(role, [])
        if scores is None or _qualifies(scores[i], score_required):
            rows[role].append(i)
    vectors, counts, dropped = {}, {}, {}
    for role, idx in rows.items():
        if len(idx) < min_count:
            dropped[role] = len(idx)
            continue
        vectors[role] = acts[idx].mean(0)
        counts[role] = len(idx)
    if dropped:
        log.info("dropped %d role(s) with < %d qualifying responses: %s", len(dropped), min_count, dropped)
    return RoleVectors(vectors, counts, dropped, judged=scores is not None,
                       score_required=score_required, min_count=min_count)


def default_vector(acts_default: torch.Tensor) -> torch.Tensor:
    """Unfiltered mean of the default-prompt responses: ``[n, L, d] -> [L, d]``."""
    if acts_default.ndim != 3 or acts_default.shape[0] == 0:
        raise ValueError(f"default activations must be a non-empty [n, L, d]; got {tuple(acts_default.shape)}")
    return acts_default.to(torch.float32).mean(0)


def compute_axis(default_vec: torch.Tensor, role_vectors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``default - mean(role vectors)`` per layer, each role weighted equally."""
    if not role_vectors:
        raise ValueError("no role vectors left to build an axis (all roles dropped?); lower min_count or add responses")
    stacked = torch.stack([v.to(torch.float32) for v in role_vectors.values()])
    if stacked.shape[1:] != default_vec.shape:
        raise ValueError(f"role vectors have shape {tuple(stacked.shape[1:])} "
                         f"but the default vector {tuple(default_vec.shape)}")
    return default_vec.to(torch.float32) - stacked.mean(0)


# ------------------------------------------------------------------- files
def save_axis(path: str | os.PathLike, axis: torch.Tensor, metadata: Mapping | None = None,
              extra: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Our axis file: safetensors with ``axis`` ``[L, d]`` (+ optional tensors) and JSON metadata."""
    if axis.ndim != 2:
        raise ValueError(f"an axis is [n_layers, d]; got shape {tuple(axis.shape)}")
    return save_tensors(path, {"axis": axis.to(torch.float32), **(extra or {})},
                        {"format": "persona-probe-axis", **(metadata or {})})


def load_axis(path: str | os.PathLike, *, return_metadata: bool = False):
    """Read an axis: ours (``.safetensors``) or the reference ``.pt`` (raw tensor or ``{"axis": t}``).

    Returns a float32 ``[n_layers, d]`` tensor, or ``(axis, metadata)`` with ``return_metadata``.
    """
    path = Path(path)
    meta: dict = {}
    if path.suffix == ".safetensors":
        tensors, raw = load_tensors(path)
        if "axis" not in tensors:
            raise ValueError(f"{path}: no 'axis' tensor (keys: {sorted(tensors)}); is this an axis file?")
        axis = tensors["axis"]
        meta = {k: _maybe_json(v) for k, v in raw.items()}
    else:
        obj = load_pt(path)
        if isinstance(obj, dict):
            if "axis" not in obj:
                raise ValueError(f"{path}: a dict without an 'axis' key (keys: {sorted(map(str, obj))})")
            obj = obj["axis"]
        if not isinstance(obj, torch.Tensor):
            raise ValueError(f"{path}: expected a tensor or {{'axis': tensor}}, got {type(obj).__name__}")
        axis = obj
        meta = {"format": "reference-pt"}
    if axis.ndim != 2:
        raise ValueError(f"{path}: the axis must be [n_layers, d]; got shape {tuple(axis.shape)}")
    axis = axis.to(torch.float32)
    return (axis, meta) if return_metadata else axis


def export_reference_axis(path: str | os.PathLike, axis: torch.Tensor) -> Path:
    """Write the reference repo's ``assistant_axis.pt``: a raw ``[n_layers, d]`` tensor (torch.save)."""
    if axis.ndim != 2:
        raise ValueError(f"an axis is [n_layers, d]; got shape {tuple(axis.shape)}")
    with atomic_write(path, "wb") as fh:
        torch.save(axis.detach().cpu().to(torch.float32).contiguous(), fh)
    return Path(path)


def save_role_vectors(path: str | os.PathLike, rv: RoleVectors, metadata: Mapping | None = None) -> Path:
    """Role vectors as safetensors (``role/<name>``), the report in metadata."""
    tensors = {_ROLE_PREFIX + name: v for name, v in rv.vectors.items()}
    return save_tensors(path, tensors,
                        {"format": "persona-probe-role-vectors", "report": rv.report(), **(metadata or {})})


def load_role_vectors(path: str | os.PathLike) -> RoleVectors:
    tensors, raw = load_tensors(path)
    report = _maybe_json(raw.get("report", "{}"))
    vectors = {k[len(_ROLE_PREFIX):]: v for k, v in tensors.items() if k.startswith(_ROLE_PREFIX)}
    return RoleVectors(vectors, dict(report.get("counts", {})), dict(report.get("dropped", {})),
                       bool(report.get("judged", False)), int(report.get("score_required", 3)),
                       int(report.get("min_count", 1)))


def _maybe_json(value: str):
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value
