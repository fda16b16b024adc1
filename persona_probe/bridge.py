"""TransformerLens ``TransformerBridge`` views of a :class:`~persona_probe.model.ProbeModel`.

For interactive work with TransformerLens' hook names (``blocks.{l}.hook_resid_post``,
``run_with_cache``, ``run_with_hooks``) on the *same weights* our nnsight path
uses. The bridge is booted offline from the loaded HF model and tokenizer
(``TransformerBridge.boot_transformers(name, hf_model=..., tokenizer=...)``), with
no weight processing: no LayerNorm folding, no centring, so ``hook_resid_post``
is the raw HF residual stream - the decoder block's output that
``ProbeModel`` reads (``tests/test_bridge.py`` checks they agree).

The bridge rewraps the modules of the model it is given. So that the
``ProbeModel``'s nnsight wrapper keeps its own module tree, :func:`boot_bridge`
hands the bridge a structural copy of the HF model that *shares* its parameter
tensors (no extra weight memory; only small buffers are copied).
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch

__all__ = ["boot_bridge", "resid_post", "conversation_residuals"]


def boot_bridge(model, *, share_modules: bool = False) -> Any:
    """A ``TransformerBridge`` over ``model``'s weights (offline; raw HF numerics).

    ``share_modules=True`` hands the bridge the ProbeModel's own HF module tree
    (rewrapped in place - nnsight hooks keep working, but prefer the default
    copy unless module objects matter, e.g. for a device-mapped model).
    """
    from transformer_lens.model_bridge import TransformerBridge

    if model.hf is None:
        raise ValueError("a remote-only ProbeModel has no local weights to bridge; load the model locally")
    model.require_merged_weights("the TransformerBridge")
    hf = model.hf
    if not share_modules:
        memo = {id(p): p for p in hf.parameters()}  # share weights, copy modules and buffers
        hf = copy.deepcopy(hf, memo)
    dtype = next(hf.parameters()).dtype
    bridge = TransformerBridge.boot_transformers(model.name, hf_model=hf, tokenizer=model.tokenizer, dtype=dtype)
    bridge.eval()
    return bridge


def _layer_list(layers, n_layers: int) -> list[int]:
    from .vectors import check_layer

    layers = list(range(n_layers)) if layers is None else [int(layer) for layer in layers]
    for layer in layers:
        check_layer(layer, n_layers)
    return layers


@torch.no_grad()
def resid_post(bridge, input_ids, layers: Sequence[int] | None = None) -> torch.Tensor:
    """``blocks.{l}.hook_resid_post`` for ``input_ids`` ``[b, T]`` (or ``[T]``): float32 ``[len(layers), b, T, d]``."""
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    if ids.ndim == 1:
        ids = ids[None]
    layers = _layer_list(layers, bridge.cfg.n_layers)
    names = {f"blocks.{layer}.hook_resid_post" for layer in layers}
    _, cache = bridge.run_with_cache(ids.to(bridge.cfg.device), names_filter=lambda name: name in names)
    return torch.stack([cache[f"blocks.{layer}.hook_resid_post"].float().cpu() for layer in layers])


def conversation_residuals(model, bridge, conversation, *, layers: Sequence[int] | None = None,
                           add_generation_prompt: bool = False):
    """Per-token residuals of one conversation via the bridge: ``([len(layers), T, d], chat)``.

    Same tokenization as :meth:`ProbeModel.token_activations` (the project's chat
    template handling); ``chat.positions("all")`` gives the assistant-content tokens.
    """
    chat = model.tokenize(conversation, add_generation_prompt=add_generation_prompt)
    return resid_post(bridge, chat.input_ids, layers)[:, 0], chat
