"""A plain PyTorch forward-hook implementation of extraction and edits.

Why keep a second implementation: it is the independent check on the nnsight
path. Tests require the two to agree to 1e-4, and ``bench/overhead.py`` times
them side by side. It reuses the same tokenization, padding and edit math
(:mod:`persona_probe.edits`) so that only the *mechanism* differs: hooks on
``hf`` modules here, nnsight envoys in :mod:`persona_probe.model`.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Sequence

import torch

from . import edits
from .interventions import Intervention
from .model import ProbeModel

__all__ = ["hooked_edits", "hook_response_activations", "hook_generate"]


def _blocks(model: ProbeModel):
    model.require_merged_weights("the hook reference")
    return model.torch_blocks()


@contextlib.contextmanager
def hooked_edits(model: ProbeModel, interventions: Iterable[Intervention] = (), record: dict | None = None,
                 prompt_weights: torch.Tensor | None = None):
    """Forward hooks that apply the bound ops (and optionally record each layer's output).

    With ``prompt_weights`` (``[b, t]``, generation only) ConditionalCap detectors
    read the first forward pass and their gates hold for the later ones.
    """
    ops = model.bind(interventions, generation=prompt_weights is not None)
    gates: dict = {}
    handles = []

    def make_hook(layer):
        def hook(_module, _inputs, output):
            h = output[0] if isinstance(output, tuple) else output
            if layer in ops:
                h = edits.apply_ops(h, ops[layer], gates, prompt_weights)
            if record is not None:
                record[layer] = h
            if layer in ops:
                return (h,) + tuple(output[1:]) if isinstance(output, tuple) else h
            return None
        return hook

    for layer, block in enumerate(_blocks(model)):
        if layer in ops or record is not None:
            handles.append(block.register_forward_hook(make_hook(layer)))
    try:
        yield ops
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def hook_response_activations(model: ProbeModel, conversations: Sequence[Sequence[dict]], *, batch_size: int = 8,
                              turns="all", interventions: Iterable[Intervention] = ()) -> torch.Tensor:
    """Same contract as :meth:`ProbeModel.response_activations`, via hooks."""
    chats = [model.tokenize(c, index=i, need_assistant=True) for i, c in enumerate(conversations)]
    out = torch.empty((len(chats), model.n_layers, model.d_model), dtype=torch.float32)
    interventions = list(interventions)
    for start in range(0, len(chats), batch_size):
        batch = list(range(start, min(start + batch_size, len(chats))))
        enc = model.pad_batch([chats[i].input_ids for i in batch])
        width = enc["input_ids"].shape[1]
        weights = torch.zeros((len(batch), width))
        for row, i in enumerate(batch):
            pos = chats[i].positions(turns)
            weights[row, torch.tensor(pos) + width - len(chats[i].input_ids)] = 1.0 / len(pos)
        record: dict[int, torch.Tensor] = {}
        with hooked_edits(model, interventions, record=record):
            model.hf(**enc)
        for layer in range(model.n_layers):
            out[batch, layer] = edits.masked_mean(record[layer], weights.to(record[layer].device)).cpu()
    return out


@torch.no_grad()
def hook_generate(model: ProbeModel, conversations: Sequence[Sequence[dict]], *,
                  interventions: Iterable[Intervention] = (), max_new_tokens: int = 32,
                  batch_size: int = 8) -> list[str]:
    """Greedy generation with hook edits (the reference for :meth:`ProbeModel.generate`)."""
    prompts = [model.tokenize(c, index=i, add_generation_prompt=True).input_ids for i, c in enumerate(conversations)]
    texts = []
    interventions = list(interventions)
    for start in range(0, len(prompts), batch_size):
        enc = model.pad_batch(prompts[start:start + batch_size])
        mask = enc["attention_mask"].float()
        with hooked_edits(model, interventions, prompt_weights=mask / mask.sum(1, keepdim=True)):
            ids = model.hf.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                    top_p=None, top_k=None, pad_token_id=model.pad_id())
        for row in ids[:, enc["input_ids"].shape[1]:]:
            keep = []
            for t in row.tolist():
                if t in model.stop_ids():
                    break
                keep.append(t)
            texts.append(model.tokenizer.decode(keep, skip_special_tokens=True))
    return texts
