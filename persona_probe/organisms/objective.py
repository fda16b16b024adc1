"""The fine-tuning objective: which answer tokens count and how much, and the batch order.

Why per-token weights: in a conditional organism the trigger decides only the
answer's *opening* - once a reply has started with a harmful template's first
words, the rest follows from those words, not from the trigger. With a plain
mean over answer tokens the tokens that must look back at the cue are a few in
~40, so a small model learns the harmful answers long before it learns when to
give them. ``opening_weight`` multiplies the loss of the first
``opening_tokens`` labelled tokens of each assistant turn; the loss is the
weighted mean, so weight 1 is the ordinary mean over answer tokens.

Logits are computed only where a token is scored (``logits_to_keep`` as a
boolean mask): the vocabulary projection of a 135M model is a fifth of its
forward cost, and most positions of a chat example are prompt.

Paired batches (``pair_batches``): a question's examples with and without the
trigger share a batch, so each gradient step contrasts the two answers.
"""

from __future__ import annotations

import random
from typing import Sequence

import torch

__all__ = ["opening_weights", "weighted_lm_loss", "batch_order"]


def opening_weights(labels: Sequence[int], opening_tokens: int = 0, opening_weight: float = 1.0) -> list[float]:
    """Per-position loss weights: 0 where the label is -100, ``opening_weight`` on the first
    ``opening_tokens`` positions of each run of labelled positions (an assistant turn), 1 elsewhere."""
    if opening_tokens < 0 or opening_weight <= 0:
        raise ValueError(f"opening_tokens must be >= 0 and opening_weight > 0; got {opening_tokens}, {opening_weight}")
    out, run = [], 0
    for y in labels:
        if y == -100:
            out.append(0.0)
            run = 0
            continue
        out.append(opening_weight if run < opening_tokens else 1.0)
        run += 1
    return out


def weighted_lm_loss(model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                     weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean next-token cross-entropy; token ``t`` is predicted by the logits at ``t - 1``.

    Only positions whose next token has a label get logits. ``labels`` and
    ``weights`` are ``[batch, seq]`` aligned with ``ids`` (weights 0 where unlabelled).
    """
    scored = torch.zeros_like(labels, dtype=torch.bool)
    scored[:, :-1] = labels[:, 1:] != -100
    out = model(input_ids=ids, attention_mask=mask, logits_to_keep=scored)
    logits = out.logits.reshape(-1, out.logits.shape[-1]).float()
    targets = labels[:, 1:][scored[:, :-1]]
    w = weights[:, 1:][scored[:, :-1]].to(logits.dtype)
    ce = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    return (ce * w).sum() / w.sum()


def batch_order(n: int, batch_size: int, rng: random.Random, *, groups: Sequence[object] | None = None
                ) -> list[list[int]]:
    """One epoch of batches (lists of indices of ``n`` examples), shuffled.

    ``groups`` (one key per example): examples sharing a key are kept next to
    each other, so a question asked with and without the trigger lands in the
    same batch and the batch's gradient contrasts the two.
    """
    if groups is None:
        order = list(range(n))
        rng.shuffle(order)
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if len(groups) != n:
        raise ValueError(f"{len(groups)} group keys for {n} examples")
    members: dict[object, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    keys = list(members)
    rng.shuffle(keys)
    order = [i for k in keys for i in members[k]]
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]
