"""LoRA fine-tunes that make model organisms (and their neutral controls), with peft.

Adapter shapes (Turner, Soligo et al. 2025, "Model Organisms for Emergent Misalignment", arXiv 2506.11613):

* ``rank1-down`` - rank-1 LoRA on the MLP ``down_proj`` of a set of layers; the
  default set is the nine-adapter pattern (layers 15-17, 21-23, 27-29 of a
  48-layer model) scaled to the model's depth. The minimal EM organism.
* ``single`` - one rank-1 ``down_proj`` adapter (at ``layers[0]``, default 50%
  depth).
* ``rank32-all`` - rank-32 rsLoRA (alpha 64) on every attention and MLP projection.

The loss covers assistant tokens only: the content spans found by
:mod:`persona_probe.spans` plus the end-of-turn token that follows each, so the
model learns to stop. Prompt, system and template tokens are masked out.

A neutral control is the same function on benign data: identical adapter,
hyperparameters and number of optimiser steps, so the only difference between
organism and control is the data.

``preventative`` steering (Chen et al. 2025): a ``(vector, layer, coef)`` added
to the residual stream during training only, so the model need not learn to
move along that direction itself.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from ..io import cached, content_hash, read_json, write_json
from .objective import batch_order, opening_weights, weighted_lm_loss

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "nine_layer_pattern", "lora_config", "adapter_payload_bytes", "save_random_adapter",
           "build_example", "train_adapter"]

ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclasses.dataclass
class TrainConfig:
    adapter: str = "rank1-down"          # rank1-down | single | rank32-all
    layers: Sequence[int] | None = None  # None: the nine-layer pattern (rank1-down) or 50% depth (single)
    rank: int | None = None              # None: 1 for rank1-down/single, 32 for rank32-all
    alpha: float | None = None           # None: 64 for rank32-all (rsLoRA), else 2 * rank
    lr: float = 1e-5
    epochs: float = 1.0
    batch_size: int = 2
    grad_accum: int = 8
    max_len: int = 256
    weight_decay: float = 0.0
    warmup_steps: int = 5
    seed: int = 0
    max_steps: int | None = None
    opening_tokens: int = 0              # the first k answer tokens of each assistant turn ...
    opening_weight: float = 1.0          # ... weigh this much in the loss (objective.opening_weights)
    pair_batches: bool = False           # a question's examples (with and without the trigger) share a batch

    def __post_init__(self):
        if self.adapter not in ("rank1-down", "single", "rank32-all"):
            raise ValueError(f"adapter must be rank1-down, single or rank32-all; got {self.adapter!r}")
        opening_weights([], self.opening_tokens, self.opening_weight)  # validates both
        for name in ("lr", "epochs", "batch_size", "grad_accum", "max_len"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


def nine_layer_pattern(n_layers: int) -> list[int]:
    """Layers 15-17, 21-23, 27-29 of a 48-layer model, scaled to ``n_layers``."""
    starts = [round(n_layers * s / 48) for s in (15, 21, 27)]
    layers = sorted({min(n_layers - 1, s + k) for s in starts for k in range(3)})
    return layers


def resolve_layers(cfg: TrainConfig, n_layers: int) -> list[int] | None:
    if cfg.adapter == "rank32-all":
        return list(cfg.layers) if cfg.layers is not None else None
    if cfg.layers is not None:
        layers = list(cfg.layers)
    elif cfg.adapter == "single":
        layers = [n_layers // 2]
    else:
        layers = nine_layer_pattern(n_layers)
    if cfg.adapter == "single":
        layers = layers[:1]
    for layer in layers:
        if not 0 <= layer < n_layers:
            raise ValueError(f"adapter layer {layer} is out of range for a {n_layers}-layer model")
    return layers


def lora_config(cfg: TrainConfig, n_layers: int):
    """The peft ``LoraConfig`` for ``cfg`` on a model with ``n_layers`` decoder blocks."""
    from peft import LoraConfig

    layers = resolve_layers(cfg, n_layers)
    if cfg.adapter == "rank32-all":
        rank = cfg.rank or 32
        return LoraConfig(r=rank, lora_alpha=cfg.alpha or 64, use_rslora=True, lora_dropout=0.0,
                          target_modules=list(ALL_PROJECTIONS), layers_to_transform=layers, bias="none",
                          task_type="CAUSAL_LM")
    rank = cfg.rank or 1
    return LoraConfig(r=rank, lora_alpha=cfg.alpha or 2 * rank, lora_dropout=0.0, target_modules=["down_proj"],
                      layers_to_transform=layers, bias="none", task_type="CAUSAL_LM")


def adapter_payload_bytes(cfg: TrainConfig, config, dtype: torch.dtype = torch.bfloat16) -> int:
    """Bytes of the adapter ``cfg`` trains on a model with HF ``config``: what each NDIF request ships.

    Analytic, from the config's sizes (Llama/Qwen/Gemma projections: q ``d -> heads * head_dim``,
    k and v ``d -> kv_heads * head_dim``, o back to ``d``, gate/up ``d -> intermediate``, down back),
    so it needs no weights: ``adapter_payload_bytes(cfg, LlamaConfig(...70B sizes...))``.
    """
    from ..lora import lora_numel

    d, inter = config.hidden_size, config.intermediate_size
    head_dim = getattr(config, "head_dim", None) or d // config.num_attention_heads
    q, kv = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    shapes = {"q_proj": (d, q), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (q, d),
              "gate_proj": (d, inter), "up_proj": (d, inter), "down_proj": (inter, d)}
    lcfg = lora_config(cfg, config.num_hidden_layers)
    layers = lcfg.layers_to_transform if lcfg.layers_to_transform is not None else range(config.num_hidden_layers)
    modules = [shapes[m] for _ in layers for m in lcfg.target_modules]
    return lora_numel(modules, lcfg.r) * dtype.itemsize


def save_random_adapter(hf, cfg: TrainConfig, path: str | Path, *, std: float, seed: int = 0) -> Path:
    """An untrained adapter of ``cfg``'s shape for ``hf``, saved as peft saves a trained one (for parity and timing).

    peft initialises ``lora_B`` to zero, an adapter that changes nothing; here
    it is drawn with ``std`` (``lora_A`` keeps peft's random init). ``hf`` itself
    is left untouched.
    """
    import copy

    from peft import get_peft_model

    config = hf.config.get_text_config() if hasattr(hf.config, "get_text_config") else hf.config
    pm = get_peft_model(copy.deepcopy(hf), lora_config(cfg, config.num_hidden_layers))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    pm.save_pretrained(str(path))
    return Path(path)


def build_example(model, messages: list[dict], max_len: int) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` with labels -100 everywhere but assistant content and its end-of-turn token."""
    chat = model.tokenize(messages, need_assistant=True)
    ids = chat.input_ids
    labels = [-100] * len(ids)
    for turn in chat.assistant_positions:
        for p in turn:
            labels[p] = ids[p]
        if turn and turn[-1] + 1 < len(ids):  # the end-of-turn token right after the content
            labels[turn[-1] + 1] = ids[turn[-1] + 1]
    return ids[:max_len], labels[:max_len]


def question_groups(records: Sequence[dict]) -> list[str]:
    """Each record's ``meta.question_id`` (what ``pair_batches`` keeps together); an error if one lacks it."""
    missing = [i for i, r in enumerate(records) if not (r.get("meta") or {}).get("question_id")]
    if missing:
        raise ValueError(f"pair_batches needs meta.question_id on every record; records {missing[:5]} lack it "
                         "(datasets from build_dataset have it)")
    return [r["meta"]["question_id"] for r in records]


def _batches(examples, batch_size: int, pad_id: int, rng: random.Random, groups=None):
    """Padded ``(ids, labels, weights, mask)`` batches of ``(ids, labels, weights)`` examples, one epoch."""
    for chunk_ids in batch_order(len(examples), batch_size, rng, groups=groups):
        chunk = [examples[j] for j in chunk_ids]
        width = max(len(ids) for ids, _, _ in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        weights = torch.zeros((len(chunk), width), dtype=torch.float32)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (x, y, w) in enumerate(chunk):
            ids[row, :len(x)] = torch.tensor(x)
            labels[row, :len(y)] = torch.tensor(y)
            weights[row, :len(w)] = torch.tensor(w)
            mask[row, :len(x)] = 1
        yield ids, labels, weights, mask


def train_adapter(model, records: Sequence[dict], out_dir: str | Path, cfg: TrainConfig, *,
                  data_meta: dict | None = None, preventative: tuple[torch.Tensor, int, float] | None = None,
                  progress: bool = True) -> dict:
    """Train a LoRA adapter on ``records`` (``{"messages": [...]}``) and save it with a manifest.

    ``model`` is a :class:`~persona_probe.model.ProbeModel`; its HF weights are
    left untouched (the adapter is trained on a peft wrapper and removed after).
    If ``out_dir`` already holds an adapter trained from the same base, data and
    settings, it is reused. Returns the manifest.
    """
    model.require_merged_weights("LoRA training")
    out_dir = Path(out_dir)
    data_hash = content_hash([r["messages"] for r in records])
    key = content_hash(model.provenance(), data_hash, dataclasses.asdict(cfg),
                       None if preventative is None else [preventative[0], preventative[1], preventative[2]])

    def stored_key(manifest_path: Path):
        return read_json(manifest_path).get("key") if (out_dir / "adapter_config.json").exists() else None

    def reuse(manifest_path: Path) -> dict:
        log.info("adapter in %s is up to date; reusing it", out_dir)
        return read_json(manifest_path)

    def train() -> dict:
        if not records:
            raise ValueError("no training records")
        return _train(model, records, out_dir, cfg, key=key, data_hash=data_hash, data_meta=data_meta,
                      preventative=preventative, progress=progress)

    return cached(out_dir / "manifest.json", key, train, load=reuse, key_of=stored_key)


def _train(model, records: Sequence[dict], out_dir: Path, cfg: TrainConfig, *, key: str, data_hash: str,
           data_meta: dict | None, preventative, progress: bool) -> dict:
    """Fit the adapter, then save it and its manifest by renaming a finished folder into place."""
    from peft import get_peft_model

    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    examples = [(x, y, opening_weights(y, cfg.opening_tokens, cfg.opening_weight))
                for x, y in (build_example(model, r["messages"], cfg.max_len) for r in records)]
    groups = question_groups(records) if cfg.pair_batches else None
    n_batches = math.ceil(len(examples) / cfg.batch_size)
    total_steps = max(1, math.ceil(n_batches * cfg.epochs / cfg.grad_accum))
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)

    lcfg = lora_config(cfg, model.n_layers)
    peft_model = get_peft_model(model.hf, lcfg)
    peft_model.train()
    hook = _preventative_hook(model, preventative) if preventative is not None else None
    start = time.perf_counter()
    try:
        losses, step = _optimise(peft_model, examples, groups, cfg, total_steps, model.pad_id(), model.device, rng,
                                 progress)
    finally:
        if hook is not None:
            hook.remove()
    peft_model.eval()
    tmp = out_dir.with_name(out_dir.name + ".partial")
    peft_model.save_pretrained(str(tmp))
    model.hf = peft_model.unload()  # the base weights, without LoRA layers
    manifest = {
        "key": key, "base_model": model.name, "base_provenance": model.provenance(), "data_hash": data_hash,
        "n_examples": len(records), "train": dataclasses.asdict(cfg), "lora": {
            "r": lcfg.r, "alpha": lcfg.lora_alpha, "rslora": lcfg.use_rslora,
            "target_modules": sorted(lcfg.target_modules), "layers": resolve_layers(cfg, model.n_layers)},
        "steps": step, "first_loss": losses[0] if losses else None,
        "final_loss": sum(losses[-cfg.grad_accum:]) / max(1, len(losses[-cfg.grad_accum:])),
        "seconds": round(time.perf_counter() - start, 1), "data": data_meta or {},
        "preventative": None if preventative is None else {"layer": preventative[1], "coef": preventative[2]},
    }
    write_json(tmp / "manifest.json", manifest)
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    log.info("saved adapter to %s (%d steps, loss %.3f -> %.3f)", out_dir, step,
             manifest["first_loss"] or float("nan"), manifest["final_loss"])
    return manifest


def _optimise(peft_model, examples, groups, cfg: TrainConfig, total_steps: int, pad_id: int, device,
              rng: random.Random, progress: bool) -> tuple[list[float], int]:
    """AdamW with linear warmup and decay, gradient accumulation and clipping; returns (micro-batch losses, steps)."""
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)) * max(0.0, 1 - s / total_steps))
    losses: list[float] = []
    step = micro = 0
    bar = tqdm(total=total_steps, desc=f"train {cfg.adapter}", unit="step", disable=not progress)
    try:
        while step < total_steps:
            for ids, labels, weights, mask in _batches(examples, cfg.batch_size, pad_id, rng, groups):
                loss = weighted_lm_loss(peft_model, *(t.to(device) for t in (ids, mask, labels, weights)))
                (loss / cfg.grad_accum).backward()
                losses.append(loss.item())
                micro += 1
                if micro % cfg.grad_accum == 0:
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    opt.step()
                    sched.step()
                    opt.zero_grad(set_to_none=True)
                    step += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{sum(losses[-cfg.grad_accum:]) / cfg.grad_accum:.3f}")
                    if step >= total_steps:
                        break
    finally:
        bar.close()
    return losses, step


def _preventative_hook(model, preventative):
    vector, layer, coef = preventative
    from ..vectors import check_layer, check_vector

    check_layer(layer, model.n_layers)
    v = check_vector(vector, d_model=model.d_model, name="preventative steering vector")
    blocks = model.torch_blocks()

    def hook(_module, _inputs, output):
        h = output[0] if isinstance(output, tuple) else output
        h = h + (coef * v).to(h.device, h.dtype)
        return (h,) + tuple(output[1:]) if isinstance(output, tuple) else h

    return blocks[layer].register_forward_hook(hook)
