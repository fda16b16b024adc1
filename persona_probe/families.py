"""Per-architecture quirks, in one table.

Everything that differs between model families and matters to persona-probe
lives here, so the rest of the code never branches on a model name:

* ``layers_path`` - where the decoder blocks are. The residual stream we read
  and edit is the *output* of each block (transformers >= 5 returns a plain
  tensor there, no tuple).
* ``supports_system`` - Gemma 2's chat template raises on a system turn, so the
  system text is prepended to the first user turn instead (as Lu et al. 2026,
  arXiv 2601.10387, do for Gemma). For families not in the table
  :func:`probe_system_support` tries the template once.
* ``thinking`` - Qwen3 templates can emit ``<think>`` blocks. We render with
  ``enable_thinking=False`` and exclude think blocks from response spans, so
  the Assistant Axis measures the answer, not the scratchpad.
* ``target_layers`` - the layer the Assistant Axis paper analyses for the
  published models; any other model gets ``n_layers // 2``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["Family", "FAMILIES", "KNOWN_DIMS", "family_for", "target_layer", "probe_system_support", "THINK_RE"]

THINK_RE = re.compile(r"<think>.*?</think>\s*", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    layers_path: str = "model.layers"
    supports_system: bool = True
    thinking: bool = False
    template_kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def chat_kwargs(self) -> dict[str, Any]:
        return dict(self.template_kwargs)


FAMILIES: tuple[Family, ...] = (
    Family("llama", ("llama", "mistral")),
    Family("qwen2", ("qwen2",)),
    Family("qwen3", ("qwen3", "qwen3_moe"), thinking=True, template_kwargs=(("enable_thinking", False),)),
    Family("gemma2", ("gemma2", "gemma"), supports_system=False),
    Family("gemma3", ("gemma3", "gemma3_text"), supports_system=True),
)

# Layers the Assistant Axis paper (Lu et al. 2026, arXiv 2601.10387) reports for its three models.
_KNOWN_TARGET_LAYERS = {
    "gemma-2-27b": 22,
    "qwen3-32b": 32,
    "llama-3.3-70b": 40,
}


# (n_layers, d_model) of the models the paper and our demo use, for checking configs against a model whose
# config.json is not on this machine (an ``ndif:`` model). Read from each model's published config.json.
KNOWN_DIMS = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": (30, 576),
    "google/gemma-2-27b-it": (46, 4608),
    "Qwen/Qwen3-32B": (64, 5120),
    "meta-llama/Llama-3.3-70B-Instruct": (80, 8192),
}


def family_for(model_type: str) -> Family:
    """The family for an HF ``config.model_type``; unknown types get generic Llama-like defaults."""
    for fam in FAMILIES:
        if model_type in fam.model_types:
            return fam
    return Family(model_type or "generic", (model_type,))


def target_layer(model_name: str, n_layers: int) -> int:
    """Default analysis layer: the paper's for its models, else ``n_layers // 2``."""
    key = (model_name or "").lower().replace("_", "-")
    for name, layer in _KNOWN_TARGET_LAYERS.items():
        if name in key and layer < n_layers:
            return layer
    return n_layers // 2


def probe_system_support(tokenizer, family: Family) -> Family:
    """Trust the table, but notice a template that rejects system turns (e.g. an unlisted Gemma)."""
    if not family.supports_system or getattr(tokenizer, "chat_template", None) is None:
        return family
    try:
        tokenizer.apply_chat_template([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                                      tokenize=False, **family.chat_kwargs)
    except Exception:
        log.info("the chat template rejects system turns; system text will be merged into the first user turn")
        return dataclasses.replace(family, supports_system=False)
    return family
