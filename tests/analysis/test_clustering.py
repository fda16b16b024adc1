"""Implicit vs explicit misalignment clustering: the statistics on synthetic data, and the run on a tiny run."""

import json

import numpy as np
import pytest
import torch
from tiny_run import HashJudge

from persona_probe.analysis import clustering as clu
from persona_probe.analysis.rundir import RunFolder
from persona_probe.metrics import is_em


def _groups(shift_a, shift_b, n=30, L=3, d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    noise = lambda: 0.1 * torch.randn(n, L, d, generator=g)  # noqa: E731
    return noise() + shift_a, noise(), noise() + shift_b, noise()


def test_direction_cosines_find_shared_and_unrelated_directions():
    e = torch.eye(32)
    same = clu.direction_cosines(*_groups(e[0], 2 * e[0]), n_boot=200)
    assert all(c > 0.95 for c in same["cos"]) and all(lo > 0.9 for lo in same["lo"])
    orth = clu.direction_cosines(*_groups(e[0], e[1]), n_boot=200)
    assert all(abs(c) < 0.3 for c in orth["cos"]) and max(orth["hi"]) < min(same["lo"])
    assert same["n"] == [30, 30, 30, 30]


def test_silhouette_beats_its_permutation_null_only_when_groups_separate():
    rng = np.random.default_rng(0)
    labels = ["a"] * 20 + ["b"] * 20
    centres = np.r_[np.tile(np.eye(16)[0] * 5, (20, 1)), np.tile(np.eye(16)[1] * 5, (20, 1))]
    sep = clu.silhouette(centres + rng.normal(size=(40, 16)), labels, n_perm=100)
    assert sep["silhouette"] > 0.3 and sep["p_perm"] < 0.02 and sep["silhouette"] > sep["null_hi"]
    mixed = clu.silhouette(rng.normal(size=(40, 16)) + 5, labels, n_perm=100)
    assert mixed["p_perm"] > 0.05
    with pytest.raises(ValueError, match="distinct labels"):
        clu.silhouette(rng.normal(size=(4, 3)), ["a"] * 4)


def test_run_on_a_tiny_run(tiny_run, monkeypatch):
    run = RunFolder(tiny_run)
    numbers = clu.run(tiny_run, folds=3, n_boot=200, n_perm=30, judge=HashJudge(), progress=False)
    out = run.out_dir("clustering")
    assert {"umap.html", "cosine_per_layer.html", "numbers.json"} <= {p.name for p in out.iterdir()}
    assert numbers["n"] == {"explicit": 6, "instructed_aligned": 6, "implicit": 6, "aligned_base": 6,
                            "aligned_organism": 6}
    assert numbers["layer"] == 2
    # the instructed answers are the base model's, with the domain's system prompts cycled over the questions
    rows = [json.loads(x) for x in next(out.glob("explicit-*.jsonl")).read_text().splitlines()]
    assert [r["system"] for r in rows[:4]] == clu.EXPLICIT_PROMPTS["finance"]
    assert [r["question"] for r in rows] == [r["question"] for r in run.samples("base", "no_trigger")]
    cos = numbers["cosine_per_layer"]["explicit vs implicit"]
    assert len(cos["cos"]) == 4 and all(lo <= c <= hi for lo, c, hi in zip(cos["lo"], cos["cos"], cos["hi"]))
    # the reported cosine is the cosine of the two mean differences, recomputed from the cached files
    from safetensors.torch import load_file

    exp = load_file(str(next(out.glob("explicit-*.safetensors"))))["acts"]
    ali = load_file(str(next(out.glob("instructed_aligned-*.safetensors"))))["acts"]
    imp, org = run.activations("organism", "trigger"), run.activations("organism", "no_trigger")
    want = torch.nn.functional.cosine_similarity(exp.mean(0) - ali.mean(0), imp.mean(0) - org.mean(0), dim=-1)
    np.testing.assert_allclose(cos["cos"], want.numpy(), atol=1e-5)
    for name, res in numbers["probe"].items():
        assert 0 <= res["lo"] <= res["auroc"] <= res["hi"] <= 1 and (res["n_pos"], res["n_neg"]) == (6, 6), name
    assert -1 <= numbers["silhouette"]["silhouette"] <= 1 and numbers["silhouette"]["n"] == 30
    comp = numbers["clusters"]["composition"]
    assert sum(sum(c.values()) for c in comp.values()) == 30
    em = numbers["instructed_em_rate"]["explicit"]
    assert em["n"] == 6 and em["lo"] <= em["em"] <= em["hi"]

    # cached: a second run generates nothing, and only the judged-misaligned triggered answers when asked
    monkeypatch.setattr(RunFolder, "load_model", lambda *a, **k: pytest.fail("regenerated despite the cache"))
    again = clu.run(tiny_run, folds=3, n_boot=200, n_perm=30, implicit="misaligned", progress=False)
    n_em = sum(bool(is_em(r["aligned"], r["coherent"])) for r in run.samples("organism", "trigger"))
    assert again["n"]["implicit"] == n_em and again["n"]["explicit"] == 6
    with pytest.raises(ValueError, match="implicit must be"):
        clu.run(tiny_run, implicit="bogus")
    with pytest.raises(ValueError, match="out of range"):  # before any generation (load_model would fail)
        clu.run(tiny_run, layer=9, max_new_tokens=2)
