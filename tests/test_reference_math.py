"""The reference implementation's capping arithmetic (``math_dtype="model"``) and multi-turn pooling, tiny bf16 model.

Each result is compared with a computation written here by hand with plain
forward hooks on the transformers model (no persona_probe edit code):

* ``math_dtype="model"`` equals the bf16 reference (vector cast to bf16 before
  it is normalised, projection, clamp and update in bf16), bit for bit;
* the default equals the float32 computation (cast back to bf16), bit for bit,
  and the two differ, so the option is not a no-op;
* ``pooling="turns"`` equals the mean of per-turn means, ``"tokens"`` the mean
  over all assistant tokens, and the two differ on turns of unequal length.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_hf

from persona_probe import Ablate, Cap, Steer, wrap_model

CONV = [{"role": "user", "content": "Tell me about the sea."},
        {"role": "assistant", "content": "The sea is wide, deep and full of life, and it is cold in winter."},
        {"role": "user", "content": "Why?"},
        {"role": "assistant", "content": "Salt."}]
LAYERS = [1, 2]


@pytest.fixture(scope="module")
def bf16(tiny_tokenizers):
    tok = tiny_tokenizers["llama"]
    hf = make_tiny_hf("llama", len(tok), tok.eos_token_id, seed=3).to(torch.bfloat16)
    return wrap_model(hf, tok, name="tiny-bf16")


def _vector(d: int) -> torch.Tensor:
    return torch.randn(d, generator=torch.Generator().manual_seed(7)) * 3.0  # float32, not unit


def _hidden(model, hook) -> torch.Tensor:
    """Each block's output ``[L, T, d]`` (model dtype), with ``hook(layer, h) -> h`` editing the LAYERS.

    Read by hooks registered after the editing ones (transformers' own ``hidden_states`` are recorded before).
    """
    chat = model.tokenize(CONV)
    blocks = model.hf.model.layers
    seen: dict[int, torch.Tensor] = {}
    handles = [blocks[i].register_forward_hook(lambda m, a, out, i=i: hook(i, out)) for i in LAYERS]
    handles += [b.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, out[0]))
                for i, b in enumerate(blocks)]
    try:
        with torch.no_grad():
            model.hf(input_ids=torch.tensor([chat.input_ids]))
    finally:
        for h in handles:
            h.remove()
    return torch.stack([seen[i] for i in range(len(blocks))])


def _bf16_cap(v: torch.Tensor, tau: float):
    def hook(layer, h):  # the reference implementation's capping, written out in the model's dtype
        vec = v.to(h.dtype)
        u = vec / (vec.norm() + 1e-8)
        proj = torch.einsum("bld,d->bl", h, u)
        excess = (proj - tau).clamp(min=0.0)
        return h - torch.einsum("bl,d->bld", excess, u)
    return hook


def _f32_cap(v: torch.Tensor, tau: float):
    def hook(layer, h):  # the same formula in float32, cast back
        x = h.float()
        u = v / v.norm()
        return (x - u * torch.clamp(x @ u - tau, min=0).unsqueeze(-1)).to(h.dtype)
    return hook


def _ours(model, interventions) -> torch.Tensor:
    acts, _ = model.token_activations(CONV, interventions=interventions)
    return acts  # [L, T, d] float32 of the model-dtype hidden states


def test_model_math_equals_the_bf16_reference_and_default_equals_float32(bf16):
    v = _vector(bf16.d_model)
    plain = _hidden(bf16, lambda i, h: h).float()
    tau = float(torch.quantile(plain[LAYERS[0]] @ (v / v.norm()), 0.5))  # binds on about half of the tokens
    ref_bf16 = _hidden(bf16, _bf16_cap(v, tau)).float()
    ref_f32 = _hidden(bf16, _f32_cap(v, tau)).float()
    model_math = _ours(bf16, [Cap(v, LAYERS, tau=tau, math_dtype="model")])
    default = _ours(bf16, [Cap(v, LAYERS, tau=tau)])
    assert torch.equal(model_math, ref_bf16)
    assert torch.equal(default, ref_f32)
    assert not torch.equal(ref_bf16, ref_f32), "bf16 and float32 arithmetic should differ on a bf16 model"
    assert (model_math - default).abs().max() > 0


def test_model_math_for_steering_and_ablation_matches_bf16(bf16):
    v = _vector(bf16.d_model)

    def steer(layer, h):
        return h + 2.0 * v.to(h.dtype)

    def ablate(layer, h):
        vec = v.to(h.dtype)
        u = vec / (vec.norm() + 1e-8)
        return h - torch.einsum("bl,d->bld", torch.einsum("bld,d->bl", h, u), u)

    assert torch.equal(_ours(bf16, [Steer(v, LAYERS, coef=2.0, math_dtype="model")]),
                       _hidden(bf16, steer).float())
    assert torch.equal(_ours(bf16, [Ablate(v, LAYERS, math_dtype="model")]),
                       _hidden(bf16, ablate).float())


def test_math_dtype_is_checked():
    with pytest.raises(ValueError, match="math_dtype must be 'float32'.*or 'model'"):
        Cap(torch.ones(4), [0], tau=1.0, math_dtype="bf16")


def test_pooling_turns_is_the_mean_of_per_turn_means(bf16):
    acts, chat = bf16.token_activations(CONV)
    turns = chat.turn_positions()
    assert len(turns) == 2 and len(turns[0]) > 3 * len(turns[1])
    per_turn = torch.stack([acts[:, t].mean(1) for t in turns])  # [2, L, d]
    by_turns = bf16.response_activations([CONV], pooling="turns")[0]
    by_tokens = bf16.response_activations([CONV])[0]
    torch.testing.assert_close(by_turns, per_turn.mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(by_tokens, acts[:, chat.positions()].mean(1), atol=1e-5, rtol=1e-5)
    assert (by_turns - by_tokens).abs().max() > 1e-2
    single = [CONV[:2]]  # one turn: both poolings are the same mean
    assert torch.equal(bf16.response_activations(single, pooling="turns"), bf16.response_activations(single))
    with pytest.raises(ValueError, match="pooling must be 'tokens'"):
        bf16.response_activations([CONV], pooling="mean")
