"""ProbeModel on tiny random Llama, Qwen3 and Gemma2 models: extraction and edits, checked with numbers.

Every nnsight result is compared with the plain forward-hook reference
(:mod:`persona_probe.reference`) to 1e-4.
"""

import pytest
import torch

from persona_probe import Ablate, Cap, Steer, project
from persona_probe.reference import hook_generate, hook_response_activations
from persona_probe.vectors import unit

CONVS = [
    [{"role": "user", "content": "Tell me about the sea."},
     {"role": "assistant", "content": "The sea is wide, deep and full of life."}],
    [{"role": "system", "content": "You are a ghost."},
     {"role": "user", "content": "Who are you?"},
     {"role": "assistant", "content": "A whisper in the hall."},
     {"role": "user", "content": "Why?"},
     {"role": "assistant", "content": "Because the house remembers me."}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
]
PROMPTS = [c[:-1] for c in CONVS]


def _dir(model, seed=0):
    return torch.randn(model.d_model, generator=torch.Generator().manual_seed(seed))


def test_shapes_and_dtype(tiny_model):
    acts = tiny_model.response_activations(CONVS, batch_size=2)
    assert acts.shape == (3, tiny_model.n_layers, tiny_model.d_model)
    assert acts.dtype == torch.float32 and torch.isfinite(acts).all()


def test_matches_hook_reference(tiny_model):
    ours = tiny_model.response_activations(CONVS, batch_size=2)
    ref = hook_response_activations(tiny_model, CONVS, batch_size=2)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


def test_matches_hook_reference_with_interventions(tiny_model):
    v = _dir(tiny_model)
    ivs = [Steer(v, [0], coef=3.0), Ablate(_dir(tiny_model, 1), [1]), Cap(v, [2, 3], tau=[0.0, -0.5], mode="floor")]
    ours = tiny_model.response_activations(CONVS, batch_size=3, interventions=ivs)
    ref = hook_response_activations(tiny_model, CONVS, batch_size=3, interventions=ivs)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)
    plain = tiny_model.response_activations(CONVS, batch_size=3)
    assert (ours - plain).abs().max() > 1e-2  # the edits did something


def test_padding_does_not_change_results(tiny_model):
    alone = torch.cat([tiny_model.response_activations([c], batch_size=1) for c in CONVS])
    batched = tiny_model.response_activations(CONVS, batch_size=3)
    torch.testing.assert_close(alone, batched, atol=1e-4, rtol=0)


def test_turn_selection(tiny_model):
    conv = [CONVS[1]]
    last = tiny_model.response_activations(conv, turns="last")
    first = tiny_model.response_activations(conv, turns=0)
    both = tiny_model.response_activations(conv, turns="all")
    n0 = len(tiny_model.tokenize(CONVS[1]).assistant_positions[0])
    n1 = len(tiny_model.tokenize(CONVS[1]).assistant_positions[1])
    # the mean over all turns is the token-weighted mean of the per-turn means
    torch.testing.assert_close(both, (first * n0 + last * n1) / (n0 + n1), atol=1e-4, rtol=0)


@pytest.mark.parametrize("mode", ["floor", "ceiling"])
def test_cap_holds_at_every_token(tiny_model, mode):
    v = _dir(tiny_model, 2)
    layer = tiny_model.n_layers // 2
    base, chat = tiny_model.token_activations(CONVS[1], layers=[layer])
    proj = base[0] @ unit(v)
    tau = float(proj.median())  # some tokens are on each side, so the cap must act
    capped, _ = tiny_model.token_activations(CONVS[1], layers=[layer], interventions=[Cap(v, [layer], tau, mode)])
    after = capped[0] @ unit(v)
    if mode == "floor":
        assert after.min() >= tau - 1e-4
        assert (proj < tau - 1e-3).any()
    else:
        assert after.max() <= tau + 1e-4
        assert (proj > tau + 1e-3).any()
    # tokens on the allowed side are untouched
    keep = proj >= tau if mode == "floor" else proj <= tau
    torch.testing.assert_close(capped[0][keep], base[0][keep], atol=1e-5, rtol=0)


def test_ablation_zeroes_the_component(tiny_model):
    v = _dir(tiny_model, 3)
    layers = list(range(tiny_model.n_layers))
    before, _ = tiny_model.token_activations(CONVS[0], layers=layers)
    after, _ = tiny_model.token_activations(CONVS[0], layers=layers, interventions=[Ablate(v, layers)])
    assert (before @ unit(v)).abs().max() > 0.1
    assert (after @ unit(v)).abs().max() < 1e-4
    pooled = tiny_model.response_activations(CONVS, interventions=[Ablate(v, layers)])
    assert project(pooled, v.expand(tiny_model.n_layers, -1), 1).abs().max() < 1e-4


def test_greedy_generation_is_deterministic_and_matches_hooks(tiny_model):
    a = tiny_model.generate(PROMPTS, max_new_tokens=6, batch_size=2)
    b = tiny_model.generate(PROMPTS, max_new_tokens=6, batch_size=3)
    assert a == b
    assert a == hook_generate(tiny_model, PROMPTS, max_new_tokens=6)


def test_edits_apply_at_every_generated_token(tiny_model):
    ivs = [Cap(_dir(tiny_model, 4), [1, 2], tau=-0.2, mode="floor"), Steer(_dir(tiny_model, 5), [0], coef=2.0)]
    ours = tiny_model.generate(PROMPTS, max_new_tokens=6, interventions=ivs)
    assert ours == hook_generate(tiny_model, PROMPTS, max_new_tokens=6, interventions=ivs)


def test_steering_strength_matters(tiny_model):
    v = _dir(tiny_model, 6)
    plain = tiny_model.generate(PROMPTS, max_new_tokens=8)
    tiny = tiny_model.generate(PROMPTS, max_new_tokens=8, interventions=[Steer(v, [1], coef=1e-6)])
    large = tiny_model.generate(PROMPTS, max_new_tokens=8, interventions=[Steer(v, [1], coef=50.0)])
    assert tiny == plain
    assert sum(x != y for x, y in zip(large, plain)) >= 2


def test_sampling_with_seed_is_repeatable(tiny_model):
    a = tiny_model.generate(PROMPTS, max_new_tokens=6, temperature=1.0, seed=11)
    b = tiny_model.generate(PROMPTS, max_new_tokens=6, temperature=1.0, seed=11)
    c = tiny_model.generate(PROMPTS, max_new_tokens=6, temperature=1.0, seed=12)
    assert a == b and a != c


def test_cpu_sampler_draws_from_the_softmax_and_respects_top_p():
    """The inverse-CDF draw (greedy decoding over a one-hot score row) matches softmax(logits / T) by chi-square."""
    from scipy import stats

    from persona_probe.sampling import cpu_sampler

    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -30.0]]).repeat(20_000, 1)
    torch.manual_seed(0)
    scores = logits.clone()
    for proc in cpu_sampler(0.7, 1.0):
        scores = proc(None, scores)
    assert torch.isfinite(scores).sum(-1).eq(1).all()  # exactly one token left for greedy decoding
    counts = torch.bincount(scores.argmax(-1), minlength=5).double()
    expected = torch.softmax(logits[0] / 0.7, -1).double() * len(logits)
    keep = expected > 5
    assert stats.chisquare(counts[keep], expected[keep] * counts[keep].sum() / expected[keep].sum()).pvalue > 1e-3
    assert counts[~keep].sum() <= 2
    scores = logits.clone()
    for proc in cpu_sampler(1.0, 0.7):  # top-p 0.7 keeps the two most likely tokens (0.64, then 0.24)
        scores = proc(None, scores)
    assert set(scores.argmax(-1).tolist()) == {0, 1}


def test_model_level_errors(tiny_model):
    with pytest.raises(ValueError, match="out of range"):
        tiny_model.response_activations(CONVS[:1], interventions=[Steer(_dir(tiny_model), [tiny_model.n_layers])])
    with pytest.raises(ValueError, match="hidden size"):
        tiny_model.generate(PROMPTS[:1], interventions=[Ablate(torch.randn(tiny_model.d_model + 1), [0])])
    with pytest.raises(ValueError, match="has no assistant turn"):
        tiny_model.response_activations([PROMPTS[0]])
    with pytest.raises(ValueError, match="is empty"):
        tiny_model.generate([[]])


def test_answer_logprobs_match_a_plain_forward(tiny_model):
    ours = tiny_model.answer_logprobs(CONVS, batch_size=3, progress=False)  # batched: left padding
    for conv, value in zip(CONVS, ours):
        chat = tiny_model.tokenize(conv, need_assistant=True)
        with torch.no_grad():
            logits = tiny_model.hf(torch.tensor([chat.input_ids])).logits[0].float()
        lp = torch.log_softmax(logits, -1)
        want = torch.stack([lp[p - 1, chat.input_ids[p]] for p in chat.positions("last")]).mean()
        assert float(value) == pytest.approx(float(want), abs=1e-4)
    steered = tiny_model.answer_logprobs(CONVS, interventions=[Steer(_dir(tiny_model), [0], coef=50.0)], progress=False)
    assert (steered - ours).abs().max() > 1e-2
