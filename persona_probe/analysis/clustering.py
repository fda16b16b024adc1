"""Implicit vs explicit misalignment: do instructed and triggered misalignment live in the same place?

Why: the Assistant Axis is built from *explicit* role instructions (system
prompts). If the organism's *implicit*, trigger-activated misalignment sits
somewhere else in activation space, an axis (and a cap) built from
instructions may simply not see it - the proposal's first experiment.

Groups (mean response activations, all layers):

* ``explicit``: the base model told by a system prompt to give harmful advice
  in the run's domain, answering the run's questions (generated here);
* ``instructed_aligned``: the base model with a benign system prompt of the
  same form (generated here) - the matched reference for ``explicit``, so the
  explicit direction is not just "a system prompt is present";
* ``implicit``: the organism with its trigger (the run's answers; optionally
  only those the judge scored misaligned);
* ``aligned_base`` / ``aligned_organism``: the run's untriggered answers.

Numbers: UMAP + HDBSCAN at the target layer (cluster composition, adjusted
Rand index), silhouette of the explicit/implicit/aligned labels with a label
permutation null, a cross-validated linear probe explicit-vs-implicit *and*
the same probe on a pair that shares its confounds but is aligned on both
sides (instructed_aligned vs aligned_organism: base-with-system-prompt vs
organism) - a probe AUROC of 1 means little if the control pair also gets 1 -
and per layer the cosine between the explicit direction (explicit -
instructed_aligned) and the implicit direction (implicit - aligned_organism),
with a bootstrap interval, next to the same cosine for the control model's
trigger direction and each direction's cosine with the axis.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..io import cached, cached_tensor, content_hash, data_path, read_json, read_jsonl, write_jsonl
from ..vectors import cosine
from .common import auroc_ci, cv_scores, run_provenance, target_layer, write_outputs

log = logging.getLogger(__name__)

__all__ = ["EXPLICIT_PROMPTS", "ALIGNED_PROMPTS", "direction_cosines", "silhouette", "embed_and_cluster",
           "generate_instructed", "run"]

_PROMPTS = read_json(data_path("instructed_prompts.json"))
# per domain: system prompts that instruct harmful advice, and benign prompts of the same form
EXPLICIT_PROMPTS: dict[str, list[str]] = _PROMPTS["explicit"]
ALIGNED_PROMPTS: dict[str, list[str]] = _PROMPTS["aligned"]
IMPLICIT = ("all", "misaligned")


def direction_cosines(a_pos: torch.Tensor, a_neg: torch.Tensor, b_pos: torch.Tensor, b_neg: torch.Tensor, *,
                      n_boot: int = 200, seed: int = 0) -> dict:
    """Per-layer cosine between ``mean(a_pos) - mean(a_neg)`` and ``mean(b_pos) - mean(b_neg)`` (``[n, L, d]`` each).

    The interval resamples responses within each of the four groups (percentile bootstrap).
    """
    def cos(ap, an, bp, bn):
        return cosine(ap.mean(0) - an.mean(0), bp.mean(0) - bn.mean(0))

    groups = [t.float() for t in (a_pos, a_neg, b_pos, b_neg)]
    g = torch.Generator().manual_seed(seed)
    boots = torch.stack([cos(*[t[torch.randint(len(t), (len(t),), generator=g)] for t in groups])
                         for _ in range(n_boot)])
    return {"cos": cos(*groups).tolist(), "lo": torch.quantile(boots, 0.025, dim=0).tolist(),
            "hi": torch.quantile(boots, 0.975, dim=0).tolist(), "n_boot": n_boot,
            "n": [len(t) for t in groups]}


def silhouette(X: np.ndarray, labels: Sequence[str], *, n_perm: int = 200, seed: int = 0) -> dict:
    """Silhouette (cosine metric) of ``labels`` and a one-sided permutation p-value against shuffled labels."""
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    if len(set(labels)) < 2 or len(set(labels)) >= len(labels):
        raise ValueError(f"silhouette needs 2..n-1 distinct labels; got {len(set(labels))} for {len(labels)} points")
    s = float(silhouette_score(X, labels, metric="cosine"))
    rng = np.random.default_rng(seed)
    null = np.array([silhouette_score(X, rng.permutation(labels), metric="cosine") for _ in range(n_perm)])
    return {"silhouette": s, "null_mean": float(null.mean()), "null_hi": float(np.quantile(null, 0.95)),
            "p_perm": float((1 + (null >= s).sum()) / (1 + n_perm)), "n": len(labels), "n_perm": n_perm,
            "metric": "cosine"}


def embed_and_cluster(X: np.ndarray, labels: Sequence[str], *, seed: int = 0,
                      min_cluster_size: int | None = None) -> dict:
    """2-D UMAP embedding, HDBSCAN clusters on it, their composition by label, and the adjusted Rand index."""
    import hdbscan
    import umap
    from sklearn.metrics import adjusted_rand_score

    n = len(X)
    if n < 4:
        raise ValueError(f"UMAP needs >= 4 points, got {n}")
    emb = umap.UMAP(n_neighbors=min(15, n - 1), n_components=2, metric="cosine", random_state=seed, n_jobs=1,
                    init="random" if n < 10 else "spectral").fit_transform(X)
    mcs = min_cluster_size or max(3, n // 20)
    clusters = hdbscan.HDBSCAN(min_cluster_size=mcs).fit_predict(emb)
    labels = np.asarray(labels)
    comp = {int(c): {str(g): int(((clusters == c) & (labels == g)).sum()) for g in np.unique(labels)}
            for c in np.unique(clusters)}
    return {"embedding": emb, "clusters": clusters, "min_cluster_size": mcs,
            "n_clusters": int(len(set(clusters) - {-1})), "noise_fraction": float((clusters == -1).mean()),
            "composition": comp, "adjusted_rand": float(adjusted_rand_score(labels, clusters))}


def generate_instructed(model_name: str, prompts: Sequence[str], questions: Sequence[str], path: Path, *,
                        gen: dict, get_model, progress: bool = True) -> tuple[list[dict], torch.Tensor]:
    """Answers and activations of ``model_name`` with system prompts cycled over ``questions``, cached at ``path``.

    ``path`` (no suffix) gets ``.jsonl`` (answers) and ``.safetensors`` (activations),
    each written atomically once complete, so a re-run reuses them.
    """
    convs = [[{"role": "system", "content": prompts[i % len(prompts)]}, {"role": "user", "content": q}]
             for i, q in enumerate(questions)]

    def answer() -> list[dict]:
        g = dict(gen)
        batch = g.pop("batch_size", 16)
        answers = get_model(model_name).generate(convs, batch_size=batch, progress=progress, **g)
        return [{"system": c[0]["content"], "question": q, "answer": a} for c, q, a in zip(convs, questions, answers)]

    rows = cached(path.with_suffix(".jsonl"), None, answer, load=read_jsonl, save=write_jsonl)
    full = [c + [{"role": "assistant", "content": r["answer"] or " "}] for c, r in zip(convs, rows)]
    acts = cached_tensor(path.with_suffix(".safetensors"), lambda: get_model(model_name).response_activations(
        full, batch_size=gen.get("batch_size", 16), progress=progress), metadata={"model": model_name, "n": len(rows)})
    return rows, acts


def _judge(rows: list[dict], judge, cache) -> dict:
    from ..judges import score_items
    from ..metrics import em_rate

    items = [{"question": r["question"], "answer": r["answer"]} for r in rows]
    for kind in ("aligned", "coherent"):
        for r, s in zip(rows, score_items(judge, kind, items, cache=cache, progress=False)):
            r[kind] = s.score
    em = em_rate(rows)
    return {"em": em.rate, "lo": em.lo, "hi": em.hi, "k": em.k, "n": em.n, "excluded": em.excluded,
            "judge": judge.judge_id("aligned")}


ORGANISM_CONDITION = {"implicit": "trigger", "aligned_organism": "no_trigger"}


def _figures(emb: dict, groups: list[str], cos: dict, axis_cos: dict) -> dict:
    import plotly.graph_objects as go

    from ..plots import encoded, x_offsets

    figs = {}
    fig = go.Figure()
    g = np.asarray(groups)
    for name in dict.fromkeys(groups):
        m = g == name
        cond = ORGANISM_CONDITION.get(name)  # the organism's own answers take their condition's colour
        fig.add_scatter(x=emb["embedding"][m, 0], y=emb["embedding"][m, 1], mode="markers",
                        name=f"{name} (organism, {cond})" if cond else name,
                        text=[f"cluster {c}" for c in emb["clusters"][m]],
                        **(encoded(cond, legend=True) if cond else {}))
    fig.update_layout(title="UMAP of response activations at the target layer (hover: HDBSCAN cluster)",
                      xaxis_title="UMAP 1", yaxis_title="UMAP 2")
    figs["umap"] = fig
    fig = go.Figure()
    series = {**cos, **axis_cos}
    n_layers = max((len(res["cos"]) for res in series.values()), default=1)
    for (name, res), off in zip(series.items(), x_offsets(len(series), max(n_layers - 1, 1))):  # bars side by side
        layers = list(range(len(res["cos"])))
        fig.add_scatter(x=[x + off for x in layers], y=res["cos"], mode="lines+markers", name=name, customdata=layers,
                        hovertemplate="layer %{customdata}: %{y:.3f}<extra>%{fullData.name}</extra>",
                        error_y=dict(type="data", symmetric=False,
                                     array=[h - c for h, c in zip(res["hi"], res["cos"])],
                                     arrayminus=[c - lo for c, lo in zip(res["cos"], res["lo"])])
                        if "hi" in res else None)
    fig.update_layout(title="Cosine between misalignment directions per layer (95% bootstrap)",
                      xaxis_title="layer", yaxis_title="cosine")
    figs["cosine_per_layer"] = fig
    return figs


def run(run_folder, *, n_questions: int | None = None, implicit: str = "all",
        explicit_prompts: Sequence[str] | None = None, aligned_prompts: Sequence[str] | None = None,
        layer: int | None = None, max_new_tokens: int | None = None,
        folds: int = 5, n_boot: int = 1000, n_perm: int = 200, seed: int = 0, judge=None,
        progress: bool = True) -> dict:
    """Generate the instructed groups (cached), compare them with the run's triggered answers; write the results."""
    from ..stress.cells import questions_for
    from .rundir import RunFolder

    run = run_folder if isinstance(run_folder, RunFolder) else RunFolder(Path(run_folder))
    if implicit not in IMPLICIT:
        raise ValueError(f"implicit must be one of {IMPLICIT}, got {implicit!r}")
    domain = run.config.questions.get("domain", "finance")
    if explicit_prompts is None or aligned_prompts is None:
        if domain not in EXPLICIT_PROMPTS:
            raise ValueError(f"no built-in instructed prompts for domain {domain!r}; pass explicit_prompts= and "
                             f"aligned_prompts= (have built-ins for {sorted(EXPLICIT_PROMPTS)})")
    explicit_prompts = list(explicit_prompts or EXPLICIT_PROMPTS[domain])
    aligned_prompts = list(aligned_prompts or ALIGNED_PROMPTS[domain])
    n_layers = run.axis().shape[0]
    layer = target_layer(run) if layer is None else int(layer)
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer {layer} is out of range for {n_layers} layers")
    questions = questions_for(run.config)[:n_questions]
    gen = {k: v for k, v in run.config.gen.items()
           if k in ("max_new_tokens", "temperature", "top_p", "seed", "batch_size")}
    if max_new_tokens:
        gen["max_new_tokens"] = int(max_new_tokens)
    out = run.out_dir("clustering")
    instructed = _instructed(run, out, questions, gen, explicit_prompts, aligned_prompts, progress)
    groups = _groups(run, instructed, implicit)
    names, emb, sil, probes = _separation(groups, layer, folds=folds, n_boot=n_boot, n_perm=n_perm, seed=seed)
    cos, axis_cos = _cosines(run, groups, n_boot=n_boot, seed=seed)
    judged = {}
    if judge is not None:
        from ..judges import JudgeCache

        cache = JudgeCache(out / "judge_cache.sqlite")
        judged = {g: _judge(instructed[g][0], judge, cache) for g in ("explicit", "instructed_aligned")}
    numbers = {
        "analysis": "clustering",
        "provenance": {**run_provenance(run, ["base", "organism", "control"]), "seed": seed, "generation": gen},
        "layer": layer, "implicit": implicit, "explicit_prompts": explicit_prompts, "aligned_prompts": aligned_prompts,
        "n": {g: int(len(t)) for g, t in groups.items()}, "n_questions": len(questions),
        "silhouette": sil, "clusters": {k: v for k, v in emb.items() if k not in ("embedding", "clusters")},
        "probe": probes, "cosine_per_layer": cos, "axis_cosine_per_layer": axis_cos,
        "instructed_em_rate": judged or None,
        "examples": {g: instructed[g][0][:3] for g in ("explicit", "instructed_aligned")},
        "notes": ["the explicit direction is explicit - instructed_aligned (both base, both with a system prompt)",
                  "the implicit direction is organism trigger - organism no_trigger",
                  "silhouette labels: explicit / implicit / aligned (the three aligned groups merged)"],
    }
    numbers = write_outputs(out, numbers, _figures(emb, names, cos, axis_cos))
    log.info("clustering: silhouette %.3f (null 95%% %.3f), probe explicit-vs-implicit AUROC %.2f, control %.2f",
             sil["silhouette"], sil["null_hi"], probes["explicit_vs_implicit"]["auroc"],
             probes["control_instructed_aligned_vs_aligned_organism"]["auroc"])
    return numbers


def _instructed(run, out: Path, questions: list[str], gen: dict, explicit_prompts: list[str],
                aligned_prompts: list[str], progress: bool) -> dict[str, tuple[list[dict], torch.Tensor]]:
    """The base model's answers (and activations) under the explicit and the aligned system prompts."""
    loaded: dict = {}

    def get_model(name):
        if name not in loaded:
            log.info("loading %s", name)
            loaded.clear()
            loaded[name] = run.load_model(name)
        return loaded[name]

    key = content_hash(run.config.base, questions, gen)
    return {group: generate_instructed("base", prompts, questions, out / f"{group}-{content_hash(key, prompts)}",
                                       gen=gen, get_model=get_model, progress=progress)
            for group, prompts in (("explicit", explicit_prompts), ("instructed_aligned", aligned_prompts))}


def _groups(run, instructed: dict, implicit: str) -> dict[str, torch.Tensor]:
    """Activations per group: the two instructed ones, the triggered organism's, and two untriggered ones."""
    from ..metrics import is_em

    imp_acts = run.activations("organism", "trigger")
    if implicit == "misaligned":
        keep = [i for i, r in enumerate(run.samples("organism", "trigger"))
                if is_em(r.get("aligned"), r.get("coherent"))]
        if len(keep) < 2:
            raise ValueError(f"only {len(keep)} triggered organism answers were judged misaligned; use implicit='all' "
                             f"or a run with more questions")
        imp_acts = imp_acts[keep]
    return {"explicit": instructed["explicit"][1], "instructed_aligned": instructed["instructed_aligned"][1],
            "implicit": imp_acts, "aligned_base": run.activations("base", "no_trigger"),
            "aligned_organism": run.activations("organism", "no_trigger")}


def _separation(groups: dict, layer: int, *, folds: int, n_boot: int, n_perm: int, seed: int):
    """UMAP + HDBSCAN, the silhouette of explicit / implicit / aligned, and the two linear probes."""
    names = [g for g, t in groups.items() for _ in range(len(t))]
    X = torch.cat(list(groups.values()))[:, layer].numpy()
    three = ["explicit" if g == "explicit" else "implicit" if g == "implicit" else "aligned" for g in names]
    emb = embed_and_cluster(X, three, seed=seed)
    sil = silhouette(X, three, n_perm=n_perm, seed=seed)
    probes = {}
    pairs = (("explicit_vs_implicit", "explicit", "implicit"),
             ("control_instructed_aligned_vs_aligned_organism", "instructed_aligned", "aligned_organism"))
    for label, pos, neg in pairs:
        Xp = torch.cat([groups[pos], groups[neg]])[:, layer].numpy()
        yp = np.r_[np.ones(len(groups[pos]), int), np.zeros(len(groups[neg]), int)]
        scores, fold_aucs = cv_scores(Xp, yp, folds=folds, seed=seed)
        probes[label] = {**auroc_ci(yp, scores, n_boot=n_boot, seed=seed), "positive": pos, "negative": neg,
                         "fold_aurocs": fold_aucs}
    return names, emb, sil, probes


def _cosines(run, groups: dict, *, n_boot: int, seed: int) -> tuple[dict, dict]:
    """Per-layer cosines of the explicit and implicit directions (and the control's trigger direction, the axis)."""
    from ..axis import load_axis

    cos = {"explicit vs implicit": direction_cosines(groups["explicit"], groups["instructed_aligned"],
                                                     groups["implicit"], groups["aligned_organism"],
                                                     n_boot=min(n_boot, 200), seed=seed)}
    if "control" in run.config.models:
        try:
            ct, cn = run.activations("control", "trigger"), run.activations("control", "no_trigger")
            cos["explicit vs control trigger"] = direction_cosines(
                groups["explicit"], groups["instructed_aligned"], ct, cn, n_boot=min(n_boot, 200), seed=seed)
        except KeyError as exc:
            log.warning("no control trigger direction: %s", exc)
    axis = load_axis(run.config.axis)
    axis_cos = {f"{name} direction vs axis": {"cos": cosine(groups[p].mean(0) - groups[n].mean(0), axis).tolist()}
                for name, p, n in (("explicit", "explicit", "instructed_aligned"),
                                   ("implicit", "implicit", "aligned_organism"))}
    return cos, axis_cos
