"""The axis pipeline on a tiny random Llama: full run, then a killed run that resumes."""

import dataclasses

import pytest
import torch
from conftest import make_tiny_hf, make_tokenizer

from persona_probe import axis as ax
from persona_probe.axis.pipeline import build_axis


@dataclasses.dataclass
class Role:
    name: str
    description: str
    category: str
    prompts: list


@dataclasses.dataclass
class Question:
    id: str
    text: str


ROLES = [Role("pirate", "a pirate captain", "fiction", ["You are a pirate.", "Speak as a pirate captain."]),
         Role("poet", "a gloomy poet", "art", ["You are a poet.", "Answer in verse."]),
         Role("judge", "a stern judge", "law", ["You are a judge.", "Rule on everything."])]
QUESTIONS = [Question("q1", "What is your name?"), Question("q2", "How should I spend today?")]
DEFAULTS = ["", "You are {model_name}."]
KW = dict(max_new_tokens=6, batch_size=4, progress=False)


@pytest.fixture(scope="module")
def llama(embedded_path):
    from persona_probe import wrap_model

    tok = make_tokenizer("llama", embedded_path)
    return wrap_model(make_tiny_hf("llama", len(tok), tok.eos_token_id), tok, name="tiny-llama")


def _count_generate(model, monkeypatch, fail_after=None):
    calls = {"n": 0}
    real = type(model).generate

    def fake(self, convs, **kw):
        if fail_after is not None and calls["n"] >= fail_after:
            raise KeyboardInterrupt("simulated kill")
        calls["n"] += 1
        return real(self, convs, **kw)

    monkeypatch.setattr(type(model), "generate", fake)
    return calls


def test_full_then_killed_and_resumed(llama, tmp_path, monkeypatch):
    calls = _count_generate(llama, monkeypatch)
    full = build_axis(llama, tmp_path / "full", ROLES, QUESTIONS, DEFAULTS, **KW)
    assert calls["n"] == 4  # default + 3 roles
    m = full.manifest
    assert m["judged"] is False and m["every_response_counts"] is True
    assert sum(m["kept_per_role"].values()) + sum(m["empty_responses"].values()) == 3 * 2 * 2
    assert m["default_prompts"][1] == "You are tiny-llama."
    axis = ax.load_axis(full.axis_path)
    assert axis.shape == (llama.n_layers, llama.d_model)
    assert torch.equal(ax.load_axis(tmp_path / "full" / "assistant_axis.pt"), axis)
    assert full.cos_pc1_axis is not None and 0 <= full.cos_pc1_axis <= 1 + 1e-6
    assert (tmp_path / "full" / "figures" / "roles_pc1_pc2.html").exists()

    # killed after two chunks
    calls["n"] = 0
    monkeypatch.undo()
    calls = _count_generate(llama, monkeypatch, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        build_axis(llama, tmp_path / "killed", ROLES, QUESTIONS, DEFAULTS, **KW)
    assert len(list((tmp_path / "killed" / "steps").glob("generate-*.jsonl"))) == 2
    assert not list((tmp_path / "killed" / "steps").glob(".*tmp"))  # no half-written files
    monkeypatch.undo()
    calls = _count_generate(llama, monkeypatch)
    resumed = build_axis(llama, tmp_path / "killed", ROLES, QUESTIONS, DEFAULTS, **KW)
    assert calls["n"] == 2  # only the two unfinished chunks
    assert resumed.manifest["chunks_generated_this_run"] == 2
    assert torch.equal(ax.load_axis(resumed.axis_path), axis)

    # a third run does no work at all
    calls["n"] = 0
    again = build_axis(llama, tmp_path / "killed", ROLES, QUESTIONS, DEFAULTS, **KW)
    assert calls["n"] == 0 and again.cos_pc1_axis == pytest.approx(resumed.cos_pc1_axis)


def test_judge_filters_and_drops(llama, tmp_path):
    seen = []

    def judge(role, desc, question, answer):
        seen.append(role)
        return 3 if role != "judge" else 1  # the "judge" role never stays in role

    res = build_axis(llama, tmp_path / "j", ROLES, QUESTIONS, DEFAULTS, judge=judge, min_count=1, figures=False, **KW)
    m = res.manifest
    assert m["judged"] is True and "judge" in m["dropped_roles"] and set(m["kept_per_role"]) == {"pirate", "poet"}
    assert "default" not in seen
