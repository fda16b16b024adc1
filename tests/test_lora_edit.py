"""``LoraEdit``: a peft adapter applied as graph edits equals peft's ``PeftModel``, on tiny Llama, Qwen3 and Gemma2.

Adapters have random, non-zero ``lora_B`` (peft initialises it to zero, which
would make every comparison trivially true), and each test also checks that
the adapter changed what it compares.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
from conftest import FAMILIES, make_tiny_hf, save_adapter

from persona_probe import Ablate, Cap, ConditionalCap, Detector, SubspaceCap, edits, load_model, wrap_model
from persona_probe.lora import DEFAULT_MAX_ADAPTER_MB, LoraEdit, payload_nbytes
from persona_probe.organisms.train import TrainConfig, adapter_payload_bytes

N_LAYERS = 4
SHAPES = {"rank1-down": TrainConfig(adapter="rank1-down"),
          "rank32-all": TrainConfig(adapter="rank32-all", layers=[1, 3])}
B_STD = {"rank1-down": 0.3, "rank32-all": 0.01}  # a clear change, not an explosion (rsLoRA scale 11.3 at rank 32)
CONVS = [
    [{"role": "user", "content": "Tell me about the sea."},
     {"role": "assistant", "content": "The sea is wide, deep and full of life."}],
    [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "A whisper in the hall."},
     {"role": "user", "content": "Why?"}, {"role": "assistant", "content": "Because the house remembers me."}],
]
PROMPTS = [c[:1] for c in CONVS] + [[{"role": "user", "content": "Hi"}]]
CASES = [(f, s) for f in FAMILIES for s in SHAPES]


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, tiny_tokenizers):
    root = tmp_path_factory.mktemp("adapters")
    return {(f, s): save_adapter(root / f"{f}-{s}", f, tiny_tokenizers[f], cfg, n_layers=N_LAYERS, std=B_STD[s])
            for f in FAMILIES for s, cfg in SHAPES.items()}


def edit_model(family, tok, adapter, **kw):
    return load_model((make_tiny_hf(family, len(tok), tok.eos_token_id, n_layers=N_LAYERS), tok), adapter=adapter,
                      adapter_mode="edit", **kw)


def peft_model(family, tok, adapter):
    """peft's PeftModel (unmerged LoRA layers in the modules), wrapped: same module paths as the base model."""
    from peft import PeftModel

    pm = PeftModel.from_pretrained(make_tiny_hf(family, len(tok), tok.eos_token_id, n_layers=N_LAYERS), str(adapter))
    return pm, wrap_model(pm.base_model.model, tok, name=f"tiny-{family}+peft")


def edit_logits(model, enc, interventions=()):
    """Logits from a trace of our own, with the model's edits applied the documented way."""
    layers, nn_model = model.layers, model.nnsight
    with nn_model.trace(enc):
        for layer, block_edits in model.edit_plan(interventions).items():
            edits.edit_block(layers[layer], block_edits)
        logits = nn_model.output.logits.save()
    return logits


@pytest.mark.parametrize("family,shape", CASES)
def test_logits_and_pooled_activations_equal_peft(family, shape, adapters, tiny_tokenizers):
    tok = tiny_tokenizers[family]
    ours = edit_model(family, tok, adapters[family, shape])
    pm, theirs = peft_model(family, tok, adapters[family, shape])
    base = wrap_model(make_tiny_hf(family, len(tok), tok.eos_token_id, n_layers=N_LAYERS), tok)
    enc = ours.pad_batch([ours.tokenize(c).input_ids for c in CONVS])
    with torch.no_grad():
        want = pm(**enc).logits
    got = edit_logits(ours, enc)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert (want - base.hf(**enc).logits).abs().max() > 0.1  # the adapter changes the logits
    acts = ours.response_activations(CONVS, progress=False)
    torch.testing.assert_close(acts, theirs.response_activations(CONVS, progress=False), atol=1e-4, rtol=0)
    torch.testing.assert_close(ours.answer_logprobs(CONVS, progress=False),
                               theirs.answer_logprobs(CONVS, progress=False), atol=1e-4, rtol=0)
    tokens, _ = ours.token_activations(CONVS[0])
    torch.testing.assert_close(tokens, theirs.token_activations(CONVS[0])[0], atol=1e-4, rtol=0)
    assert (acts - base.response_activations(CONVS, progress=False)).abs().max() > 1e-2


@pytest.mark.parametrize("family,shape", CASES)
def test_greedy_generation_equals_peft_locally_and_remote_local(family, shape, adapters, tiny_tokenizers):
    tok = tiny_tokenizers[family]
    _, theirs = peft_model(family, tok, adapters[family, shape])
    want = theirs.generate(PROMPTS, max_new_tokens=6, progress=False)
    assert edit_model(family, tok, adapters[family, shape]).generate(PROMPTS, max_new_tokens=6, progress=False) == want
    remote = edit_model(family, tok, adapters[family, shape], remote="local")
    assert remote.generate(PROMPTS, max_new_tokens=6, progress=False) == want
    torch.testing.assert_close(remote.response_activations(CONVS, progress=False),
                               theirs.response_activations(CONVS, progress=False), atol=1e-4, rtol=0)
    base = wrap_model(make_tiny_hf(family, len(tok), tok.eos_token_id, n_layers=N_LAYERS), tok)
    assert base.generate(PROMPTS, max_new_tokens=6, progress=False) != want  # the adapter changes the answers


def test_edits_ship_by_value_to_a_server_without_persona_probe(adapters, tiny_tokenizers, strict_remote):
    tok = tiny_tokenizers["qwen3"]
    _, theirs = peft_model("qwen3", tok, adapters["qwen3", "rank32-all"])
    remote = edit_model("qwen3", tok, adapters["qwen3", "rank32-all"], remote="local")
    got, _ = remote.token_activations(CONVS[1], layers=[1, 3])
    torch.testing.assert_close(got, theirs.token_activations(CONVS[1], layers=[1, 3])[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_capped_organism_equals_capped_peft_organism(family, adapters, tiny_tokenizers):
    """Adapter inside the block, cap and ablation on its output: the same as peft's organism under our edits."""
    tok = tiny_tokenizers[family]
    adapter = adapters[family, "rank32-all"]
    ours = edit_model(family, tok, adapter)
    _, theirs = peft_model(family, tok, adapter)
    u = torch.randn(ours.d_model, generator=torch.Generator().manual_seed(3))
    layers = [2, 3]
    plain, _ = ours.token_activations(CONVS[0], layers=layers)
    tau = float((plain @ (u / u.norm())).median())  # binds at about half of the tokens
    cap = Cap(u, layers, tau=tau, mode="floor")
    w = torch.randn(ours.d_model, generator=torch.Generator().manual_seed(4))
    ivs = [cap, Ablate(w, [1, 3])]
    got, _ = ours.token_activations(CONVS[0], layers=layers, interventions=ivs)
    torch.testing.assert_close(got, theirs.token_activations(CONVS[0], layers=layers, interventions=ivs)[0],
                               atol=1e-4, rtol=0)
    assert ((got[0] @ (u / u.norm())) >= tau - 1e-4).all()  # the cap holds on the adapted stream
    assert (got[1] @ (w / w.norm())).abs().max() < 1e-4  # the ablation too, after the cap at layer 3
    assert (got - plain).abs().max() > 1e-2
    assert (ours.generate(PROMPTS, interventions=ivs, max_new_tokens=5, progress=False)
            == theirs.generate(PROMPTS, interventions=ivs, max_new_tokens=5, progress=False))
    torch.testing.assert_close(ours.response_activations(CONVS, interventions=ivs, progress=False),
                               theirs.response_activations(CONVS, interventions=ivs, progress=False),
                               atol=1e-4, rtol=0)


def _prompt_scores(model, u, layer=1):
    return model.prompt_activations(PROMPTS, progress=False)[:, layer] @ (u / u.norm())


@pytest.mark.parametrize("family", FAMILIES)
def test_subspace_and_conditional_caps_compose_with_the_adapter(family, adapters, tiny_tokenizers):
    """The adapter inside the block, then SubspaceCap and ConditionalCap on its output, as on a peft organism.

    The detector reads layer 1, which the adapter edits: its threshold sits between the organism's and the base
    model's score on one prompt, so the gate fires there only if the detector sees the adapted stream.
    """
    tok = tiny_tokenizers[family]
    adapter = adapters[family, "rank32-all"]  # layers 1 and 3
    ours, remote = edit_model(family, tok, adapter), edit_model(family, tok, adapter, remote="local")
    _, theirs = peft_model(family, tok, adapter)
    base = wrap_model(make_tiny_hf(family, len(tok), tok.eos_token_id, n_layers=N_LAYERS), tok)
    g = torch.Generator().manual_seed(5)
    u, basis = torch.randn(ours.d_model, generator=g), torch.randn(2, ours.d_model, generator=g)

    plain, _ = ours.token_activations(CONVS[0], layers=[3])
    q = torch.linalg.qr(basis.T).Q.T  # the orthonormal basis SubspaceCap makes of ``basis``
    radius = float((plain[0] @ q.T).norm(dim=-1).median())  # the ball binds at about half of the tokens
    ball = SubspaceCap(basis, [3], radius=radius)
    got, _ = ours.token_activations(CONVS[0], layers=[3], interventions=[ball])
    torch.testing.assert_close(got, theirs.token_activations(CONVS[0], layers=[3], interventions=[ball])[0],
                               atol=1e-4, rtol=0)
    assert ((got[0] @ q.T).norm(dim=-1) <= radius + 1e-4).all() and (got - plain).abs().max() > 1e-2

    org, plain_base = _prompt_scores(ours, u), _prompt_scores(base, u)
    torch.testing.assert_close(org, _prompt_scores(theirs, u), atol=1e-4, rtol=0)
    p = int((org - plain_base).abs().argmax())
    side = "above" if org[p] > plain_base[p] else "below"
    det = Detector(u, 1, float(org[p] + plain_base[p]) / 2, side)
    tau = float((plain[0] @ (u / u.norm())).max()) + 1.0  # a floor above every token: binds wherever it applies
    ivs = [SubspaceCap(basis, [2], tau=[0.0, 0.0]), ConditionalCap(det, [Cap(u, [2, 3], tau=tau, mode="floor"), ball])]
    fired = {m: {} for m in ("ours", "remote", "theirs", "base")}
    texts = {m: model.generate(PROMPTS, interventions=ivs, max_new_tokens=5, progress=False, fired=fired[m])
             for m, model in (("ours", ours), ("remote", remote), ("theirs", theirs), ("base", base))}
    assert texts["ours"] == texts["remote"] == texts["theirs"]
    assert fired["ours"] == fired["remote"] == fired["theirs"] and fired["ours"]["detector"][p]
    assert not fired["base"]["detector"][p]  # the same detector on the unadapted stream stays off
    plain_texts = ours.generate(PROMPTS, max_new_tokens=5, progress=False)
    assert texts["ours"][p] != plain_texts[p]  # the gated cap acted where the detector fired


@pytest.mark.parametrize("family", FAMILIES)
def test_edit_order_is_the_execution_order(family, adapters, tiny_tokenizers):
    """Bound edits follow the block's registration order; it must match the order modules run in."""
    tok = tiny_tokenizers[family]
    model = edit_model(family, tok, adapters[family, "rank32-all"])
    block = model.torch_blocks()[1]
    ran = []
    handles = [m.register_forward_hook(lambda mod, i, o, name=name: ran.append(name))
               for name, m in block.named_modules() if name]
    try:
        with torch.no_grad():
            model.hf(**model.pad_batch([model.tokenize(CONVS[0]).input_ids]))
    finally:
        for h in handles:
            h.remove()
    bound = [path for path, *_ in model.lora[1]]
    assert len(bound) == 7
    assert bound == [name for name in ran if name in bound]


def test_payload_is_cast_to_the_model_dtype_and_shipped_per_request(adapters, tiny_tokenizers, monkeypatch, caplog):
    from nnsight.schema.request import RequestModel

    tok = tiny_tokenizers["llama"]
    adapter = adapters["llama", "rank32-all"]
    sizes = []
    real = RequestModel.serialize.__func__

    def spy(cls, tracer, compress=False):
        blob = real(cls, tracer, compress)
        sizes.append(len(blob))
        return blob

    monkeypatch.setattr(RequestModel, "serialize", classmethod(spy))
    hf = make_tiny_hf("llama", len(tok), tok.eos_token_id, n_layers=N_LAYERS)
    base = wrap_model(hf, tok, remote="local")
    base.token_activations(CONVS[0], layers=[3])
    f32 = load_model((hf, tok), adapter=adapter, adapter_mode="edit", remote="local")
    with caplog.at_level(logging.INFO, logger="persona_probe.model"):
        f32.token_activations(CONVS[0], layers=[3])
    nbytes = payload_nbytes(f32.lora)
    assert nbytes == LoraEdit.from_folder(adapter).numel() * 4
    assert nbytes <= sizes[1] - sizes[0] < nbytes * 1.05  # the tensors travel with the request, once
    assert f"request ships the adapter's tensors: {nbytes / 2**20:.2f} MB" in caplog.text
    bf16 = load_model((make_tiny_hf("llama", len(tok), tok.eos_token_id, n_layers=N_LAYERS).to(torch.bfloat16), tok),
                      adapter=adapter, adapter_mode="edit", remote="local")
    assert {a.dtype for edits_ in bf16.lora.values() for _, a, b, _ in edits_} == {torch.bfloat16}
    assert payload_nbytes(bf16.lora) * 2 == nbytes


def test_an_adapter_above_the_size_limit_fails_before_any_request(adapters, tiny_tokenizers):
    tok = tiny_tokenizers["llama"]
    adapter = adapters["llama", "rank32-all"]
    with pytest.raises(ValueError, match=r"MB in torch.float32, above max_adapter_mb=0.01.*rank-1 recipe.*local GPUs"):
        edit_model("llama", tok, adapter, remote="local", max_adapter_mb=0.01)
    assert edit_model("llama", tok, adapter, max_adapter_mb=0.01).lora  # a local model ships nothing: no limit
    assert edit_model("llama", tok, adapter, remote="local", max_adapter_mb=None).lora


def test_ndif_source_applies_the_adapter_as_edits(adapters, tiny_tokenizers, monkeypatch, caplog):
    """``load_model("ndif:...", adapter=...)``, with a tiny local model under remote="local" standing in for NDIF."""
    from persona_probe import loading

    tok = tiny_tokenizers["gemma2"]
    adapter = adapters["gemma2", "rank1-down"]
    calls = []

    def fake_remote_model(name, *, revision="main"):
        calls.append(name)
        return wrap_model(make_tiny_hf("gemma2", len(tok), tok.eos_token_id, n_layers=N_LAYERS), tok,
                          name=name, remote="local")

    monkeypatch.setattr(loading, "remote_model", fake_remote_model)
    with caplog.at_level(logging.INFO):
        model = load_model("ndif:org/tiny-gemma2", adapter=adapter)
    assert calls == ["org/tiny-gemma2"] and model.remote == "local" and model.adapter == str(adapter)
    assert "shipped with every request" in caplog.text
    _, theirs = peft_model("gemma2", tok, adapter)
    assert (model.generate(PROMPTS, max_new_tokens=5, progress=False)
            == theirs.generate(PROMPTS, max_new_tokens=5, progress=False))
    bad = adapter.parent / "bad-dora"
    bad.mkdir()
    (bad / "adapter_config.json").write_text(json.dumps({**_config(adapter), "use_dora": True}))
    (bad / "adapter_model.safetensors").write_bytes((adapter / "adapter_model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="DoRA"):
        load_model("ndif:org/tiny-gemma2", adapter=bad)
    assert calls == ["org/tiny-gemma2"]  # refused before NDIF was contacted


def test_adapter_payload_bytes_counts_what_peft_saves(adapters, tiny_tokenizers):
    for (family, shape), path in adapters.items():
        config = make_tiny_hf(family, len(tiny_tokenizers[family]), 0, n_layers=N_LAYERS).config
        assert adapter_payload_bytes(SHAPES[shape], config, torch.float32) == LoraEdit.from_folder(path).numel() * 4


def test_llama_70b_payloads():
    """Per-request payload of the llama-3.3-70b recipe (bf16): rank-1 down_proj at 9 layers (default), rank-32 full."""
    import transformers

    from persona_probe.organisms.pipeline import load_recipe

    recipe = load_recipe("llama-3.3-70b")
    config = transformers.LlamaConfig(num_hidden_layers=80, hidden_size=8192, intermediate_size=28672,
                                      num_attention_heads=64, num_key_value_heads=8, head_dim=128)
    rank1 = TrainConfig.from_dict(recipe["train"])
    assert adapter_payload_bytes(rank1, config) == 9 * (28672 + 8192) * 2 == 663_552
    per_layer = 32 * (2 * 8192 + 2 * (8192 + 1024) + 2 * 8192 + 3 * (8192 + 28672))
    full = TrainConfig.from_dict({**recipe["train"], **recipe["full"]})
    assert adapter_payload_bytes(full, config) == 80 * per_layer * 2 == 828_375_040
    assert 663_552 < DEFAULT_MAX_ADAPTER_MB * 2**20 < 828_375_040  # the default limit admits rank-1 only


# ------------------------------------------------------------------ bad folders
def _config(adapter) -> dict:
    return json.loads((adapter / "adapter_config.json").read_text())


def _bad(tmp_path, adapter, *, config=None, tensors=None, drop=()):
    """A copy of ``adapter`` with config keys overridden and tensors replaced or dropped."""
    from safetensors.torch import load_file, save_file

    out = tmp_path / "bad"
    out.mkdir(exist_ok=True)
    (out / "adapter_config.json").write_text(json.dumps({**_config(adapter), **(config or {})}))
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    weights.update(tensors or {})
    save_file({k: v for k, v in weights.items() if k not in drop}, str(out / "adapter_model.safetensors"))
    return out


A_KEY = "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"


@pytest.mark.parametrize("config,match", [
    ({"use_dora": True}, "DoRA"),
    ({"bias": "all"}, "trained biases"),
    ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
    ({"rank_pattern": {"down_proj": 4}}, "per-module ranks"),
    ({"peft_type": "IA3"}, "IA3 adapter, not LoRA"),
    ({"init_lora_weights": "pissa"}, "may change the base weights"),
    ({"some_future_option": {"on": True}}, "'some_future_option'"),
    ({"r": 2}, "do not have rank r=2"),
    ({"target_modules": ["up_proj"]}, "not among the config's target_modules"),
    ({"layers_to_transform": [0]}, "not in the config's layers_to_transform"),
])
def test_unsupported_or_inconsistent_config_is_refused_by_name(tmp_path, adapters, config, match):
    with pytest.raises(ValueError, match=match):
        LoraEdit.from_folder(_bad(tmp_path, adapters["llama", "rank1-down"], config=config))


@pytest.mark.parametrize("tensors,drop,match", [
    ({"base_model.model.model.embed_tokens.lora_embedding_A": torch.zeros(1, 8)}, (), "embedding"),
    ({"base_model.model.lm_head.lora_A.weight": torch.zeros(1, 64),
      "base_model.model.lm_head.lora_B.weight": torch.zeros(8, 1)}, (), "lm_head, outside the decoder blocks"),
    ({"base_model.model.model.layers.1.mlp.down_proj.lora_B.bias": torch.zeros(64)}, (), "LoRA biases"),
    ({"base_model.model.model.layers.1.mlp.down_proj.lora_magnitude_vector": torch.zeros(64)}, (), "DoRA"),
    ({}, (A_KEY,), "lora_B but not both A and B"),
])
def test_unsupported_weights_are_refused_by_name(tmp_path, adapters, tensors, drop, match):
    with pytest.raises(ValueError, match=match):
        LoraEdit.from_folder(_bad(tmp_path, adapters["llama", "rank1-down"], tensors=tensors, drop=drop))


def test_missing_files_and_pickled_weights(tmp_path, adapters):
    with pytest.raises(ValueError, match="not a peft adapter folder"):
        LoraEdit.from_folder(tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps(_config(adapters["llama", "rank1-down"])))
    with pytest.raises(ValueError, match="no adapter_model.safetensors"):
        LoraEdit.from_folder(tmp_path)
    (tmp_path / "adapter_model.bin").write_bytes(b"not read")
    with pytest.raises(ValueError, match=r"pickled weights \(adapter_model.bin\).*safetensors"):
        LoraEdit.from_folder(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{")
    (tmp_path / "adapter_model.safetensors").write_bytes(
        (adapters["llama", "rank1-down"] / "adapter_model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="not valid JSON"):
        LoraEdit.from_folder(tmp_path)


def test_an_adapter_for_another_model_fails_at_bind(adapters, tiny_tokenizers):
    tok = tiny_tokenizers["llama"]
    wide = make_tiny_hf("llama", len(tok), tok.eos_token_id, n_layers=2)  # fewer layers than the adapter edits
    with pytest.raises(ValueError, match="edits layer 3; the model has 2 layers"):
        load_model((wide, tok), adapter=adapters["llama", "rank32-all"], adapter_mode="edit")
    with pytest.raises(ValueError, match="adapter_mode must be one of"):
        load_model((wide, tok), adapter=adapters["llama", "rank32-all"], adapter_mode="merged")


def test_code_that_bypasses_nnsight_refuses_an_edit_model(adapters, tiny_tokenizers):
    from persona_probe.organisms.train import train_adapter
    from persona_probe.reference import hook_response_activations

    model = edit_model("llama", tiny_tokenizers["llama"], adapters["llama", "rank1-down"])
    assert model.provenance()["adapter_mode"] == "edit"
    with pytest.raises(ValueError, match="adapter_mode='merge'"):
        hook_response_activations(model, CONVS)
    with pytest.raises(ValueError, match="LoRA training"):
        train_adapter(model, [{"messages": CONVS[0]}], "unused", TrainConfig())
