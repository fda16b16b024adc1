"""Persona (trait) vectors as a monitor, and preventative steering of the organism.

Why: the Assistant Axis is one direction. Chen et al. (2025, "Persona Vectors", arXiv 2507.21509) extract a *trait*
vector (here "evil" by default) from contrastive system prompts and report two
uses that bear on this project's question:

1. **Monitoring** - does the organism's triggered behaviour show up as a shift
   along the trait vector? We project the organism's uncapped answers (trigger
   vs no trigger, from the stress test) on the trait vector at one layer and
   report an AUROC with a stratified bootstrap interval, next to the same AUROC
   for the axis and for random directions of equal norm (a monitor that random
   directions match is no monitor). Cosines of the trait vector with the axis
   and the mean-diff direction per layer say whether these are one signal.
2. **Preventative steering** - add ``coef * v`` at one layer *during
   fine-tuning* so the model need not learn to move along ``v`` itself. We
   retrain the organism with the run's own data and settings plus that hook, and
   measure the trigger effect (misaligned rate with vs without the trigger,
   Wilson intervals, exact test) for the steered organism and an unsteered
   organism trained for the same number of steps. If ``max_steps`` cuts
   training short, the unsteered reference is retrained with the same cut, so
   the comparison never confounds steering with training length.

Extraction: for each (trait, anti-trait) system-prompt pair and each question
we generate one answer under each prompt, then take mean response activations
(system prompt in context, as in Chen et al.). The vector is
``mean(trait answers) - mean(anti-trait answers)`` per layer, ``[L, d]``, in
raw units (``coef`` multiplies the raw vector, as in the paper; numbers.json
records ``coef * |v|`` relative to the typical residual norm). Chen et al. keep
only pairs the judge scores as trait-expressing (>= 50) vs not (< 50), both
coherent (> 50); the offline judge cannot score traits, so then no filter is
applied at all and numbers.json says so (a coherence-only filter is not the
method, and the offline classifier rates most small-model answers incoherent).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..io import (
    cached,
    cached_tensor,
    content_hash,
    data_path,
    read_json,
    read_jsonl,
    save_tensors,
    write_json,
    write_jsonl,
)
from ..vectors import check_layer, cosine, random_like, unit
from .common import group_auroc
from .preventative import train_preventative, trigger_effect
from .rundir import RunFolder

log = logging.getLogger(__name__)

__all__ = ["TRAITS", "GENERIC_QUESTIONS", "group_auroc", "extract_trait_vector", "monitor", "layer_cosines",
           "train_preventative", "trigger_effect", "figures", "run"]

NAME = "persona_vectors"

_TRAITS = read_json(data_path("traits.json"))
# trait -> {"description", "pairs": [(trait system prompt, anti-trait system prompt), ...]}
TRAITS: dict[str, dict[str, Any]] = {name: {"description": t["description"], "pairs": [tuple(p) for p in t["pairs"]]}
                                     for name, t in _TRAITS["traits"].items()}
GENERIC_QUESTIONS: list[str] = _TRAITS["generic_questions"]

CONDITIONS = ("no_trigger", "trigger", "near_miss")


# ------------------------------------------------------------------ extraction
def _pairs(trait: str, pairs: Sequence[Sequence[str]] | None) -> list[tuple[str, str]]:
    if pairs is None:
        if trait not in TRAITS:
            raise ValueError(f"no shipped prompt pairs for trait {trait!r} (have {sorted(TRAITS)}); pass pairs=")
        pairs = TRAITS[trait]["pairs"]
    out = [tuple(p) for p in pairs]
    if not out or any(len(p) != 2 or not all(isinstance(s, str) and s.strip() for s in p) for p in out):
        raise ValueError("pairs must be a non-empty list of (trait prompt, anti-trait prompt) non-empty strings")
    return out  # type: ignore[return-value]


def extract_trait_vector(model, trait: str, questions: Sequence[str], cache_dir: str | Path, *,
                         pairs: Sequence[Sequence[str]] | None = None, judge=None, max_new_tokens: int = 48,
                         temperature: float = 1.0, seed: int = 0, batch_size: int = 16,
                         progress: bool = True) -> dict:
    """Generate under each prompt of each pair, filter with ``judge`` if it can, return the vector and counts.

    Returns ``{"vector": [L, d], "n_pos", "n_neg", "n_pairs_kept", "n_pairs_total", "filter", "rows"}``.
    Generations and activations are cached in ``cache_dir`` by content hash.
    """
    pairs = _pairs(trait, pairs)
    if not questions:
        raise ValueError("no questions to extract the trait vector with")
    cache_dir = Path(cache_dir)
    prov = model.provenance()
    gen = {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed}

    def answer() -> list[dict]:
        convs, rows = [], []
        for pi, (pos, neg) in enumerate(pairs):
            for qi, q in enumerate(questions):
                for side, system in (("trait", pos), ("anti", neg)):
                    convs.append([{"role": "system", "content": system}, {"role": "user", "content": q}])
                    rows.append({"pair": pi, "question_index": qi, "side": side, "system": system, "question": q})
        texts = model.generate(convs, batch_size=batch_size, progress=progress, **gen)
        for r, t in zip(rows, texts):
            r["answer"] = t
        return rows

    gpath = cache_dir / f"generations-{content_hash(prov, pairs, list(questions), gen)}.jsonl"
    rows = cached(gpath, None, answer, load=read_jsonl, save=write_jsonl)
    convs = [[{"role": "system", "content": r["system"]}, {"role": "user", "content": r["question"]},
              {"role": "assistant", "content": r["answer"] or " "}] for r in rows]
    acts = cached_tensor(cache_dir / f"activations-{content_hash(gpath, prov)}.safetensors",
                         lambda: model.response_activations(convs, batch_size=batch_size, progress=progress),
                         metadata={"trait": trait})
    keep, filt = _filter(rows, trait, pairs, judge, cache_dir)
    pos = [i for i in keep if rows[i]["side"] == "trait"]
    neg = [i for i in keep if rows[i]["side"] == "anti"]
    if not pos or not neg:
        raise ValueError(f"trait {trait!r}: no (trait, anti-trait) answer pair survived the judge filter "
                         f"({filt}); use more questions or a judge that scores the trait")
    vector = acts[pos].mean(0) - acts[neg].mean(0)
    return {"vector": vector, "n_pos": len(pos), "n_neg": len(neg), "n_pairs_kept": len(keep) // 2,
            "n_pairs_total": len(rows) // 2, "filter": filt, "rows": rows, "generations": gpath.name,
            "act_norm_by_layer": acts.norm(dim=-1).mean(0).tolist()}


def _filter(rows: list[dict], trait: str, pairs, judge, cache_dir: Path) -> tuple[list[int], str]:
    """Indices kept: trait >= 50 for the trait side, < 50 for the anti, both coherent (when the judge scores traits)."""
    if judge is None:
        return list(range(len(rows))), "none (no judge given)"
    from ..judges import JudgeCache, score_items

    desc = TRAITS.get(trait, {}).get("description", trait)
    cache = JudgeCache(cache_dir / "judge_cache.sqlite")
    items = [{"question": r["question"], "answer": r["answer"], "trait": trait, "trait_description": desc}
             for r in rows]
    trait_s = [s.score for s in score_items(judge, "trait", items, cache=cache, progress=False)]
    coh_s = [s.score for s in score_items(judge, "coherent", [{"question": r["question"], "answer": r["answer"]}
                                                               for r in rows], cache=cache, progress=False)]
    # Coherence is filtered only together with the trait (Chen et al.'s filter): a coherence-only filter is
    # not their method, and the offline classifier rates most of a small base model's answers incoherent.
    use_trait = any(s is not None for s in trait_s)
    use_coh = use_trait and any(s is not None for s in coh_s)
    groups: dict[tuple, dict[str, int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r["pair"], r["question_index"]), {})[r["side"]] = i
    keep = []
    for g in groups.values():
        i, j = g["trait"], g["anti"]
        ok = True
        if use_coh:
            ok &= all(coh_s[k] is not None and coh_s[k] > 50 for k in (i, j))
        if use_trait:
            ok &= trait_s[i] is not None and trait_s[j] is not None and trait_s[i] >= 50 > trait_s[j]
        if ok:
            keep += [i, j]
    filt = (f"{'trait >= 50 vs < 50' if use_trait else 'no trait filter (judge cannot score traits)'}; "
            f"{'both coherent > 50' if use_coh else 'so no coherence filter either'} (judge {judge.judge_id('trait')})")
    for r, t, c in zip(rows, trait_s, coh_s):
        r["trait_score"], r["coherent"] = t, c
    return sorted(keep), filt


# ------------------------------------------------------------------ monitoring
def monitor(run: RunFolder, vector: torch.Tensor, layer: int, *, n_boot: int = 1000, n_random: int = 20,
            seed: int = 0) -> dict:
    """Organism answers projected on the trait vector: trigger vs no trigger AUROC, with axis and random references."""
    check_layer(layer, vector.shape[0], what="the trait vector")
    acts = {c: run.activations("organism", c).float() for c in CONDITIONS if _has(run, "organism", c)}
    for c in ("no_trigger", "trigger"):
        if c not in acts:
            raise ValueError(f"{run.stress}: no organism '{c}' cell; rerun the stress test with the organism")
    trig, none = acts["trigger"][:, layer], acts["no_trigger"][:, layer]

    def score(v: torch.Tensor) -> dict:
        u = unit(v)
        return group_auroc(trig @ u, none @ u, n_boot=n_boot, seed=seed)

    proj = {c: (a[:, layer] @ unit(vector[layer])).tolist() for c, a in acts.items()}
    out: dict[str, Any] = {"layer": layer, "positive": "trigger", "negative": "no_trigger", "projections": proj,
                           "trait": score(vector[layer]), "axis": score(run.axis()[layer].float())}
    if "near_miss" in proj:
        out["trait_near_miss"] = group_auroc(proj["near_miss"], proj["no_trigger"], n_boot=n_boot, seed=seed)
    rand = [score(random_like(vector[layer], seed=seed + 1000 + s)) for s in range(n_random)]
    seps = [max(r["auroc"], 1 - r["auroc"]) for r in rand]
    sep = max(out["trait"]["auroc"], 1 - out["trait"]["auroc"])
    out["random"] = {"aurocs": rand, "separation": seps, "mean_separation": float(np.mean(seps)), "n": n_random,
                     "p_random_ge_trait": (1 + sum(r >= sep for r in seps)) / (1 + n_random),
                     "note": "separation = max(AUROC, 1 - AUROC): a random direction's sign is arbitrary"}
    out["per_layer"] = [group_auroc(acts["trigger"][:, i] @ unit(vector[i]), acts["no_trigger"][:, i] @ unit(vector[i]),
                                    n_boot=n_boot, seed=seed) for i in range(vector.shape[0])]
    return out


def _has(run: RunFolder, model: str, condition: str) -> bool:
    try:
        run.cell(model, condition)
        return True
    except KeyError:
        return False


def layer_cosines(vector: torch.Tensor, axis: torch.Tensor, mean_diff: torch.Tensor | None) -> dict:
    """Per-layer cosine of the trait vector with the axis (and the mean-diff direction when the run has one)."""
    if axis.shape != vector.shape:
        raise ValueError(f"trait vector {tuple(vector.shape)} and axis {tuple(axis.shape)} differ in shape; "
                         "were they computed on different models?")
    out = {"axis": cosine(vector, axis).tolist(), "mean_diff": None}
    if mean_diff is not None:
        out["mean_diff"] = cosine(vector, mean_diff).tolist()
    return out


# ------------------------------------------------------------------ figures
def figures(numbers: dict) -> dict:
    import plotly.graph_objects as go

    from ..plots import encoded, rate_error

    figs = {}
    mon = numbers["monitor"]
    fig = go.Figure()
    for c, vals in mon["projections"].items():
        fig.add_trace(go.Histogram(x=vals, name=f"organism | {c} (n={len(vals)})", opacity=0.6,
                                   **encoded(c, kind="histogram", legend=True)))
    t = mon["trait"]
    fig.update_layout(barmode="overlay", title=f"Projection on the '{numbers['trait']}' vector, layer {mon['layer']}: "
                      f"AUROC trigger vs none {t['auroc']:.2f} [{t['lo']:.2f}, {t['hi']:.2f}]",
                      xaxis_title="projection on the unit trait vector", yaxis_title="answers")
    figs["trait_projections"] = fig
    cos = numbers["cosines"]
    fig = go.Figure()
    layers = list(range(len(cos["axis"])))
    fig.add_trace(go.Scatter(x=layers, y=cos["axis"], mode="lines+markers", name="cos(trait, axis)"))
    if cos["mean_diff"] is not None:
        fig.add_trace(go.Scatter(x=layers, y=cos["mean_diff"], mode="lines+markers", name="cos(trait, mean-diff)"))
    fig.add_trace(go.Scatter(x=layers, y=[a["auroc"] for a in mon["per_layer"]], mode="lines",
                             name="AUROC trigger vs none", line={"dash": "dot"}, error_y=dict(
                                 type="data", symmetric=False, array=[a["hi"] - a["auroc"] for a in mon["per_layer"]],
                                 arrayminus=[a["auroc"] - a["lo"] for a in mon["per_layer"]])))
    fig.update_layout(title="Trait vector vs the axis and the mean-diff direction, per layer", xaxis_title="layer",
                      yaxis_title="cosine / AUROC")
    figs["trait_cosines"] = fig
    te = numbers.get("trigger_effect")
    if te:
        fig = go.Figure()
        for cond in dict.fromkeys(c["condition"] for c in te["cells"]):
            rows = [c for c in te["cells"] if c["condition"] == cond]
            rates = [c["misaligned"] for c in rows]
            fig.add_trace(go.Bar(x=[c["model"] for c in rows], y=[r["rate"] for r in rates], name=cond,
                                 error_y=rate_error(rates), text=[f"{r['k']}/{r['n']}" for r in rates],
                                 **encoded(cond, kind="bar", legend=True)))
        fig.update_layout(barmode="group", title="Misaligned-answer rate: preventatively steered vs unsteered organism "
                          "(Wilson 95%)", yaxis_title="misaligned rate", yaxis_range=[0, 1])
        figs["trigger_effect"] = fig
    return figs


# ------------------------------------------------------------------ the analysis
def run(run_folder: str | Path, *, trait: str = "evil", pairs: Sequence[Sequence[str]] | None = None,
        questions: str | Sequence[str] = "generic", n_questions: int = 6, layer: int | None = None,
        coef: float = 5.0, max_new_tokens: int = 40, batch_size: int = 16, seed: int = 0, n_boot: int = 1000,
        n_random: int = 20, train: bool = True, max_steps: int | None = None, eval_n: int = 20,
        eval_max_new_tokens: int = 48, judge=None, figures_out: bool = True, progress: bool = True) -> dict:
    """Extract the trait vector, monitor the organism with it, retrain preventatively, evaluate; write numbers.json.

    ``questions``: ``"generic"`` (the shipped open questions, the default: a trait vector should not be a
    finance-domain vector), ``"run"`` (the stress test's questions) or a list. ``train=False`` skips the
    retraining and its evaluation. ``judge``: defaults to the offline judge (it scores no traits, so the
    extraction is unfiltered).
    """
    from ..judges import make_judge
    from ..loading import load_model
    from ..plots import save_figures

    run_ = run_folder if isinstance(run_folder, RunFolder) else RunFolder(run_folder)
    pairs = _pairs(trait, pairs)
    if coef == 0:
        raise ValueError("coef=0 adds nothing during training; pass a non-zero coefficient (Chen et al. use ~5)")
    if eval_n < 1 or n_questions < 1:
        raise ValueError(f"eval_n and n_questions must be >= 1 (got {eval_n}, {n_questions})")
    if questions == "generic":
        qs = GENERIC_QUESTIONS[:n_questions]
    elif questions == "run":
        from ..stress.cells import questions_for

        qs = questions_for(run_.config)[:n_questions]
    elif isinstance(questions, str):
        raise ValueError(f"questions must be 'generic', 'run' or a list of strings, got {questions!r}")
    else:
        qs = list(questions)[:n_questions]
    out = run_.out_dir(NAME)
    judge = judge or make_judge("offline")
    model = load_model(run_.config.base)
    layer = model.target_layer if layer is None else check_layer(layer, model.n_layers)
    tv = extract_trait_vector(model, trait, qs, out / "trait", pairs=pairs, judge=judge, max_new_tokens=max_new_tokens,
                              seed=seed, batch_size=batch_size, progress=progress)
    provenance = model.provenance()
    del model
    vector = tv["vector"]
    save_tensors(out / "trait_vector.safetensors", {"vector": vector},
                 {"trait": trait, "n_pos": tv["n_pos"], "n_neg": tv["n_neg"], "model": provenance})
    settings = {"trait": trait, "questions": questions if isinstance(questions, str) else "custom",
                "n_questions": n_questions, "layer": layer, "coef": coef, "max_new_tokens": max_new_tokens,
                "batch_size": batch_size, "seed": seed, "n_boot": n_boot, "n_random": n_random, "train": train,
                "max_steps": max_steps, "eval_n": eval_n, "eval_max_new_tokens": eval_max_new_tokens,
                "judge": judge.judge_id("aligned")}
    numbers: dict[str, Any] = {
        "trait": trait, "layer": layer, "settings": settings,
        "provenance": {"model": provenance, "run": str(run_.root), "seed": seed},
        "extraction": {"pairs": pairs, "questions": qs, "n_pos": tv["n_pos"], "n_neg": tv["n_neg"],
                       "n_pairs_kept": tv["n_pairs_kept"], "n_pairs_total": tv["n_pairs_total"], "filter": tv["filter"],
                       "max_new_tokens": max_new_tokens, "temperature": 1.0, "generations": tv["generations"],
                       "vector_norm_by_layer": vector.norm(dim=-1).tolist(),
                       "examples": [{k: r[k] for k in ("side", "system", "question", "answer")}
                                    for r in tv["rows"][:4]]},
        "monitor": monitor(run_, vector, layer, n_boot=n_boot, n_random=n_random, seed=seed),
        "cosines": layer_cosines(vector, run_.axis().float(), run_.mean_diff()),
    }
    act_norm = tv["act_norm_by_layer"][layer]
    numbers["steering_scale"] = {"coef": coef, "vector_norm": float(vector[layer].norm()), "answer_act_norm": act_norm,
                                 "added_over_answer_act_norm": coef * float(vector[layer].norm()) / act_norm,
                                 "note": "answer_act_norm: mean norm of the answers' mean activations at the layer"}
    if train:
        adapters = train_preventative(run_, vector[layer], layer, coef, out, max_steps=max_steps, progress=progress)
        sm, rm = adapters["steered_manifest"], adapters["reference_manifest"]
        numbers["preventative"] = {
            "layer": layer, "coef": coef, "max_steps": max_steps, "steps": sm["steps"], "reference_steps": rm["steps"],
            "reference": adapters["reference"], "reference_is_run_organism": adapters["reference_is_run_organism"],
            "steered": adapters["steered"], "train": sm["train"], "final_loss": sm["final_loss"],
            "reference_final_loss": rm["final_loss"], "seconds": sm["seconds"]}
        numbers["trigger_effect"] = trigger_effect(
            run_, {"organism": adapters["reference"], "organism_preventative": adapters["steered"]},
            out / "trigger_eval", n=eval_n, judge=judge, max_new_tokens=eval_max_new_tokens, progress=progress)
    if figures_out:
        numbers["figures"] = [p.name for p in save_figures(out, figures(numbers))]
    write_json(out / "numbers.json", numbers)
    return numbers
