"""SAE decomposition: which sparse features point along the Assistant Axis and the mean-diff direction?

Why: the axis and the mean-diff misalignment direction are single directions
averaged over many answers. A sparse autoencoder splits the residual stream at
one layer into features; if a handful of features carry the axis (or the
misalignment direction), their top-activating answer snippets say in words
what the direction encodes, and whether "misaligned persona" is one feature or
a blend.

What runs:

1. Token-level residual activations (output of decoder block ``layer``) over the
   assistant-content tokens of the run's answers (every model x condition of
   the uncapped stress cells) and the axis rollouts, read from ``source_model``
   (default the organism: the model that gets capped and that misbehaves).
2. An SAE from sae_lens: a ``TopKTrainingSAE`` (or ``StandardTrainingSAE``, L1)
   trained by sae_lens's own ``SAETrainer`` on those activations in memory, or
   any sae_lens SAE loaded from a local folder (``sae_path``, for real models
   with published SAEs; its ``hook_name`` gives the layer when it is a
   ``blocks.N.hook_resid_post`` SAE). Trained weights are saved with
   ``save_inference_model`` (``sae_weights.safetensors`` + ``cfg.json``), so
   ``SAE.load_from_disk`` reads them back.
3. Reconstruction quality on held-out answers (whole answers held out, not
   tokens): explained variance, L0, dead-feature share.
4. Cosine of every decoder direction with the axis and the mean-diff at that
   layer, against two baselines that can beat a weak result: isotropic random
   directions, and random directions drawn from the activations' own
   covariance (decoder rows live where the activations vary, so any direction
   there aligns better than an isotropic one). ``p_*`` is the share of
   baseline directions whose best |cosine| reaches the real one's.
5. For the most aligned features: cosines, firing rate per answer group, and
   the top-activating snippets (the max token in ``[[...]]``).
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import Any, Sequence
from unittest import mock

import numpy as np
import torch

from ..io import cached, content_hash, load_tensors, read_json, read_jsonl, save_tensors, write_json, write_jsonl
from ..vectors import check_layer, random_like, unit
from .rundir import RunFolder
from .tokens import TokenActs, collect_token_activations, run_conversations

log = logging.getLogger(__name__)

__all__ = ["TokenActs", "run_conversations", "collect_token_activations", "train_sae", "load_sae",
           "evaluate_sae", "decoder_cosines", "baseline_max_cosines", "top_features", "feature_snippets",
           "figures", "run"]

NAME = "sae"
_HOOK_RE = re.compile(r"blocks\.(\d+)\.hook_resid_post$")


def _batches(acts: torch.Tensor, batch_size: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    while True:
        for idx in torch.randperm(acts.shape[0], generator=g).split(batch_size):
            if len(idx) == batch_size:
                yield acts[idx]


def train_sae(acts: torch.Tensor, out_dir: str | Path, *, d_sae: int = 1024, architecture: str = "topk", k: int = 32,
              l1_coefficient: float = 5.0, steps: int = 2000, batch_size: int = 256, lr: float = 3e-4, seed: int = 0,
              metadata: dict | None = None, progress: bool = True):
    """Train an sae_lens SAE with sae_lens's ``SAETrainer`` on ``acts [N, d]``; save and reload it for inference.

    Inputs are rescaled to mean squared norm ``d`` during training (sae_lens's ``expected_average_only_in``) and
    the scale is folded into the weights at the end, so the saved SAE reads raw activations. Resumes when
    ``out_dir/manifest.json`` has the same key.
    """
    from sae_lens import SAE

    if architecture not in ("topk", "standard"):
        raise ValueError(f"architecture must be 'topk' or 'standard', got {architecture!r}")
    if acts.ndim != 2 or acts.shape[0] < batch_size:
        raise ValueError(f"need [N, d] activations with N >= batch_size ({batch_size}); got {tuple(acts.shape)}: "
                         f"collect more tokens or lower batch_size")
    if architecture == "topk" and not 0 < k <= d_sae:
        raise ValueError(f"k must be in 1..d_sae ({d_sae}), got {k}")
    out_dir = Path(out_dir)
    settings = {"d_sae": d_sae, "architecture": architecture, "k": k, "l1_coefficient": l1_coefficient,
                "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed}
    key = content_hash(acts, settings)
    return cached(out_dir / "manifest.json", key,
                  lambda: _fit_sae(acts, out_dir, key, settings, metadata, progress),
                  load=lambda path: (SAE.load_from_disk(out_dir), read_json(path)),
                  key_of=lambda path: read_json(path).get("key"))


def _fit_sae(acts: torch.Tensor, out_dir: Path, key: str, settings: dict, metadata: dict | None, progress: bool):
    from sae_lens import SAE
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    d_sae, architecture, k, l1_coefficient, steps, batch_size, lr, seed = (settings[n] for n in (
        "d_sae", "architecture", "k", "l1_coefficient", "steps", "batch_size", "lr", "seed"))
    torch.manual_seed(seed)
    common = dict(d_in=acts.shape[1], d_sae=d_sae, normalize_activations="expected_average_only_in")
    if architecture == "topk":
        from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig

        sae = TopKTrainingSAE(TopKTrainingSAEConfig(k=k, **common))
    else:
        from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig

        sae = StandardTrainingSAE(StandardTrainingSAEConfig(l1_coefficient=l1_coefficient,
                                                            l1_warm_up_steps=steps // 10, **common))
    for name, value in (metadata or {}).items():
        setattr(sae.cfg.metadata, name, value)
    tcfg = SAETrainerConfig(total_training_samples=steps * batch_size, train_batch_size_samples=batch_size, lr=lr,
                            lr_end=lr / 10,
                            lr_warm_up_steps=steps // 20, dead_feature_window=max(10, min(1000, steps // 4)),
                            feature_sampling_window=max(10, min(2000, steps // 2)),
                            logger=LoggingConfig(log_to_wandb=False))
    trainer = SAETrainer(cfg=tcfg, sae=sae, data_provider=_batches(acts.float(), batch_size, seed))
    # sae_lens's own scaler, set from all tokens (fit() folds it into the weights at the end); b_dec starts at
    # the scaled mean, the usual init, so a short run does not spend its steps learning the offset
    scale = acts.shape[1] ** 0.5 / float(acts.float().norm(dim=-1).mean())
    trainer.activation_scaler.scaling_factor = scale
    with torch.no_grad():
        sae.b_dec.copy_(acts.float().mean(0) * scale)
    with contextlib.ExitStack() as stack:
        if not progress:  # SAETrainer has no switch for its bar; hand it a silent tqdm for this call only
            import functools

            from sae_lens.training import sae_trainer
            from tqdm.auto import tqdm

            stack.enter_context(mock.patch.object(sae_trainer, "tqdm", functools.partial(tqdm, disable=True)))
        sae = trainer.fit()
    sae.save_inference_model(out_dir)
    manifest = {"key": key, "settings": settings, "n_tokens": acts.shape[0], "sae_lens_trainer": "SAETrainer",
                "num_dead_features": sae.cfg.metadata.get("num_dead_features"), "train_l0": sae.cfg.metadata.get("l0")}
    write_json(out_dir / "manifest.json", manifest)
    return SAE.load_from_disk(out_dir), manifest


def load_sae(path: str | Path, d_model: int, layer: int | None = None):
    """An sae_lens SAE from a local folder (``cfg.json`` + ``sae_weights.safetensors``), its layer checked."""
    from sae_lens import SAE

    path = Path(path)
    if not (path / "cfg.json").exists():
        raise FileNotFoundError(f"{path}: no cfg.json; pass a folder written by sae_lens (save_model / "
                                f"save_inference_model) or downloaded from a release")
    sae = SAE.load_from_disk(path)
    if sae.cfg.d_in != d_model:
        raise ValueError(f"{path}: the SAE reads width {sae.cfg.d_in} but the model's residual stream is {d_model}")
    hook = sae.cfg.metadata.get("hook_name") or ""
    m = _HOOK_RE.search(hook)
    if layer is None:
        if not m:
            raise ValueError(f"{path}: hook {hook!r} is not a blocks.N.hook_resid_post hook; pass layer= explicitly")
        layer = int(m.group(1))
    elif m and int(m.group(1)) != layer:
        raise ValueError(f"{path}: the SAE was trained at layer {m.group(1)} ({hook}) but layer={layer} was asked for")
    return sae, layer


@torch.no_grad()
def evaluate_sae(sae, acts: torch.Tensor, batch: int = 4096) -> dict:
    """Explained variance ``1 - SSE / SST``, mean L0, dead share (never fires here), on ``acts [N, d]``."""
    sse = torch.zeros((), dtype=torch.float64)
    l0 = torch.zeros((), dtype=torch.float64)
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    mean = acts.double().mean(0)
    for chunk in acts.float().split(batch):
        f = sae.encode(chunk.to(sae.dtype))
        sse += ((sae.decode(f).double() - chunk.double()) ** 2).sum()
        l0 += (f > 0).sum()
        fired |= (f > 0).any(0)
    sst = ((acts.double() - mean) ** 2).sum()
    return {"explained_variance": float(1 - sse / sst), "l0": float(l0 / acts.shape[0]),
            "dead_fraction": float((~fired).float().mean()), "n_tokens": int(acts.shape[0])}


def decoder_cosines(sae, direction: torch.Tensor) -> torch.Tensor:
    """Cosine of each decoder row ``W_dec[i]`` with ``direction [d]`` -> ``[d_sae]``."""
    w = sae.W_dec.detach().float()
    return unit(w) @ unit(direction.float())


def baseline_max_cosines(sae, direction: torch.Tensor, acts: torch.Tensor, *, n: int = 100, seed: int = 0) -> dict:
    """Best |cosine| over features for ``n`` isotropic and ``n`` covariance-matched random directions."""
    g = torch.Generator().manual_seed(seed)
    centred = acts.float() - acts.float().mean(0)
    iso = torch.stack([random_like(direction, seed=seed + i) for i in range(n)])
    cov = torch.randn(n, centred.shape[0], generator=g) @ centred  # samples of N(0, N * Sigma)
    w = unit(sae.W_dec.detach().float())
    return {"isotropic": (unit(iso) @ w.T).abs().amax(1), "covariance": (unit(cov) @ w.T).abs().amax(1),
            "isotropic_all": (unit(iso[:5]) @ w.T).flatten(), "covariance_all": (unit(cov[:5]) @ w.T).flatten()}


def top_features(cos: dict[str, torch.Tensor], n: int = 10) -> list[int]:
    """Union of the ``n`` features with the largest |cosine| for each direction, in order of first appearance."""
    seen: dict[int, None] = {}
    for c in cos.values():
        for i in c.abs().argsort(descending=True)[:n].tolist():
            seen[i] = None
    return list(seen)


@torch.no_grad()
def feature_snippets(sae, tokens: TokenActs, features: Sequence[int], tokenizer, *, n_top: int = 5,
                     window: int = 8) -> dict[int, dict]:
    """Per feature and answer source: token firing rate, and the share of answers in which it fires at least once
    (Wilson interval: answers, not tokens, are the independent units); plus the top-activating tokens in context."""
    from ..metrics import rate as wilson_rate

    acts = torch.cat([sae.encode(c.to(sae.dtype)).float() for c in tokens.acts.float().split(4096)])
    sources = [d["source"] for d in tokens.docs]
    src_of_tok = np.array([sources[i] for i in tokens.doc.tolist()])
    present = sorted(set(tokens.doc.tolist()))
    out = {}
    for f in features:
        col = acts[:, f]
        per_doc = _fires_per_doc(col, tokens.doc, len(tokens.docs))
        rate = {}
        for s in sorted({sources[d] for d in present}):
            mask = torch.from_numpy(src_of_tok == s)
            docs = [d for d in present if sources[d] == s]
            rate[s] = {"token_rate": float((col[mask] > 0).float().mean()), "n_tokens": int(mask.sum()),
                       "answers": vars(wilson_rate(bool(per_doc[d]) for d in docs))}
        snippets, used = [], set()
        for t in col.argsort(descending=True).tolist():
            if col[t] <= 0 or len(snippets) >= n_top:
                break
            d = int(tokens.doc[t])
            if d in used:
                continue
            used.add(d)
            ids, p = tokens.docs[d]["input_ids"], int(tokens.pos[t])
            dec = lambda a, b, ids=ids: tokenizer.decode(ids[max(0, a):b], skip_special_tokens=True)
            snippets.append({"source": sources[d], "activation": float(col[t]),
                             "text": f"{dec(p - window, p)}[[{dec(p, p + 1)}]]{dec(p + 1, p + 1 + window)}"})
        out[f] = {"firing_rate": float((col > 0).float().mean()), "firing_rate_by_source": rate, "top": snippets}
    return out


def _fires_per_doc(col: torch.Tensor, doc: torch.Tensor, n_docs: int) -> torch.Tensor:
    fired = torch.zeros(n_docs, dtype=torch.long)
    fired.index_add_(0, doc, (col > 0).long())
    return fired > 0


def figures(numbers: dict, hist: dict[str, list[float]]) -> dict:
    import plotly.graph_objects as go

    figs = {}
    fig = go.Figure()
    for name, vals in hist.items():
        fig.add_trace(go.Histogram(x=vals, name=name, histnorm="probability", opacity=0.6, nbinsx=60))
    fig.update_layout(barmode="overlay", title=f"Decoder-direction cosines with the axis (layer {numbers['layer']})",
                      xaxis_title="cosine(W_dec[i], direction)", yaxis_title="share of features")
    figs["decoder_cosines"] = fig
    feats = numbers["features"]
    fig = go.Figure()
    for key in ("cos_axis", "cos_mean_diff"):
        if all(f.get(key) is not None for f in feats):
            fig.add_trace(go.Bar(x=[f"f{f['feature']}" for f in feats], y=[f[key] for f in feats], name=key))
    fig.update_layout(barmode="group", title="Features most aligned with the axis / the mean-diff direction",
                      yaxis_title="cosine", xaxis_title="SAE feature")
    figs["top_features"] = fig
    return figs


def run(run_folder: str | Path, *, layer: int | None = None, source_model: str = "organism",
        sae_path: str | Path | None = None, d_sae: int = 1024, architecture: str = "topk", k: int = 32,
        l1_coefficient: float = 5.0, steps: int = 2000, batch_size: int = 256, lr: float = 3e-4,
        max_tokens: int = 20000, heldout_fraction: float = 0.1, axis_rollouts: bool = True, n_top: int = 10,
        n_snippets: int = 5, n_baseline: int = 100, seed: int = 0, figures_out: bool = True,
        progress: bool = True) -> dict:
    """Collect token activations, train (or load) the SAE, score it, rank features; write numbers.json + figures."""
    from ..plots import save_figures

    settings = {"layer": layer, "source_model": source_model, "sae_path": None if sae_path is None else str(sae_path),
                "d_sae": d_sae, "architecture": architecture, "k": k, "l1_coefficient": l1_coefficient, "steps": steps,
                "batch_size": batch_size, "lr": lr, "max_tokens": max_tokens, "heldout_fraction": heldout_fraction,
                "axis_rollouts": axis_rollouts, "n_top": n_top, "n_snippets": n_snippets, "n_baseline": n_baseline,
                "seed": seed}
    run_ = run_folder if isinstance(run_folder, RunFolder) else RunFolder(run_folder)
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    if sae_path is not None and not Path(sae_path).exists():
        raise FileNotFoundError(f"{sae_path}: no such SAE folder")
    out = run_.out_dir(NAME)
    model = run_.load_model(source_model)
    sae = None
    if sae_path is not None:
        sae, layer = load_sae(sae_path, model.d_model, layer)
    settings["layer"] = layer = model.target_layer if layer is None else check_layer(layer, model.n_layers)
    tokens = _tokens(run_, model, out, layer, source_model, axis_rollouts, max_tokens, seed, progress)
    n_docs = len(tokens.docs)
    held = set(np.random.default_rng(seed).permutation(n_docs)[:max(1, round(heldout_fraction * n_docs))].tolist())
    train_t, test_t = tokens.subset([d for d in range(n_docs) if d not in held]), tokens.subset(sorted(held))
    if sae is None:
        sae, trained = train_sae(train_t.acts, out / "sae", d_sae=d_sae, architecture=architecture, k=k,
                                 l1_coefficient=l1_coefficient, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                                 progress=progress, metadata={"model_name": model.name,
                                                              "hook_name": f"blocks.{layer}.hook_resid_post"})
        sae_info: dict[str, Any] = {"source": "trained here", "path": str(out / "sae"), **trained}
    else:
        sae_info = {"source": "loaded", "path": str(sae_path), "architecture": sae.cfg.architecture(),
                    "d_sae": sae.cfg.d_sae}
    sae = sae.to(dtype=torch.float32)
    directions = {"axis": run_.axis()[layer].float()}
    md = run_.mean_diff()
    if md is not None:
        directions["mean_diff"] = md[layer].float()
    cos = {name: decoder_cosines(sae, v) for name, v in directions.items()}
    feats = top_features(cos, n_top)
    snippets = feature_snippets(sae, tokens, feats, model.tokenizer, n_top=n_snippets)
    alignment, baselines = _alignment(sae, directions, cos, train_t.acts, n_baseline=n_baseline, seed=seed)
    numbers = {
        "layer": layer, "source_model": source_model, "settings": settings,
        "provenance": {"model": model.provenance(), "run": str(run_.root), "seed": seed},
        "tokens": {"n_tokens": int(tokens.acts.shape[0]), "n_answers": n_docs, "max_tokens": max_tokens,
                   "n_heldout_answers": len(held), "sources": sorted({d["source"] for d in tokens.docs})},
        "sae": sae_info,
        "reconstruction": {"heldout": evaluate_sae(sae, test_t.acts), "train": evaluate_sae(sae, train_t.acts)},
        "alignment": alignment,
        "features": [{"feature": f, **{f"cos_{n}": float(c[f]) for n, c in cos.items()},
                      **({"cos_mean_diff": None} if "mean_diff" not in cos else {}), **snippets[f]} for f in feats],
        "note": "cosines are signed: + along the axis = more Assistant-like; + along the mean-diff = more misaligned",
    }
    if figures_out:
        hist = {"axis": cos["axis"].tolist(),
                "isotropic random (5 directions)": baselines["axis"]["isotropic_all"].tolist(),
                "covariance-matched random (5 directions)": baselines["axis"]["covariance_all"].tolist()}
        numbers["figures"] = [p.name for p in save_figures(out, figures(numbers, hist))]
    write_json(out / "numbers.json", numbers)
    return numbers


def _tokens(run_: RunFolder, model, out: Path, layer: int, source_model: str, axis_rollouts: bool, max_tokens: int,
            seed: int, progress: bool) -> TokenActs:
    """The run's token activations at ``layer`` (cached: ``tokens-<key>.safetensors`` + ``.jsonl`` of the answers)."""
    convs = run_conversations(run_, axis_rollouts=axis_rollouts, prefer=source_model)
    tpath = out / f"tokens-{content_hash(model.provenance(), layer, convs, max_tokens, seed)}.safetensors"

    def load(path: Path) -> TokenActs:
        t = load_tensors(path)[0]
        return TokenActs(t["acts"], t["doc"], t["pos"], read_jsonl(path.with_suffix(".jsonl")))

    def save(path: Path, tokens: TokenActs) -> None:
        write_jsonl(path.with_suffix(".jsonl"), tokens.docs)
        save_tensors(path, {"acts": tokens.acts, "doc": tokens.doc, "pos": tokens.pos}, {"layer": layer})

    return cached(tpath, None, lambda: collect_token_activations(model, convs, layer, max_tokens=max_tokens,
                                                                 seed=seed, progress=progress), load=load, save=save)


def _alignment(sae, directions: dict, cos: dict, acts: torch.Tensor, *, n_baseline: int, seed: int):
    """Per direction: the best |cosine| over features against isotropic and covariance-matched random directions."""
    alignment, baselines = {}, {}
    for name, v in directions.items():
        base = baselines[name] = baseline_max_cosines(sae, v, acts, n=n_baseline, seed=seed)
        real = float(cos[name].abs().max())
        alignment[name] = {"max_abs_cos": real, "best_feature": int(cos[name].abs().argmax()), "baselines": {
            b: {"median": float(base[b].median()), "q95": float(base[b].quantile(0.95)), "n": n_baseline,
                "p_baseline_ge_real": (1 + int((base[b] >= real).sum())) / (1 + n_baseline)}
            for b in ("isotropic", "covariance")}}
    return alignment, baselines
