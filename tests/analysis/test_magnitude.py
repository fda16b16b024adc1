"""Multi-persona magnitude scoring: the decomposition, the statistics, and the run on a tiny run folder."""

import json

import numpy as np
import pytest
import torch

from persona_probe.analysis import magnitude as mag
from persona_probe.analysis.common import auroc, auroc_ci, cv_scores, paired_auroc_diff
from persona_probe.analysis.rundir import RunFolder


def _roles(d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    centre = torch.randn(1, d, generator=g)
    roles = {f"r{i}": (centre + torch.randn(1, d, generator=g)) for i in range(3)}
    return roles, centre


def test_auroc_matches_sklearn_and_intervals_cover_it():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = np.r_[np.ones(20, int), np.zeros(25, int)]
    s = rng.normal(size=45) + 0.8 * y
    s[:3] = s[25:28]  # ties count one half, as in sklearn
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s))
    res = auroc_ci(y, s, n_boot=300)
    assert res["lo"] < res["auroc"] < res["hi"] and (res["n_pos"], res["n_neg"]) == (20, 25)
    assert auroc(y, y * 2.0) == 1.0 and auroc(y, -y * 1.0) == 0.0
    same = paired_auroc_diff(y, s, s, n_boot=100)
    assert same["diff"] == 0 and same["lo"] == 0 and same["hi"] == 0
    with pytest.raises(ValueError, match="both classes"):
        auroc(np.ones(5), np.arange(5))
    with pytest.raises(ValueError, match=">= 2 responses in each class"):
        cv_scores(np.zeros((5, 2)), np.r_[1, 0, 0, 0, 0])


def test_nnls_recovers_a_nonnegative_mixture_of_personas():
    roles, centre = _roles()
    basis = mag.persona_basis(roles, centre, 0)
    h = centre[0] + 2.0 * basis.raw[0] + 0.5 * basis.raw[1]
    ortho = torch.randn(16)
    ortho -= basis.raw.T @ torch.linalg.lstsq(basis.raw.T, ortho[:, None]).solution[:, 0]  # outside the span
    w, explained = mag.nnls_weights(torch.stack([h, centre[0] + ortho]), basis)
    np.testing.assert_allclose(w[0], [2.0, 0.5, 0.0], atol=1e-5)
    assert explained[0] == pytest.approx(1.0, abs=1e-6)
    assert explained[1] == pytest.approx(0.0, abs=1e-6) and np.allclose(w[1], 0, atol=1e-6)
    m = mag.persona_magnitudes(h[None], basis)[0]
    assert m[0] == pytest.approx(float((h - centre[0]) @ basis.units[0]))
    with pytest.raises(ValueError, match=">= 2 role vectors"):
        mag.persona_basis(roles, centre, 0, names=["r0"])
    with pytest.raises(ValueError, match="no role vectors named"):
        mag.persona_basis(roles, centre, 0, names=["r0", "pirate"])


def test_multi_persona_score_separates_what_the_axis_averages_away():
    # Two personas symmetric about the axis: moving toward one and away from the other leaves the
    # axis projection (minus their mean direction) unchanged, so only the per-persona basis sees it.
    d, n = 12, 40
    e = torch.eye(d)
    centre = torch.zeros(1, d)
    roles = {"a": (e[0] - e[1])[None], "b": (-e[0] - e[1])[None]}
    axis = centre[0] - torch.stack([v[0] for v in roles.values()]).mean(0)  # = e1: orthogonal to the shift
    g = torch.Generator().manual_seed(0)
    trig = 1.0 * e[0] + 0.5 * torch.randn(n, d, generator=g)
    untrig = -1.0 * e[0] + 0.5 * torch.randn(n, d, generator=g)
    acts = torch.cat([trig, untrig])
    y = np.r_[np.ones(n, int), np.zeros(n, int)]
    basis = mag.persona_basis(roles, centre, 0)
    axis_proj = (acts @ axis / axis.norm()).numpy()
    sep = mag.separation(y, {"multi": mag.persona_magnitudes(acts, basis).numpy(), "axis": axis_proj[:, None]},
                         fixed={"axis raw": -axis_proj}, folds=5, n_boot=300)
    assert sep["multi"]["auroc"] > 0.95 and sep["multi"]["lo"] > 0.85
    for name in ("axis", "axis raw"):
        assert sep[name]["lo"] < 0.5 < sep[name]["hi"], (name, sep[name])  # chance: the interval covers 0.5
    assert sep["multi"]["lo"] > max(sep["axis"]["hi"], sep["axis raw"]["hi"])


def test_run_on_a_tiny_run(tiny_run):
    run = RunFolder(tiny_run)
    numbers = mag.run(tiny_run, folds=3, n_boot=200, progress=False)
    out = run.out_dir("magnitude")
    assert json.loads((out / "numbers.json").read_text())["layer"] == numbers["layer"] == 2
    assert {"magnitudes.html", "nnls_weights.html", "roc.html"} <= {p.name for p in out.iterdir()}
    assert numbers["n"] == {"triggered": 6, "untriggered": 6}
    assert sorted(numbers["personas"]) == sorted(run.role_vectors().vectors)
    for name, res in numbers["auroc"].items():
        assert 0 <= res["lo"] <= res["auroc"] <= res["hi"] <= 1, name
        assert (res["n_pos"], res["n_neg"]) == (6, 6)
    assert numbers["auroc"]["multi-persona (probe)"]["n_features"] == len(numbers["personas"])
    d = numbers["multi_minus_axis_probe"]
    assert d["diff"] == pytest.approx(numbers["auroc"]["multi-persona (probe)"]["auroc"]
                                      - numbers["auroc"]["axis (probe)"]["auroc"])
    # the bar numbers are the group means of the magnitudes, recomputed here from the run's files
    acts = run.activations("organism", "trigger")[:, 2]
    from persona_probe.analysis.common import default_centre

    basis = mag.persona_basis(run.role_vectors().vectors, default_centre(run), 2, numbers["personas"])
    expect = mag.persona_magnitudes(acts, basis).mean(0)
    got = [r["triggered"]["mean"] for r in numbers["magnitudes"]]
    np.testing.assert_allclose(got, expect.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        mag.run(tiny_run, layer=9, progress=False)
