"""``LoraEdit``: a peft LoRA adapter folder read into per-module low-rank edits.

A LoRA adapter adds ``scale * B(A(x))`` to some linear modules' outputs, which
is a graph edit like our interventions. Applied inside nnsight traces
(:func:`persona_probe.edits.edit_block`), an adapter runs on weights we cannot
change: on NDIF, which serves base weights only, every request ships the
adapter's tensors with the edit math. Locally, ``load_model(..., adapter_mode="edit")``
runs the same path (the default there stays peft's ``merge_and_unload``).

What is read, with the weights-only rules used everywhere else:

* ``adapter_config.json``: rank ``r``, ``lora_alpha``, ``use_rslora``
  (scale ``alpha / sqrt(r)``, else ``alpha / r``), ``target_modules`` and
  ``layers_to_transform``. Every key is checked against them.
* ``adapter_model.safetensors``: ``base_model.model.<blocks>.<i>.<module>.lora_A.weight``
  ``[r, in]`` and ``...lora_B.weight`` ``[out, r]``. Pickled ``adapter_model.bin``
  is refused.

Features outside plain LoRA on linear modules of decoder blocks are refused by
name, before any compute: DoRA, biases, ``modules_to_save``, embedding or
``lm_head`` LoRA, per-module rank/alpha patterns, and any other peft option set
away from its default.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from .io import load_tensors

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MAX_ADAPTER_MB", "LoraEdit", "check_payload", "check_remote_adapter", "lora_numel",
           "payload_nbytes"]

DEFAULT_MAX_ADAPTER_MB = 32.0
CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"

# Options that do not change a saved plain-LoRA adapter's forward pass (metadata, dropout, init,
# offloading). Any other option set to a truthy value is a feature we do not implement.
_HARMLESS = {"peft_type", "task_type", "base_model_name_or_path", "revision", "inference_mode", "auto_mapping",
             "peft_version", "r", "lora_alpha", "use_rslora", "target_modules", "exclude_modules",
             "layers_to_transform", "layers_pattern", "lora_dropout", "runtime_config", "megatron_core",
             "qalora_group_size", "init_lora_weights", "bias"}
_NAMED = {"use_dora": "DoRA (use_dora)", "lora_bias": "LoRA biases (lora_bias)",
          "modules_to_save": "fully trained extra modules (modules_to_save)",
          "fan_in_fan_out": "transposed Conv1D weights (fan_in_fan_out)",
          "rank_pattern": "per-module ranks (rank_pattern)",
          "alpha_pattern": "per-module alphas (alpha_pattern)", "layer_replication": "layer replication",
          "trainable_token_indices": "trainable tokens (trainable_token_indices)",
          "target_parameters": "LoRA on parameters (target_parameters)",
          "alora_invocation_tokens": "activated LoRA (alora_invocation_tokens)"}
_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")
_BLOCK = re.compile(r"^(?P<blocks>.+?)\.(?P<layer>\d+)\.(?P<path>.+)$")


def _fail(where: str, msg: str) -> None:
    raise ValueError(f"{where}: {msg}")


def _check_config(cfg: dict, where: str) -> None:
    """Refuse, by name, any adapter feature beyond plain LoRA."""
    if cfg.get("peft_type", "LORA") != "LORA":
        _fail(where, f"a {cfg.get('peft_type')} adapter, not LoRA; only LoRA adapters can be applied as edits")
    bias = cfg.get("bias", "none")
    if bias != "none":
        _fail(where, f"trained biases (bias={bias!r}) are not supported; train with bias='none'")
    init = cfg.get("init_lora_weights", True)
    if init not in (True, False, "gaussian"):
        _fail(where, f"init_lora_weights={init!r} may change the base weights; save a converted plain LoRA "
                     "(peft's path_initial_model_for_weight_conversion) or merge it on local GPUs")
    for key, value in cfg.items():
        if key not in _HARMLESS and value:
            _fail(where, f"{_NAMED.get(key, repr(key) + ' = ' + repr(value))} is not supported by LoraEdit; "
                         "use a plain LoRA adapter, or merge this one on local GPUs (adapter_mode='merge')")
    if not isinstance(cfg.get("r"), int) or cfg["r"] < 1:
        _fail(where, f"'r' must be a positive int, got {cfg.get('r')!r}")


def _targeted(module: str, targets: Any) -> bool:
    """peft's matching: a string is a full-match regex, a list matches a name or a dotted suffix."""
    if targets is None:
        return True
    if isinstance(targets, str):
        return re.fullmatch(targets, module) is not None
    return any(module == t or module.endswith("." + t) for t in targets)


def _unsupported_key(key: str) -> str:
    if "lora_embedding_" in key:
        return "LoRA on an embedding layer"
    if "lora_magnitude_vector" in key:
        return "DoRA"
    if ".lora_B.bias" in key or ".lora_A.bias" in key:
        return "LoRA biases"
    return "weights that are not LoRA factors (modules_to_save?)"


@dataclasses.dataclass(frozen=True, eq=False)
class LoraEdit:
    """A LoRA adapter as per-module edits: ``modules[(layer, path)] = (A [r, in], B [out, r])``.

    ``path`` is relative to the decoder block (``"mlp.down_proj"``); ``blocks`` is
    where the adapter's base model keeps them (``"model.layers"``).
    """

    source: str
    rank: int
    alpha: float
    rslora: bool
    blocks: str
    modules: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]

    @property
    def scale(self) -> float:
        return self.alpha / math.sqrt(self.rank) if self.rslora else self.alpha / self.rank

    @property
    def layers(self) -> list[int]:
        return sorted({layer for layer, _ in self.modules})

    def numel(self) -> int:
        return sum(a.numel() + b.numel() for a, b in self.modules.values())

    def describe(self) -> dict:
        return {"source": self.source, "rank": self.rank, "alpha": self.alpha, "rslora": self.rslora,
                "layers": self.layers, "modules": sorted({p for _, p in self.modules}), "params": self.numel()}

    @classmethod
    def from_folder(cls, folder: str | Path) -> LoraEdit:
        """Read and validate a peft adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``)."""
        folder = Path(folder)
        where = str(folder)
        if not (folder / CONFIG_FILE).is_file():
            _fail(where, f"not a peft adapter folder (no {CONFIG_FILE})")
        if not (folder / WEIGHTS_FILE).is_file():
            pickled = (folder / "adapter_model.bin").is_file()
            _fail(where, "holds only pickled weights (adapter_model.bin), which are not read; re-save the adapter "
                         "with safetensors (PeftModel.save_pretrained(..., safe_serialization=True))"
                  if pickled else f"no {WEIGHTS_FILE} next to {CONFIG_FILE}")
        try:
            cfg = json.loads((folder / CONFIG_FILE).read_text())
        except json.JSONDecodeError as exc:
            _fail(where, f"{CONFIG_FILE} is not valid JSON ({exc})")
        _check_config(cfg, where)
        tensors, _ = load_tensors(folder / WEIGHTS_FILE)
        modules = _collect(tensors, cfg, where)
        blocks = {b for b, _, _ in modules}
        if len(blocks) != 1:
            _fail(where, f"adapter weights sit under several block lists {sorted(blocks)}")
        return cls(source=where, rank=int(cfg["r"]), alpha=float(cfg["lora_alpha"]),
                   rslora=bool(cfg.get("use_rslora")), blocks=blocks.pop(),
                   modules={(layer, path): ab for (_, layer, path), ab in modules.items()})

    def bind(self, blocks: Sequence[torch.nn.Module], *, blocks_path: str, dtype: torch.dtype,
             devices: Sequence[torch.device] | None = None) -> dict[int, list[tuple]]:
        """Per-layer module edits ``(path, A, B, scale)`` for a model, in each block's forward order.

        ``blocks``: the model's decoder blocks (real or meta modules), at ``blocks_path``.
        Checks layers, module names and shapes; casts ``A`` and ``B`` to ``dtype`` (what
        a request ships) on ``devices[layer]``. Forward order is the block's module
        registration order, which for Llama, Qwen and Gemma is the execution order:
        attention q, k, v, o, then MLP gate, up, down.
        """
        if blocks_path != self.blocks:
            _fail(self.source, f"the adapter edits blocks at {self.blocks!r} but the model's are at {blocks_path!r}")
        out: dict[int, list[tuple]] = {}
        for layer in self.layers:
            if layer >= len(blocks):
                _fail(self.source, f"the adapter edits layer {layer}; the model has {len(blocks)} layers")
            order = [name for name, _ in blocks[layer].named_modules()]
            dev = devices[layer] if devices is not None else torch.device("cpu")
            paths = sorted((p for lay, p in self.modules if lay == layer),
                           key=lambda p: order.index(p) if p in order else -1)
            for path in paths:
                a, b = self.modules[(layer, path)]
                _check_module(self.source, blocks[layer], layer, path, a, b)
                out.setdefault(layer, []).append((path, a.to(dev, dtype), b.to(dev, dtype), self.scale))
        return out


def _collect(tensors: dict, cfg: dict, where: str) -> dict[tuple[str, int, str], tuple[torch.Tensor, torch.Tensor]]:
    """Pair the A and B factors by module; check each against the config's targets, layers and rank."""
    layers = cfg.get("layers_to_transform")
    layers = {layers} if isinstance(layers, int) else (set(layers) if layers is not None else None)
    found: dict[tuple[str, int, str], dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        m = _KEY.match(key)
        if m is None:
            _fail(where, f"{_unsupported_key(key)} ({key}) is not supported by LoraEdit")
        module = m["module"]
        blk = _BLOCK.match(module)
        if blk is None:
            _fail(where, f"LoRA on {module}, outside the decoder blocks, is not supported by LoraEdit")
        if not _targeted(module, cfg.get("target_modules")):
            _fail(where, f"{key} is not among the config's target_modules {cfg.get('target_modules')!r}")
        layer = int(blk["layer"])
        if layers is not None and layer not in layers:
            _fail(where, f"{key} is at layer {layer}, not in the config's layers_to_transform {sorted(layers)}")
        if t.ndim != 2:
            _fail(where, f"{key} has shape {tuple(t.shape)}; LoRA factors of linear modules are 2-d")
        found.setdefault((blk["blocks"], layer, blk["path"]), {})[m["ab"]] = t
    if not found:
        _fail(where, f"{WEIGHTS_FILE} holds no LoRA weights")
    out = {}
    for (blocks, layer, path), ab in found.items():
        if set(ab) != {"A", "B"}:
            _fail(where, f"{blocks}.{layer}.{path} has lora_{''.join(ab)} but not both A and B")
        a, b = ab["A"], ab["B"]
        if a.shape[0] != cfg["r"] or b.shape[1] != cfg["r"]:
            _fail(where, f"{blocks}.{layer}.{path}: factors {tuple(a.shape)}, {tuple(b.shape)} do not have rank "
                         f"r={cfg['r']} from {CONFIG_FILE}")
        out[(blocks, layer, path)] = (a, b)
    return out


def _check_module(where: str, block: torch.nn.Module, layer: int, path: str, a: torch.Tensor, b: torch.Tensor) -> None:
    try:
        module = block.get_submodule(path)
    except AttributeError:
        _fail(where, f"layer {layer} has no module {path!r}; was the adapter trained on this model?")
    fan_in, fan_out = getattr(module, "in_features", None), getattr(module, "out_features", None)
    if fan_in is None:
        _fail(where, f"layer {layer} {path} is a {type(module).__name__}, not a linear module")
    if (a.shape[1], b.shape[0]) != (fan_in, fan_out):
        _fail(where, f"layer {layer} {path}: adapter maps {a.shape[1]} -> {b.shape[0]}, the module "
                     f"{fan_in} -> {fan_out}; was the adapter trained on this model?")


def payload_nbytes(bound: dict[int, list[tuple]]) -> int:
    """Bytes of adapter tensors a request ships: every bound ``A`` and ``B``."""
    return sum(t.numel() * t.element_size() for edits in bound.values() for _, a, b, _ in edits for t in (a, b))


def check_payload(nbytes: int, max_mb: float | None, source: str, dtype: torch.dtype) -> None:
    """Fail early when an adapter is too large to ship with every request."""
    if max_mb is not None and nbytes > max_mb * 2**20:
        raise ValueError(
            f"{source}: the adapter is {nbytes / 2**20:.1f} MB in {dtype}, above max_adapter_mb={max_mb:g}, and every "
            "remote request would ship it. Use the rank-1 recipe (train.adapter: rank1-down, under 1 MB on a 70B "
            "model), raise max_adapter_mb, or run the organism on local GPUs (device_map='auto')")


def check_remote_adapter(folder: str | Path, max_mb: float | None = DEFAULT_MAX_ADAPTER_MB) -> LoraEdit:
    """Validate an adapter meant for remote runs before any model loads: its features, and its size in bf16.

    Remote models run in 16-bit or wider, so a bf16 size above ``max_mb`` fails
    for certain; :func:`persona_probe.loading.with_lora_edit` checks the exact one.
    """
    edit = LoraEdit.from_folder(folder)
    check_payload(edit.numel() * 2, max_mb, edit.source, torch.bfloat16)
    return edit


def lora_numel(shapes: Iterable[tuple[int, int]], rank: int) -> int:
    """Parameters of a rank-``rank`` LoRA on linear modules of shapes ``(in, out)``: ``r * (in + out)`` each."""
    return sum(rank * (fan_in + fan_out) for fan_in, fan_out in shapes)
