"""Token-level activations of a run's answers: every assistant-content token at one layer.

What the SAE analysis trains on and reads features from; answers are the
independent units (``doc``), so held-out splits and firing rates go by answer.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch

from ..io import content_hash
from ..vectors import check_layer
from .rundir import RunFolder

__all__ = ["TokenActs", "run_conversations", "collect_token_activations"]


@dataclasses.dataclass
class TokenActs:
    """Token activations ``acts [N, d]``; ``doc``/``pos`` locate each token; ``docs`` hold source + token ids."""

    acts: torch.Tensor
    doc: torch.Tensor
    pos: torch.Tensor
    docs: list[dict]

    def subset(self, doc_ids: Sequence[int]) -> TokenActs:
        mask = torch.isin(self.doc, torch.as_tensor(list(doc_ids), dtype=torch.long))
        return TokenActs(self.acts[mask], self.doc[mask], self.pos[mask], self.docs)


def run_conversations(run: RunFolder, *, axis_rollouts: bool = True,
                      prefer: str | None = None) -> list[tuple[str, list[dict]]]:
    """``(source, conversation)`` for every uncapped stress answer and (optionally) every current axis rollout.

    Identical conversations are kept once, under model ``prefer``'s source when it has one.
    """
    from ..stress.cells import prompts_for

    out = []
    for row in sorted(run.uncapped_cells(), key=lambda r: r["model"] != prefer):
        samples = run.samples(row["model"], row["condition"])
        prompts = prompts_for(run.config, [s["question"] for s in samples], row["condition"])
        out += [(f"{row['model']}|{row['condition']}", p + [{"role": "assistant", "content": s["answer"]}])
                for p, s in zip(prompts, samples) if s["answer"].strip()]
    if axis_rollouts:
        out += [(f"axis|{rec['label']}", rec["messages"]) for rec in run.axis_rollouts()
                if rec["messages"][-1]["content"].strip()]
    if not out:
        raise ValueError(f"{run.root}: no answers to collect activations from (no uncapped stress cells, no rollouts)")
    seen, unique = set(), []  # two models giving the same answer to the same prompt: one text, one split side
    for source, conv in out:
        key = content_hash(conv)
        if key not in seen:
            seen.add(key)
            unique.append((source, conv))
    return unique


@torch.no_grad()
def collect_token_activations(model, convs: Sequence[tuple[str, list[dict]]], layer: int, *,
                              max_tokens: int = 20000, seed: int = 0, batch_size: int = 16,
                              progress: bool = True) -> TokenActs:
    """Residual stream after block ``layer`` at every assistant-content token of answers taken in a seeded order
    until ``max_tokens``; one left-padded forward per ``batch_size`` answers (``ProbeModel.token_activations``
    reads one conversation per forward, several times slower here)."""
    from tqdm.auto import tqdm

    check_layer(layer, model.n_layers)
    picked, total = [], 0
    for i in np.random.default_rng(seed).permutation(len(convs)):
        chat = model.tokenize(convs[i][1], need_assistant=True)
        if chat.positions("all"):
            picked.append((convs[i][0], chat))
            total += len(chat.positions("all"))
        if total >= max_tokens:
            break
    if not picked:
        raise ValueError("no answer has assistant-content tokens")
    order = sorted(range(len(picked)), key=lambda j: len(picked[j][1].input_ids))
    acts: list = [None] * len(picked)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="token activations", unit="batch", disable=not progress):
        enc = model.pad_batch([picked[j][1].input_ids for j in batch])
        width = enc["input_ids"].shape[1]
        with model.nnsight.trace(enc) as tracer:
            h = model.layers[layer].output.save()
            tracer.stop()  # the blocks above ``layer`` and the unembedding are not needed
        h = h.float().cpu()
        for row, j in enumerate(batch):
            chat = picked[j][1]
            acts[j] = h[row, torch.tensor(chat.positions("all")) + width - len(chat.input_ids)]
    doc = torch.cat([torch.full((len(a),), j, dtype=torch.long) for j, a in enumerate(acts)])
    pos = torch.cat([torch.tensor(c.positions("all")) for _, c in picked])
    return TokenActs(torch.cat(acts), doc, pos, [{"source": s, "input_ids": list(c.input_ids)} for s, c in picked])
