"""Per-role shards of the streaming axis build: activation sums by judge grade, never per-response rows.

A shard is a safetensors file with, per judge grade (``"3"``, ``"2"``, ..., ``"none"`` for
no score, or ``"all"`` when no judge is used), the float64 sum ``[L, d]`` of the response
activations and their count. It is written once the role's responses have streamed through
the model a batch at a time, so a build holds one batch plus one role's sums, whatever the
number of responses; the role vectors need only the shards
(:func:`persona_probe.axis.compute.role_vectors_from_sums`), and because the grades are
kept apart, another ``score_required`` needs no new forward pass.

The default-prompt chunk also keeps its per-response activations (capping calibration and
the stress test's matched controls need them): they are written row by row into
``default_acts-*.safetensors`` (:class:`persona_probe.io.TensorFileWriter`), never held.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..io import load_step_tensors, save_tensors
from ..tensor_files import TensorFileWriter
from .compute import ALL, RunningSums, score_bin

__all__ = ["write_chunk_shard", "read_shard"]


def write_chunk_shard(model, records: list[dict], scores: list[dict] | None, path: Path, *, label: str,
                      batch_size: int, acts_path: Path | None = None, acts_meta: dict | None = None) -> Path:
    """Stream one chunk's non-empty answers through ``model``; write its shard (and per-response file).

    ``records``: the generation step's rows (``messages`` ending with the answer); ``scores``: the
    judge step's rows in the same order, or ``None`` (every response counts, grade ``"all"``).
    ``acts_path``: also write every row's ``[L, d]`` there (``acts`` + ``rows``, the index into
    ``records``). The shard is written last, so its existence means the chunk is complete.
    """
    keep = [i for i, r in enumerate(records) if r["messages"][-1]["content"].strip()]
    convs = [records[i]["messages"] for i in keep]
    grades = [score_bin(scores[i]["score"]) for i in keep] if scores is not None else [ALL] * len(keep)
    sums = RunningSums()
    writer = None
    if acts_path is not None:
        shapes = {"acts": ((len(keep), model.n_layers, model.d_model), torch.float32),
                  "rows": ((len(keep),), torch.int64)}
        writer = TensorFileWriter(acts_path, shapes, acts_meta)
    try:
        if convs:
            for idx, acts in model.iter_response_activations(convs, batch_size=batch_size, progress=False):
                sums.add(acts, [grades[i] for i in idx])
                if writer is not None:
                    for j, i in enumerate(idx):
                        writer.write("acts", i, acts[j])
                        writer.write("rows", i, torch.tensor(keep[i]))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    tensors, meta = sums.to_tensors()
    return save_tensors(path, tensors, {"format": "persona-probe-axis-shard", "label": label,
                                        "n_empty": len(records) - len(keep), "n_responses": len(keep),
                                        "judged": scores is not None, "d": [model.n_layers, model.d_model], **meta})


def read_shard(path: Path) -> tuple[RunningSums, dict]:
    """A shard's sums and its metadata (``label``, ``n_empty``, ``n_responses``, ``judged``); a truncated or
    corrupt shard raises :class:`~persona_probe.io.IncompleteStep`."""
    tensors, raw = load_step_tensors(path)
    meta = {k: (v if k == "label" else _json(v)) for k, v in raw.items()}
    return RunningSums.from_tensors(tensors, meta), meta


def _json(value: str):
    import json

    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value
