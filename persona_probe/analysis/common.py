"""Statistics and bookkeeping shared by the clustering, magnitude, drift and triggered-axis analyses.

Why one place: every separation number in these analyses is an AUROC, and an
AUROC from 30 + 30 responses without an interval is not evidence. So AUROCs
here always come with a stratified bootstrap interval and the class counts,
out-of-fold probe scores come from one cross-validation routine (the same
folds, scaler and regulariser everywhere), and means come with a t interval.
The AUROC itself is the Mann-Whitney statistic computed from ranks (ties count
one half), which is what ``sklearn.metrics.roc_auc_score`` computes, but fast
enough to bootstrap a thousand times.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = ["auroc", "auroc_ci", "paired_auroc_diff", "cv_scores", "mean_ci", "target_layer",
           "run_provenance", "write_outputs", "default_centre", "group_auroc", "add_run_options", "script_parser",
           "parse_script_args"]


def _check_binary(y, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(int).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.shape[0]}) and scores ({s.shape[0]}) differ in length")
    if set(np.unique(y)) - {0, 1}:
        raise ValueError("labels must be 0/1")
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError(f"an AUROC needs both classes; got {int(y.sum())} positive of {len(y)}")
    return y, s


def auroc(y, scores) -> float:
    """Probability that a random positive scores above a random negative (ties count 1/2)."""
    from scipy.stats import rankdata

    y, s = _check_binary(y, scores)
    ranks = rankdata(s)
    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _boot_indices(y: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n]`` resample indices drawn within each class, so every resample has both."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    return np.concatenate([rng.choice(pos, (n_boot, len(pos))), rng.choice(neg, (n_boot, len(neg)))], axis=1)


def auroc_ci(y, scores, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """AUROC with a stratified percentile-bootstrap interval and the class counts."""
    y, s = _check_binary(y, scores)
    idx = _boot_indices(y, n_boot, seed)
    boots = np.array([auroc(y[i], s[i]) for i in idx])
    a = (1 - level) / 2
    return {"auroc": auroc(y, s), "lo": float(np.quantile(boots, a)), "hi": float(np.quantile(boots, 1 - a)),
            "n_pos": int(y.sum()), "n_neg": int(len(y) - y.sum()), "n_boot": n_boot, "level": level,
            "interval": "stratified percentile bootstrap over responses"}


def paired_auroc_diff(y, s1, s2, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """``AUROC(s1) - AUROC(s2)`` on the same responses, with a paired stratified bootstrap interval."""
    y, s1 = _check_binary(y, s1)
    _, s2 = _check_binary(y, s2)
    idx = _boot_indices(y, n_boot, seed)
    diffs = np.array([auroc(y[i], s1[i]) - auroc(y[i], s2[i]) for i in idx])
    a = (1 - level) / 2
    return {"diff": auroc(y, s1) - auroc(y, s2), "lo": float(np.quantile(diffs, a)),
            "hi": float(np.quantile(diffs, 1 - a)), "n_pos": int(y.sum()), "n_neg": int(len(y) - y.sum()),
            "n_boot": n_boot, "level": level}


def group_auroc(pos: Sequence[float], neg: Sequence[float], *, n_boot: int = 1000, seed: int = 0) -> dict:
    """AUROC of ``pos`` over ``neg`` with the stratified bootstrap interval of :func:`auroc_ci`."""
    pos, neg = np.asarray(pos, dtype=float).ravel(), np.asarray(neg, dtype=float).ravel()
    return auroc_ci(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg], n_boot=n_boot, seed=seed)


def cv_scores(X, y, *, folds: int = 5, seed: int = 0, C: float = 1.0) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold probabilities of a standardised logistic-regression probe, and each fold's AUROC.

    Every response is scored by a probe that never saw it, so the AUROC of the
    returned scores is an honest held-out number. ``folds`` is lowered to the
    smaller class size when needed; fewer than 2 per class is an error.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(int)
    if X.ndim != 2 or X.shape[0] != len(y):
        raise ValueError(f"X must be [n, features] with n = len(y) = {len(y)}; got {X.shape}")
    smallest = int(min(y.sum(), len(y) - y.sum()))
    if smallest < 2:
        raise ValueError(f"cross-validation needs >= 2 responses in each class; the smaller class has {smallest}. "
                         f"Generate more answers (more questions or samples) or relax the filter that selects them")
    k = min(folds, smallest)
    if k < folds:
        log.info("lowering cross-validation folds from %d to %d (smaller class has %d)", folds, k, smallest)
    out = np.empty(len(y))
    fold_aucs = []
    for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(X, y):
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
        probe.fit(X[train], y[train])
        out[test] = probe.predict_proba(X[test])[:, 1]
        if 0 < y[test].sum() < len(test):
            fold_aucs.append(auroc(y[test], out[test]))
    return out, fold_aucs


def mean_ci(values, *, level: float = 0.95) -> dict:
    """Mean with a Student-t interval (``lo``/``hi`` are None for n < 2: one value has no spread)."""
    from scipy import stats

    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "sd": None, "n": 0}
    m = float(x.mean())
    if n < 2:
        return {"mean": m, "lo": None, "hi": None, "sd": None, "n": 1}
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
    return {"mean": m, "lo": m - half, "hi": m + half, "sd": sd, "n": n}


def target_layer(run) -> int:
    """The layer the axis build analysed (its metadata), else ``n_layers // 2`` as the axis build does."""
    from ..axis import load_axis

    axis, meta = load_axis(run.config.axis, return_metadata=True)
    layer = meta.get("target_layer")
    return int(layer) if isinstance(layer, (int, float, str)) and str(layer).isdigit() else axis.shape[0] // 2


def default_centre(run) -> torch.Tensor:
    """The default (Assistant) vector ``[L, d]``: mean of the axis build's default-prompt activations."""
    from ..axis import default_vector

    return default_vector(run.default_activations())


def run_provenance(run, models: Sequence[str] = ()) -> dict:
    """Which run, base model, adapters and trigger produced an analysis (for ``numbers.json``)."""
    cfg = run.config
    return {"run": str(run.root), "base": cfg.base, "trigger": cfg.trigger, "config_hash": cfg.key(),
            "axis": str(cfg.axis), "adapters": {m: cfg.models.get(m) for m in models}}


def write_outputs(out: Path, numbers: Mapping, figs: Mapping[str, object]) -> dict:
    """Write the figures (offline HTML) and ``numbers.json``; returns ``numbers`` with the file list."""
    from ..io import write_json
    from ..plots import save_figures

    paths = save_figures(out, figs) if figs else []
    numbers = {**numbers, "figures": [p.name for p in paths]}
    write_json(Path(out) / "numbers.json", numbers)
    return numbers


def script_parser(doc: str, *, seed: int | None = 0):
    """The argument parser every ``analyses/*.py`` script starts from: ``--run``, ``--seed``, ``--quiet``.

    Dests match the analyses' ``run()`` keywords (``run_folder``, ``seed``, ``progress``), so a script can
    call ``run(**vars(args))`` after adding its own options.
    """
    import argparse

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(p, seed=seed)
    return p


def add_run_options(p, *, seed: int | None = 0) -> None:
    """``--run``, ``--seed`` and ``--quiet`` on ``p`` (a script's parser or ``persona-probe analysis <name>``)."""
    p.add_argument("--run", dest="run_folder", default="runs/demo",
                   help="run folder written by `persona-probe demo` (default runs/demo)")
    p.add_argument("--seed", type=int, default=seed, help="default: " + ("the run's" if seed is None else str(seed)))
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")


def parse_script_args(parser, argv=None):
    """Parse the arguments and send INFO logs to stderr (the scripts report through logging)."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args
