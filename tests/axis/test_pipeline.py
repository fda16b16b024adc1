"""The axis pipeline on a tiny random Llama: full run, then a killed run that resumes."""

import dataclasses

import pytest
import torch
from conftest import make_tiny_hf, make_tokenizer

from persona_probe import axis as ax
from persona_probe.axis.pipeline import build_axis
from persona_probe.io import load_tensors, read_jsonl


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


def _in_memory(llama, out, score_required=3, min_count=1):
    """The previous computation: every response's activations stacked in memory, then the axis math."""
    steps = out / "steps"
    acts, labels, scores, default = [], [], [], None
    for gpath in sorted(steps.glob("generate-*.jsonl")):
        recs = read_jsonl(gpath)
        keep = [i for i, r in enumerate(recs) if r["messages"][-1]["content"].strip()]
        a = llama.response_activations([recs[i]["messages"] for i in keep], batch_size=4, progress=False)
        label = recs[0]["label"]
        if label == "default":
            default = a
            continue
        acts.append(a)
        labels += [label] * len(keep)
        judged = list(steps.glob(f"judge-{label}-*.jsonl"))
        if judged:
            s = [r["score"] for r in read_jsonl(judged[0])]
            scores += [s[i] for i in keep]
    rv = ax.compute_role_vectors(torch.cat(acts), labels, scores or None, min_count, score_required)
    return rv, default, ax.compute_axis(ax.default_vector(default), rv.vectors)


def test_streaming_equals_in_memory(llama, tmp_path):
    """Shards of running sums give the axis the stacked activations give, to float32 rounding."""
    grades = iter([3, 2, 3, None, 1, 3, 0, 3, 2, 3, 3, 1.6] * 4)
    res = build_axis(llama, tmp_path / "s", ROLES, QUESTIONS, DEFAULTS, samples=2, judge=lambda *a: next(grades),
                     figures=False, **KW)
    rv_old, default_old, axis_old = _in_memory(llama, tmp_path / "s")
    rv_new = ax.load_role_vectors(tmp_path / "s" / "role_vectors.safetensors")
    assert set(rv_new.vectors) == set(rv_old.vectors) and rv_new.counts == rv_old.counts
    # float32 rounding of the activations' scale (the axis is a small difference of large means)
    tol = dict(rtol=0, atol=8 * torch.finfo(torch.float32).eps * float(default_old.abs().max()))
    for name, v in rv_old.vectors.items():
        torch.testing.assert_close(rv_new.vectors[name], v, **tol)
    torch.testing.assert_close(ax.load_axis(res.axis_path), axis_old, **tol)
    # the default rollouts' rows were streamed to disk: the same rows the in-memory pass gives
    stored = load_tensors(tmp_path / "s" / "default_activations.safetensors")[0]
    assert torch.equal(stored["acts"], default_old)
    # another score_required: the shards keep grades apart, so no new forward pass is needed
    from persona_probe.axis.shards import read_shard

    shards = {p.name.split("-")[1]: read_shard(p)[0] for p in (tmp_path / "s" / "steps").glob("shard-*")}
    rv2 = ax.role_vectors_from_sums({k: v for k, v in shards.items() if k != "default"}, judged=True,
                                    score_required=2)
    rv2_old = _in_memory(llama, tmp_path / "s", score_required=2)[0]
    assert rv2.counts == rv2_old.counts and rv2.counts != rv_new.counts
    for name, v in rv2_old.vectors.items():
        torch.testing.assert_close(rv2.vectors[name], v, **tol)


def test_reference_vectors_folder(llama, tmp_path):
    """vectors/<role>.pt in the reference layout: read back, the reference's formula gives our axis."""
    res = build_axis(llama, tmp_path / "r", ROLES, QUESTIONS, DEFAULTS, figures=False, **KW)
    files = sorted(p.name for p in (tmp_path / "r" / "vectors").glob("*.pt"))
    assert files == ["default.pt", "judge.pt", "pirate.pt", "poet.pt"]
    raw = torch.load(tmp_path / "r" / "vectors" / "pirate.pt", weights_only=True)
    assert raw["type"] == "pos_3" and raw["role"] == "pirate" and raw["vector"].shape == (llama.n_layers,
                                                                                          llama.d_model)
    rv, default = ax.load_reference_role_vectors(tmp_path / "r" / "vectors")
    assert set(rv.vectors) == {"pirate", "poet", "judge"}
    reference_axis = default - torch.stack(list(rv.vectors.values())).mean(0)  # the reference's axis step
    # equal up to the order the roles are summed in (files sorted by name)
    torch.testing.assert_close(reference_axis, ax.load_axis(res.axis_path), rtol=0,
                               atol=8 * torch.finfo(torch.float32).eps * float(default.abs().max()))
    odd = ax.RoleVectors({"a/b c": torch.ones(2, 3)}, {}, {}, judged=True)
    ax.export_reference_role_vectors(tmp_path / "odd", odd)
    assert list(ax.load_reference_role_vectors(tmp_path / "odd")[0].vectors) == ["a/b c"]
