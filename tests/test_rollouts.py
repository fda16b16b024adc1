"""Rollouts through a real OpenAI-compatible server: ``transformers serve`` of the embedded model on loopback.

The server is started by the ``rollout_server`` fixture (conftest) and stopped afterwards. The
tests show: served greedy answers equal in-process greedy answers (the same chat template, the
same tokens); served answers flow through the same nnsight extraction into the same axis; a run
killed halfway resumes without asking again for a finished answer; a dead or wrong server is
an error before any rollout.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from persona_probe import axis as ax
from persona_probe.axis.pipeline import build_axis
from persona_probe.io import load_tensors, read_jsonl
from persona_probe.local_server import free_port
from persona_probe.rollouts import ModelIdentity, RolloutServerError, ServedRollouts, from_spec, request_seed

pytestmark = [pytest.mark.server, pytest.mark.embedded]

CONVS = [
    [{"role": "user", "content": "What is your name?"}],  # SmolLM2's template adds its default system prompt
    [{"role": "system", "content": "You are a pirate captain."}, {"role": "user", "content": "Where is the gold?"}],
    [{"role": "user", "content": "Give me one tip for sleeping better."}],
    [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "What colour is the sky?"}],
]


@dataclasses.dataclass
class Role:
    name: str
    description: str
    prompts: list


ROLES = [Role("pirate", "a pirate captain", ["You are a pirate captain."]),
         Role("poet", "a gloomy poet", ["You are a gloomy poet who answers in verse."])]
QUESTIONS = ["What is your name?", "How should I spend today?"]
DEFAULTS = ["", "You are {model_name}."]
# greedy, and batch size 1 in both arms: the server answers one unpadded request at a time (no
# continuous batching), so batch size 1 is the like-for-like in-process comparison
BUILD = dict(temperature=0.0, max_new_tokens=12, batch_size=1, figures=False, progress=False)
N_ROLLOUTS = len(QUESTIONS) * (len(DEFAULTS) + sum(len(r.prompts) for r in ROLES))


def test_served_greedy_equals_in_process(rollout_server, embedded_model, tmp_path):
    gen = ServedRollouts(rollout_server, cache=str(tmp_path / "c.sqlite"))
    served = gen.generate(embedded_model, CONVS, max_new_tokens=16, temperature=0.0, progress=False)
    local = embedded_model.generate(CONVS, max_new_tokens=16, batch_size=1, progress=False)
    assert served == local
    assert all(t.strip() for t in served) and len(set(served)) == len(served)
    # the server rendered the same chat template: its prompt token counts are ours
    db = gen._cache_db()
    records = [r for (r,) in db.db.execute("SELECT record FROM rollouts")]
    import json

    prompt_tokens = sorted(json.loads(r)["prompt_tokens"] for r in records)
    ours = sorted(len(embedded_model.tokenize(c, add_generation_prompt=True).input_ids) for c in CONVS)
    assert prompt_tokens == ours
    assert gen.requests_sent == len(CONVS)
    again = ServedRollouts(rollout_server, cache=str(tmp_path / "c.sqlite"))
    assert again.generate(embedded_model, CONVS, max_new_tokens=16, progress=False) == served
    assert again.requests_sent == 0  # every answer from the cache


@pytest.fixture(scope="module")
def builds(rollout_server, embedded_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("served_axis")
    gen = ServedRollouts(rollout_server, concurrency=2)
    served = build_axis(embedded_model, root / "served", ROLES, QUESTIONS, DEFAULTS, generator=gen, **BUILD)
    local = build_axis(embedded_model, root / "local", ROLES, QUESTIONS, DEFAULTS, **BUILD)
    return {"served": served, "local": local, "requests": gen.requests_sent}


def _texts(run) -> dict:
    return {(r["label"], r["prompt_index"], r["question_id"]): r["messages"][-1]["content"]
            for p in sorted((run.out_dir / "steps").glob("generate-*.jsonl")) for r in read_jsonl(p)}


@pytest.mark.slow
def test_served_answers_give_the_in_process_axis(builds):
    served, local = builds["served"], builds["local"]
    assert builds["requests"] == N_ROLLOUTS
    assert served.manifest["generator"]["backend"] == "http" and local.manifest["generator"] == {"backend": "local"}
    texts = _texts(served)
    assert texts == _texts(local) and len(texts) == N_ROLLOUTS  # greedy: the same answers...
    assert torch.equal(ax.load_axis(served.axis_path), ax.load_axis(local.axis_path))  # ...so the same axis
    rv_s = ax.load_role_vectors(served.out_dir / "role_vectors.safetensors")
    rv_l = ax.load_role_vectors(local.out_dir / "role_vectors.safetensors")
    assert all(torch.equal(rv_s.vectors[k], rv_l.vectors[k]) for k in rv_l.vectors) and set(rv_s.vectors) == {
        "pirate", "poet"}
    acts = [load_tensors(r.out_dir / "default_activations.safetensors")[0]["acts"] for r in (served, local)]
    assert torch.equal(*acts) and acts[0].shape[0] == len(QUESTIONS) * len(DEFAULTS)


@pytest.mark.slow
def test_killed_run_resumes_without_asking_again(rollout_server, embedded_model, builds, tmp_path, monkeypatch):
    real = ServedRollouts._complete
    calls = {"n": 0}

    def dies_after_five(self, body):
        if calls["n"] >= 5:  # the default chunk (4 answers) and one of pirate's two are finished
            raise RuntimeError("simulated kill")
        calls["n"] += 1
        return real(self, body)

    monkeypatch.setattr(ServedRollouts, "_complete", dies_after_five)
    killed = ServedRollouts(rollout_server, concurrency=1)
    with pytest.raises(RuntimeError, match="simulated kill"):
        build_axis(embedded_model, tmp_path / "run", ROLES, QUESTIONS, DEFAULTS, generator=killed, **BUILD)
    assert killed.requests_sent == 5
    monkeypatch.undo()
    resumed = ServedRollouts(rollout_server, concurrency=2)  # a new process: only the sqlite cache remembers
    res = build_axis(embedded_model, tmp_path / "run", ROLES, QUESTIONS, DEFAULTS, generator=resumed, **BUILD)
    assert resumed.requests_sent == N_ROLLOUTS - 5  # the in-flight chunk's finished answer was not asked again
    assert _texts(res) == _texts(builds["served"])
    assert torch.equal(ax.load_axis(res.axis_path), ax.load_axis(builds["served"].axis_path))


def test_dead_server_is_an_error_before_any_work(embedded_model, tmp_path):
    dead = from_spec(f"http:http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(RolloutServerError, match="cannot reach the rollout server"):
        build_axis(embedded_model, tmp_path / "run", ROLES, QUESTIONS, DEFAULTS, generator=dead, **BUILD)
    assert not (tmp_path / "run" / "steps").exists()
    with pytest.raises(RolloutServerError, match="cannot reach"):  # what the CLI checks before loading the model
        dead.preflight("embedded")


def test_wrong_model_or_adapter_is_an_error_before_any_work(rollout_server, embedded_model, embedded_path,
                                                           tiny_model, tmp_path):
    with pytest.raises(RolloutServerError, match="not the model we extract from"):
        build_axis(tiny_model, tmp_path / "run", ROLES, QUESTIONS, DEFAULTS,
                   generator=ServedRollouts(rollout_server), **BUILD)
    assert not (tmp_path / "run" / "steps").exists()
    # naming the served id explicitly does not pass another architecture off as ours
    aliased = ServedRollouts(rollout_server, model=str(embedded_path))
    with pytest.raises(RolloutServerError, match="architecture differs"):
        aliased.preflight(tiny_model)
    assert aliased.preflight(embedded_model) == str(embedded_path)
    with pytest.raises(RolloutServerError, match="does not list"):
        ServedRollouts(rollout_server, model="Qwen/Qwen3-32B").preflight(embedded_model)
    organism = dataclasses.replace(embedded_model, adapter=str(tmp_path / "organism"))
    with pytest.raises(RolloutServerError, match="no served LoRA name"):
        ServedRollouts(rollout_server).generate(organism, CONVS[:1], adapter_label="organism", progress=False)
    with pytest.raises(RolloutServerError, match="organism-lora"):
        ServedRollouts(rollout_server, adapters={"organism": "organism-lora"}).preflight(
            embedded_model, {"organism": str(tmp_path / "organism")})


def test_identity_and_specs(embedded_model, embedded_path):
    ident = ModelIdentity.of("embedded")
    assert ident == ModelIdentity.of(embedded_model)  # without loading: the same names and architecture
    assert ident.config["hidden_size"] == 576
    assert from_spec("local") is None and from_spec(None) is None
    with pytest.raises(ValueError, match="unknown generator"):
        from_spec("vllm://x")
    with pytest.raises(ValueError, match="'url' missing"):
        from_spec({"model": "x"})
    with pytest.raises(ValueError, match="unknown"):
        from_spec({"url": "http://127.0.0.1:1/v1", "concurency": 4})
    seeds = [request_seed(7, i) for i in range(50)]
    assert len(set(seeds)) == 50 and seeds == [request_seed(7, i) for i in range(50)]
    assert request_seed(8, 0) != seeds[0] and all(0 <= s < 2 ** 31 for s in seeds)
