"""Persona vectors on the tiny run: the vector is a difference of means, the monitor's numbers are what they
claim, preventative steering really changes training, the trigger-effect rates match the judged rows,
an unsteered twin reproduces the run's organism, and a second run regenerates nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_run import HashJudge

from persona_probe.analysis import persona_vectors as pv
from persona_probe.analysis import preventative
from persona_probe.analysis.rundir import RunFolder
from persona_probe.io import load_tensors, read_jsonl
from persona_probe.metrics import is_em
from persona_probe.vectors import unit

SIZES = dict(n_questions=2, max_new_tokens=4, n_boot=200, n_random=5, eval_n=4, eval_max_new_tokens=4, seed=0)


@pytest.fixture(scope="module")
def numbers(tiny_run):
    return pv.run(tiny_run, judge=HashJudge(), progress=False, **SIZES)


def _adapter_weights(path) -> dict[str, torch.Tensor]:
    return load_tensors(Path(path) / "adapter_model.safetensors")[0]


def test_group_auroc_orients_positives_over_negatives():
    from sklearn.metrics import roc_auc_score

    assert pv.group_auroc([2, 3], [0, 1], n_boot=50)["auroc"] == 1.0
    assert pv.group_auroc([0, 1], [2, 3], n_boot=50)["auroc"] == 0.0
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 40), rng.normal(0, 1, 50)
    r = pv.group_auroc(pos, neg, n_boot=500)
    assert r["auroc"] == pytest.approx(roc_auc_score([1] * 40 + [0] * 50, np.r_[pos, neg]))
    assert r["lo"] < r["auroc"] < r["hi"] and r["hi"] - r["lo"] > 0.05
    assert (r["n_pos"], r["n_neg"]) == (40, 50)
    with pytest.raises(ValueError, match="both classes"):
        pv.group_auroc([], [1.0])


def test_trait_vector_is_the_difference_of_mean_answer_activations(numbers, tiny_run):
    from persona_probe import load_model

    out = RunFolder(tiny_run).out_dir("persona_vectors")
    v = load_tensors(out / "trait_vector.safetensors")[0]["vector"]
    rows = read_jsonl(out / "trait" / numbers["extraction"]["generations"])
    assert len(rows) == 2 * 5 * SIZES["n_questions"]  # 5 shipped pairs x questions x (trait, anti)
    model = load_model(str(Path(tiny_run) / "base"))
    convs = [[{"role": "system", "content": r["system"]}, {"role": "user", "content": r["question"]},
              {"role": "assistant", "content": r["answer"] or " "}] for r in rows]
    acts = model.response_activations(convs, progress=False)
    side = np.array([r["side"] for r in rows])
    expected = acts[torch.from_numpy(side == "trait")].mean(0) - acts[torch.from_numpy(side == "anti")].mean(0)
    torch.testing.assert_close(v, expected, atol=1e-5, rtol=1e-4)
    ext = numbers["extraction"]
    assert ext["n_pos"] == ext["n_neg"] == 10 and ext["n_pairs_kept"] == 10
    assert "no trait filter" in ext["filter"]  # the test judge, like the offline one, cannot score traits
    assert ext["vector_norm_by_layer"] == pytest.approx(v.norm(dim=-1).tolist())


def test_monitor_and_cosines_are_what_they_claim(numbers, tiny_run):
    from sklearn.metrics import roc_auc_score

    run = RunFolder(tiny_run)
    v = load_tensors(run.out_dir("persona_vectors") / "trait_vector.safetensors")[0]["vector"]
    layer = numbers["layer"]
    assert layer == 2  # the tiny 4-layer model's target layer (n_layers // 2)
    trig, none = run.activations("organism", "trigger"), run.activations("organism", "no_trigger")
    mon = numbers["monitor"]
    np.testing.assert_allclose(mon["projections"]["trigger"], (trig[:, layer] @ unit(v[layer])).numpy(), atol=1e-5)
    labels = [1] * len(trig) + [0] * len(none)
    t = mon["trait"]
    both = mon["projections"]["trigger"] + mon["projections"]["no_trigger"]
    assert t["auroc"] == pytest.approx(roc_auc_score(labels, both))
    assert (t["n_pos"], t["n_neg"]) == (len(trig), len(none)) == (6, 6)
    for key in ("trait", "axis", "trait_near_miss"):
        assert mon[key]["lo"] <= mon[key]["auroc"] <= mon[key]["hi"]
    ax = unit(run.axis()[layer])
    assert mon["axis"]["auroc"] == pytest.approx(roc_auc_score(labels, torch.cat([trig[:, layer] @ ax,
                                                                                    none[:, layer] @ ax])))
    assert len(mon["random"]["separation"]) == 5 and all(0.5 <= s <= 1 for s in mon["random"]["separation"])
    assert all(r["lo"] <= r["auroc"] <= r["hi"] and r["n_pos"] == 6 for r in mon["random"]["aurocs"])
    assert len(mon["per_layer"]) == 4 and mon["per_layer"][layer]["auroc"] == t["auroc"]
    assert 0 < mon["random"]["p_random_ge_trait"] <= 1
    cos = numbers["cosines"]
    np.testing.assert_allclose(cos["axis"], torch.nn.functional.cosine_similarity(v, run.axis(), dim=-1), atol=1e-5)
    np.testing.assert_allclose(cos["mean_diff"], torch.nn.functional.cosine_similarity(v, run.mean_diff(), dim=-1),
                               atol=1e-5)
    assert {"trait_projections", "trait_cosines", "trigger_effect"} <= {Path(f).stem for f in numbers["figures"]}


def test_preventative_steering_changes_training_and_rates_match_rows(numbers, tiny_run):
    prev = numbers["preventative"]
    run = RunFolder(tiny_run)
    organism = run.config.models["organism"]
    assert prev["reference_is_run_organism"] and prev["reference"] == organism
    assert prev["steps"] == prev["reference_steps"]
    from persona_probe.io import read_json

    steered = read_json(Path(prev["steered"]) / "manifest.json")
    assert steered["preventative"] == {"layer": numbers["layer"], "coef": 5.0}
    # the hook changed the forward pass (loss) and so the weights; same data, seed and steps otherwise
    assert steered["first_loss"] != read_json(Path(organism) / "manifest.json")["first_loss"]
    a, b = _adapter_weights(prev["steered"]), _adapter_weights(organism)
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)

    te = numbers["trigger_effect"]
    rows = read_jsonl(run.out_dir("persona_vectors") / "trigger_eval" / "eval_rows.jsonl")
    assert len(te["cells"]) == 6
    for cell in te["cells"]:
        mine = [r for r in rows if (r["model"], r["condition"]) == (cell["model"], cell["condition"])]
        m = cell["misaligned"]
        assert cell["n"] == m["n"] == len(mine) == SIZES["eval_n"]
        assert m["k"] == sum(bool(is_em(r["aligned"], r["coherent"])) for r in mine)
        assert m["rate"] == pytest.approx(m["k"] / m["n"]) and m["lo"] <= m["rate"] <= m["hi"]
    for name, d in te["trigger_effect"].items():
        trig = next(c for c in te["cells"] if (c["model"], c["condition"]) == (name, "trigger"))["misaligned"]
        none = next(c for c in te["cells"] if (c["model"], c["condition"]) == (name, "no_trigger"))["misaligned"]
        assert d["diff"] == pytest.approx(trig["rate"] - none["rate"]) and 0 <= d["p_value"] <= 1
        assert d["lo"] <= d["diff"] <= d["hi"]
    assert "triggered_steered_vs_reference" in te


def test_cut_training_gets_an_unsteered_twin_that_reproduces_the_organism(numbers, tiny_run, tmp_path, monkeypatch):
    real = preventative._organism_inputs

    def pretend_longer(run):  # the run's organism "trained longer" than max_steps allows
        adapter, manifest, records = real(run)
        return adapter, {**manifest, "steps": manifest["steps"] + 5}, records

    monkeypatch.setattr(preventative, "_organism_inputs", pretend_longer)
    run = RunFolder(tiny_run)
    v = load_tensors(run.out_dir("persona_vectors") / "trait_vector.safetensors")[0]["vector"]
    res = pv.train_preventative(run, v[2], 2, 5.0, tmp_path, max_steps=1, progress=False)
    assert not res["reference_is_run_organism"] and res["reference"] == str(tmp_path / "organism_same_steps")
    assert res["steered_manifest"]["steps"] == res["reference_manifest"]["steps"] == 1
    assert res["reference_manifest"]["preventative"] is None
    twin, organism = _adapter_weights(res["reference"]), _adapter_weights(run.config.models["organism"])
    for k in organism:  # same data, settings, seed and steps: training is reproducible, so only steering differs
        torch.testing.assert_close(twin[k], organism[k])
    steered = _adapter_weights(res["steered"])
    assert any(not torch.equal(steered[k], twin[k]) for k in twin)


def test_second_run_regenerates_and_retrains_nothing(numbers, tiny_run, monkeypatch):
    from persona_probe.model import ProbeModel

    def boom(*a, **k):
        raise AssertionError("should have come from the cache")

    monkeypatch.setattr(ProbeModel, "generate", boom)
    monkeypatch.setattr("peft.get_peft_model", boom)
    again = pv.run(tiny_run, judge=HashJudge(), progress=False, **SIZES)
    assert again["monitor"] == numbers["monitor"]
    assert again["trigger_effect"] == numbers["trigger_effect"]


def test_bad_input_fails_early_and_names_the_fix(tiny_run):
    with pytest.raises(ValueError, match="trait 'nope'"):
        pv.run(tiny_run, trait="nope", progress=False)
    with pytest.raises(ValueError, match="coef=0"):
        pv.run(tiny_run, coef=0, progress=False)
    with pytest.raises(ValueError, match="pairs must be"):
        pv.run(tiny_run, pairs=[("only one prompt",)], progress=False)
    with pytest.raises(ValueError, match="questions must be"):
        pv.run(tiny_run, questions="finance", progress=False)
    with pytest.raises(ValueError, match="out of range"):
        pv.run(tiny_run, layer=99, judge=HashJudge(), progress=False, **SIZES)
    with pytest.raises(FileNotFoundError, match="stress_config"):
        pv.run(Path(tiny_run) / "nowhere", progress=False)



class _TraitJudge(HashJudge):
    """Scores traits from the text ('bad' -> 90) and coherence from its length; no other scores."""

    model = "trait"

    def score_many(self, kind, items):
        from persona_probe.judges import Judgement

        for i, it in enumerate(items):
            if kind == "trait":
                yield i, Judgement(90.0 if "bad" in it.answer else 10.0, judge=self.judge_id(kind))
            elif kind == "coherent":
                yield i, Judgement(80.0 if len(it.answer) > 3 else 20.0, judge=self.judge_id(kind))
            else:
                yield i, self.no_score(kind, "not scored")


class _CoherenceOnlyJudge(_TraitJudge):
    model = "coherence-only"

    def score_many(self, kind, items):
        for i, j in super().score_many(kind, items):
            yield (i, self.no_score(kind, "no traits")) if kind == "trait" else (i, j)


def test_filter_keeps_trait_pairs_and_filters_coherence_only_with_the_trait(tmp_path):
    answers = [("bad advice", "good advice"),  # kept: trait side expresses, anti does not, both coherent
               ("good advice", "good advice"),  # dropped: the trait side does not express the trait
               ("bad", "good advice")]  # dropped by coherence (trait side too short)
    rows = [{"pair": 0, "question_index": q, "side": side, "question": "q", "answer": a}
            for q, pair in enumerate(answers) for side, a in zip(("trait", "anti"), pair)]
    keep, how = pv._filter([dict(r) for r in rows], "evil", None, _TraitJudge(), tmp_path)
    assert keep == [0, 1] and "trait >= 50" in how and "both coherent" in how
    keep, how = pv._filter([dict(r) for r in rows], "evil", None, _CoherenceOnlyJudge(), tmp_path)
    assert keep == list(range(6)) and "no coherence filter" in how  # incoherent pair 3 kept: no trait filter
