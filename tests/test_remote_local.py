"""The remote (NDIF) path, exercised offline with ``remote="local"``.

``remote="local"`` makes nnsight serialize each trace exactly as for NDIF, then
deserialize it with the user's own modules hidden and run it in-process. We
check that the whole core path gives the same results as a plain local run.

nnsight's local mode does *not* enforce NDIF's import whitelist (transformers,
peft ... stay importable, and an editable install stays importable through its
meta-path finder), so two stricter checks back it up: ``persona_probe.edits``
imports only torch (AST), and a run with ``persona_probe`` made unimportable
during deserialization still works once the edit math is registered by value.
"""

from __future__ import annotations

import ast
import dataclasses
import logging

import pytest
import torch

from persona_probe import Cap, ConditionalCap, Detector, Steer, SubspaceCap, load_model, remote

CONV = [{"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."}]
CONV2 = [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! How can I help you today?"}]
PROMPTS = [[{"role": "user", "content": "What is the capital of France?"}], [{"role": "user", "content": "Hi"}]]


@pytest.fixture(scope="module")
def local_remote(embedded_model):
    """The embedded model (same weights) with every trace sent through nnsight's remote serialization."""
    return dataclasses.replace(embedded_model, remote="local")


@pytest.fixture(scope="module")
def axis(embedded_model):
    g = torch.Generator().manual_seed(0)
    return torch.randn(embedded_model.n_layers, embedded_model.d_model, generator=g)


def test_load_model_passes_remote(embedded_model):
    m = load_model((embedded_model.hf, embedded_model.tokenizer), remote="local")
    assert m.remote == "local"


def test_response_activations_match_local(embedded_model, local_remote, axis):
    convs = [CONV, CONV2]
    ivs = [Steer(axis, [3, 4], coef=0.5)]
    want = embedded_model.response_activations(convs, interventions=ivs, progress=False)
    got = local_remote.response_activations(convs, interventions=ivs, progress=False)
    assert got.shape == (2, embedded_model.n_layers, embedded_model.d_model)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_token_activations_match_local(embedded_model, local_remote, axis):
    cap = Cap(axis, [10, 11], tau=0.0, mode="floor")
    want, chat = embedded_model.token_activations(CONV, layers=[2, 11, 20], interventions=[cap])
    got, chat2 = local_remote.token_activations(CONV, layers=[2, 11, 20], interventions=[cap])
    assert chat.input_ids == chat2.input_ids
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_capped_generation_matches_local(embedded_model, local_remote, axis):
    cap = Cap(axis, [10, 11, 12], tau=1.0, mode="floor")
    want = embedded_model.generate(PROMPTS, interventions=[cap], max_new_tokens=2, progress=False)
    got = local_remote.generate(PROMPTS, interventions=[cap], max_new_tokens=2, progress=False)
    assert got == want
    assert all(t for t in got)


def test_subspace_and_conditional_generation_match_local(embedded_model, local_remote, axis):
    """The gate set on the prompt pass survives serialization and every later step; the gates come back."""
    scores = embedded_model.prompt_activations(PROMPTS, progress=False)[:, 8] @ (axis[8] / axis[8].norm())
    det = Detector(axis, 8, float(scores.mean()), "above")  # one prompt fires, the other does not
    ivs = [SubspaceCap(axis[10:12], [10], radius=1.0), ConditionalCap(det, Cap(axis, [11, 12], tau=5.0, mode="floor"))]
    want_fired, got_fired = {}, {}
    want = embedded_model.generate(PROMPTS, interventions=ivs, max_new_tokens=3, progress=False, fired=want_fired)
    got = local_remote.generate(PROMPTS, interventions=ivs, max_new_tokens=3, progress=False, fired=got_fired)
    assert got == want and got_fired == want_fired == {"detector": (scores > scores.mean()).tolist()}
    assert sum(want_fired["detector"]) == 1


def test_edit_math_ships_by_value(embedded_model, local_remote, axis, strict_remote):
    """Stricter than nnsight's simulation: persona_probe cannot be imported while the request is rebuilt."""
    cap = Cap(axis, [5], tau=0.0, mode="floor")
    want, _ = embedded_model.token_activations(CONV2, layers=[5, 6], interventions=[cap])
    got, _ = local_remote.token_activations(CONV2, layers=[5, 6], interventions=[cap])  # registers edits
    assert remote._REGISTERED
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_edits_imports_only_torch():
    """NDIF runs only whitelisted imports; the shipped edit math must stay torch-only."""
    from persona_probe import edits

    tree = ast.parse(open(edits.__file__).read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "edits.py must not import other persona_probe modules"
            imported.add(node.module.split(".")[0])
    assert imported <= {"torch", "math"}, imported


# ------------------------------------------------------------------ NDIF helpers
def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="NDIF_API_KEY"):
        remote.ndif_api_key()
    monkeypatch.setenv("NDIF_API_KEY", "   ")
    with pytest.raises(RuntimeError, match="NDIF_API_KEY"):
        remote.ndif_api_key()


def test_key_is_not_logged(monkeypatch, caplog, capsys):
    from nnsight import CONFIG

    secret = "ndif-secret-0123456789abcdef"
    monkeypatch.setenv("NDIF_API_KEY", secret)
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    with caplog.at_level(logging.DEBUG):
        assert remote.ndif_api_key() == secret
    assert CONFIG.API.APIKEY == secret
    assert caplog.records, "expected an info line saying where the key came from"
    assert secret not in caplog.text
    out = capsys.readouterr()
    assert secret not in out.out + out.err


def test_check_remote_model():
    calls = []

    def fake(name, revision="main"):
        calls.append((name, revision))
        return name == "meta-llama/Llama-3.3-70B-Instruct"

    remote.check_remote_model("meta-llama/Llama-3.3-70B-Instruct", is_running=fake)
    with pytest.raises(ValueError, match="NDIF is not running 'org/unhosted'"):
        remote.check_remote_model("org/unhosted", is_running=fake)

    def broken(name, revision="main"):
        raise OSError("repository not found")

    with pytest.raises(ValueError, match="cannot check whether NDIF hosts"):
        remote.check_remote_model("org/typo", is_running=broken)
    assert calls[0] == ("meta-llama/Llama-3.3-70B-Instruct", "main")


def test_register_remote_code_is_idempotent(monkeypatch):
    import nnsight
    from cloudpickle.cloudpickle import _PICKLE_BY_VALUE_MODULES

    seen = []
    monkeypatch.setattr(remote, "_REGISTERED", False)
    monkeypatch.setattr(nnsight, "register", lambda m: seen.append(m.__name__))
    remote.register_remote_code()
    remote.register_remote_code()
    assert seen == ["persona_probe.edits"]
    monkeypatch.undo()
    remote.register_remote_code()
    assert "persona_probe.edits" in _PICKLE_BY_VALUE_MODULES


# ------------------------------------------------------------- device_map / bf16
def test_device_map_passes_through(monkeypatch):
    import transformers

    real = transformers.AutoModelForCausalLM.from_pretrained
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    m = load_model("embedded", device_map={"": "cpu"}, dtype="bfloat16")
    assert seen["device_map"] == {"": "cpu"} and seen["dtype"] == torch.bfloat16
    assert {d.type for d in m.layer_devices()} == {"cpu"}


def test_bf16_model_caps_in_float32(axis):
    m = load_model("embedded", dtype="bfloat16")
    assert next(m.hf.parameters()).dtype == torch.bfloat16
    layer, tau = 8, 3.0
    cap = Cap(axis, [layer], tau=tau, mode="floor")
    acts, _ = m.token_activations(CONV, layers=[layer], interventions=[cap])
    u = axis[layer] / axis[layer].norm()
    proj = acts[0].float() @ u
    before, _ = m.token_activations(CONV, layers=[layer])
    assert (before[0].float() @ u).min() < tau - 1, "the cap should have something to lift"
    # The edit is computed in float32 and cast back to bf16 once: each coordinate
    # moves by at most half a bf16 ulp, so the projection can fall short of tau by
    # at most sum_i |u_i| * ulp(|h_i|) / 2.
    h = acts[0].float()
    eps = torch.finfo(torch.bfloat16).eps
    slack = (h.abs() * eps / 2 * u.abs()).sum(-1)
    assert (proj >= tau - slack - 1e-3).all(), (proj - tau).min()


def test_remote_batches_share_sessions(embedded_model, local_remote, monkeypatch):
    """With remote set, batches are grouped into sessions (one request each) and give the local numbers."""
    convs = [[{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": "An answer " * (i + 1)}]
             for i in range(5)]
    want = embedded_model.response_activations(convs, batch_size=2, progress=False)
    cls = type(local_remote.nnsight)
    real, calls = cls.session, []

    def spy(self, *a, **k):
        calls.append(k.get("remote"))
        return real(self, *a, **k)

    monkeypatch.setattr(cls, "session", spy)
    got = local_remote.response_activations(convs, batch_size=2, session_batches=2, progress=False)
    assert calls == ["local", "local"]  # 3 batches, 2 per session
    assert torch.allclose(got, want, atol=1e-4)
    embedded_model.response_activations(convs[:2], batch_size=2, progress=False)
    assert len(calls) == 2  # local runs open no session


def test_ndif_source_builds_through_the_local_wrap(embedded_model, monkeypatch):
    """``load_model("ndif:<id>")`` is the remote branch of load_model: key, host check, edit math, one wrap."""
    import nnsight
    import transformers

    import persona_probe.loading as loading

    calls = []

    class Weightless:  # stands in for nnsight's meta-device model of a hub id
        def __init__(self, name, tokenizer=None, revision=None):
            calls.append(("nnsight", name, revision))
            self._model = embedded_model.hf

    monkeypatch.setenv(remote.ENV_KEY, "test-key")
    monkeypatch.setattr(loading, "check_remote_model", lambda name, revision: calls.append(("check", name)))
    monkeypatch.setattr(loading, "register_remote_code", lambda: calls.append(("register",)))
    monkeypatch.setattr(nnsight, "TransformersModel", Weightless)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: embedded_model.tokenizer)
    wrapped = []
    real_wrap = loading._wrap
    monkeypatch.setattr(loading, "_wrap", lambda *a, **k: wrapped.append(k) or real_wrap(*a, **k))
    model = load_model("ndif:org/some-model", revision="abc")
    assert calls == [("check", "org/some-model"), ("register",), ("nnsight", "org/some-model", "abc")]
    assert wrapped and wrapped[0]["hf"] is None and wrapped[0]["remote"] is True
    assert model.remote is True and model.hf is None and model.name == "org/some-model"
    assert (model.n_layers, model.d_model, model.family) == (embedded_model.n_layers, embedded_model.d_model,
                                                             embedded_model.family)
    calls.clear()
    with pytest.raises(ValueError, match="not a peft adapter folder"):  # adapters run as edits: checked first
        load_model("ndif:org/some-model", adapter="runs/x/organism")
    assert calls == []
