"""Assistant Axis math: role vectors, default vector, axis; our files and the reference's.

Definitions follow Lu et al. 2026 ("The Assistant Axis", arXiv 2601.10387):

* a *role vector* is the mean response activation of the responses that the
  role-adherence judge scored fully in role (score 3); a role with fewer than
  ``min_count`` such responses is dropped (the reference uses 50 of 1,200);
* the *default vector* is the unfiltered mean over default-prompt responses;
* ``axis = default - mean(role vectors)``, each role weighted equally (so a role
  with many kept responses does not pull the axis more than one with few).

At paper scale (275 roles x 1,200 responses) the per-response activations do not fit
in memory, so the build streams: :class:`RunningSums` keeps, per role, a float64 sum
and a count per judge grade, and :func:`role_vectors_from_sums` gives the same role
vectors as :func:`compute_role_vectors` on the stacked activations (to float32 rounding).

Everything here is a pure function on float32 tensors so it can be tested on
synthetic data. Our files are safetensors (no pickle); the reference's
``assistant_axis.pt`` is read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import torch

from ..io import atomic_write, load_pt, load_tensors, save_tensors

log = logging.getLogger(__name__)

__all__ = [
    "RoleVectors", "compute_role_vectors", "default_vector", "compute_axis",
    "save_axis", "load_axis", "export_reference_axis", "save_role_vectors", "load_role_vectors",
    "RunningSums", "score_bin", "role_vectors_from_sums", "export_reference_role_vectors",
    "load_reference_role_vectors", "reference_file_stems",
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


ALL = "all"     # the one bin of an unjudged role: every response counts
UNSCORED = "none"


def score_bin(score) -> str:
    """The grade a response is accumulated under: the rounded score, or ``"none"`` for no score."""
    return UNSCORED if score is None else str(int(round(float(score))))


def _bin_qualifies(grade: str, required: int) -> bool:
    return grade == ALL or (grade != UNSCORED and int(grade) >= required)


@dataclasses.dataclass
class RunningSums:
    """Per-grade float64 sums ``[L, d]`` and counts of response activations: a role, streamed.

    ``add`` one batch at a time; memory is one ``[L, d]`` per grade seen, whatever the
    number of responses. Grades are :func:`score_bin` strings, or ``"all"`` when unjudged.
    """

    sums: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)

    def add(self, acts: torch.Tensor, grades: Sequence[str]) -> None:
        if acts.ndim != 3 or acts.shape[0] != len(grades):
            raise ValueError(f"acts must be [b, L, d] with one grade per row; got {tuple(acts.shape)}, "
                             f"{len(grades)} grades")
        acts = acts.to(torch.float64)
        for grade in dict.fromkeys(grades):
            idx = [i for i, g in enumerate(grades) if g == grade]
            part = acts[idx].sum(0)
            self.sums[grade] = self.sums[grade] + part if grade in self.sums else part
            self.counts[grade] = self.counts.get(grade, 0) + len(idx)

    def mean(self, required: int = 3) -> tuple[torch.Tensor | None, int]:
        """Float32 mean over the qualifying grades, and their count (``None`` when there are none)."""
        keep = [g for g in self.sums if _bin_qualifies(g, required)]
        n = sum(self.counts[g] for g in keep)
        if n == 0:
            return None, 0
        return (torch.stack([self.sums[g] for g in keep]).sum(0) / n).to(torch.float32), n

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        return {f"sum/{g}": t for g, t in self.sums.items()}, {"counts": self.counts}

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], meta: Mapping) -> RunningSums:
        counts = meta["counts"]
        counts = json.loads(counts) if isinstance(counts, str) else counts
        return cls({k[4:]: v.to(torch.float64) for k, v in tensors.items() if k.startswith("sum/")},
                   {str(k): int(v) for k, v in counts.items()})


def role_vectors_from_sums(sums: Mapping[str, RunningSums], *, judged: bool, min_count: int = 1,
                           score_required: int = 3) -> RoleVectors:
    """:func:`compute_role_vectors` from per-role :class:`RunningSums` (no per-response activations)."""
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    vectors, counts, dropped = {}, {}, {}
    for role, rs in sums.items():
        vec, n = rs.mean(score_required)
        if n < min_count:
            dropped[role] = n
            continue
        vectors[role], counts[role] = vec, n
    if dropped:
        log.info("dropped %d role(s) with < %d qualifying responses: %s", len(dropped), min_count, dropped)
    return RoleVectors(vectors, counts, dropped, judged=judged, score_required=score_required, min_count=min_count)


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


def export_reference_role_vectors(folder: str | os.PathLike, rv: RoleVectors,
                                  default: torch.Tensor | None = None) -> Path:
    """The reference pipeline's vectors folder: ``<role>.pt`` = ``{"vector": [L, d], "type": "pos_3", "role"}``.

    ``default`` adds ``default.pt`` with ``type: "mean"`` (the unfiltered default vector), so the
    reference's axis step reads the folder as it reads its own. Names that are not plain file
    names are stored under a slug; the ``role`` field keeps the real name. Plain tensors and
    strings only: every file loads with ``torch.load(weights_only=True)``.
    """
    folder = Path(folder)
    entries = [(name, v, "pos_3") for name, v in rv.vectors.items()]
    if default is not None:
        entries.append(("default", default, "mean"))
    for (name, vec, kind), stem in zip(entries, reference_file_stems([e[0] for e in entries])):
        if name == "default" and kind != "mean":
            raise ValueError("a role named 'default' would overwrite the default vector's file; rename the role")
        with atomic_write(folder / f"{stem}.pt", "wb") as fh:
            torch.save({"vector": vec.detach().cpu().to(torch.float32).contiguous(), "type": kind, "role": name}, fh)
    return folder


def reference_file_stems(names: Sequence[str]) -> list[str]:
    """The file stem of each role in a reference vectors folder: the name, or a slug plus hash."""
    return [name if re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name) and not name.startswith(".") else
            re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
            for name in names]


def load_reference_role_vectors(folder: str | os.PathLike) -> tuple[RoleVectors, torch.Tensor | None]:
    """Read a reference vectors folder: ``(role vectors, default vector or None)``; ``type: mean`` is default.

    Several default files are averaged, as the reference's axis step does.
    """
    folder = Path(folder)
    files = sorted(folder.glob("*.pt"))
    if not files:
        raise FileNotFoundError(f"{folder}: no <role>.pt files; is this the reference pipeline's vectors folder?")
    vectors, defaults = {}, []
    for path in files:
        data = load_pt(path)
        if not isinstance(data, dict) or not isinstance(data.get("vector"), torch.Tensor):
            raise ValueError(f"{path}: expected {{'vector': tensor, 'type', 'role'}}, got {type(data).__name__}")
        role = str(data.get("role", path.stem))
        if role == "default" or data.get("type") == "mean":
            defaults.append(data["vector"].to(torch.float32))
        else:
            vectors[role] = data["vector"].to(torch.float32)
    default = torch.stack(defaults).mean(0) if defaults else None
    return RoleVectors(vectors, {}, {}, judged=True), default


def _maybe_json(value: str):
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value
