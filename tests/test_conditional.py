"""ConditionalCap: the gate is read on the prompt, kept through generation, and leaves other rows bit-identical."""

import pytest
import torch

from persona_probe import Cap, ConditionalCap, Detector, Steer, SubspaceCap, edits
from persona_probe.interventions import bind_interventions, calibrate_threshold
from persona_probe.reference import hook_generate
from persona_probe.vectors import unit

D = 32
PROMPTS = [[{"role": "user", "content": "Tell me about the sea."}],
           [{"role": "user", "content": "Hi"}],
           [{"role": "system", "content": "You are a ghost."}, {"role": "user", "content": "Who are you?"}]]


def _g(seed):
    return torch.Generator().manual_seed(seed)


def test_gated_ops_leave_non_firing_rows_bit_identical():
    h = torch.randn(4, 6, D, generator=_g(0)) * 5
    u = unit(torch.randn(D, generator=_g(1)))
    weights = torch.full((4, 6), 1 / 6)
    scores = edits.prompt_scores(h, u, weights)
    threshold = float(scores.sort().values[1:3].mean())  # between two rows: two fire, two do not
    cap = Cap(torch.randn(D, generator=_g(2)), [2], tau=50.0, mode="floor")  # far: moves every position it touches
    ops = bind_interventions([ConditionalCap(Detector(u, 1, threshold, "below"), cap)], n_layers=4, d_model=D)
    assert [op[0] for op in ops[1]] == ["detect"] and [op[0] for op in ops[2]] == ["gated"]
    gates: dict = {}
    edits.apply_ops(h, ops[1], gates, weights)  # the detector layer reads, edits nothing
    fire = gates["detector"]
    assert fire.tolist() == (scores < threshold).tolist() and 0 < int(fire.sum()) < 4
    out = edits.apply_ops(h, ops[2], gates, weights)
    assert torch.equal(out[~fire], h[~fire])  # bit-identical, not merely close
    assert torch.equal(out[fire], edits.apply_ops(h, cap.ops(2))[fire])  # firing rows get exactly the cap
    # the gate is kept: a later step (one new token, other weights) does not re-read it
    step = torch.randn(4, 1, D, generator=_g(3))
    edits.apply_ops(step, ops[1], gates, torch.ones(4, 1))
    assert gates["detector"] is fire


def test_detector_must_read_before_every_capped_layer():
    u = torch.randn(D)
    with pytest.raises(ValueError, match="strictly before every capped layer"):
        ConditionalCap(Detector(u, 2, 0.0), Cap(u, [2, 3], tau=0.0))
    with pytest.raises(ValueError, match="strictly before every capped layer"):
        ConditionalCap(Detector(u, 3, 0.0), [Cap(u, [4], tau=0.0), SubspaceCap(u, [1], tau=[0.0])])
    with pytest.raises(ValueError, match="fires_when"):
        Detector(u, 0, 0.0, "sideways")
    with pytest.raises(ValueError, match="named 'detector'"):
        cc = ConditionalCap(Detector(u, 0, 0.0), Cap(u, [1], tau=0.0))
        bind_interventions([cc, cc], n_layers=4, d_model=D)


def test_calibrated_threshold_fires_at_the_target_rate():
    scores = torch.randn(400, generator=_g(4))
    for side in ("below", "above"):
        t = calibrate_threshold(scores, 0.05, side)
        fired = (scores < t) if side == "below" else (scores > t)
        assert abs(float(fired.float().mean()) - 0.05) <= 1 / 400
    with pytest.raises(ValueError, match="0.05, not 5"):
        calibrate_threshold(scores, 5, "below")


def _split_detector(model, layer=0):
    """A detector at ``layer`` whose threshold falls between the prompts' scores: row 0 fires, the others do not."""
    acts = model.prompt_activations(PROMPTS, progress=False)
    v = acts[0, layer] - acts[1:, layer].mean(0)
    scores = acts[:, layer] @ unit(v)
    assert scores[0] > scores[1:].max()
    return Detector(v, layer, float((scores[0] + scores[1:].max()) / 2), "above")


def test_conditional_generation_caps_only_firing_sequences(tiny_model):
    det = _split_detector(tiny_model)
    cap = Cap(torch.randn(tiny_model.d_model, generator=_g(5)), [2, 3], tau=40.0, mode="floor")
    plain = tiny_model.generate(PROMPTS, max_new_tokens=8)
    always = tiny_model.generate(PROMPTS, max_new_tokens=8, interventions=[cap])
    fired: dict = {}
    gated = tiny_model.generate(PROMPTS, max_new_tokens=8, interventions=[ConditionalCap(det, cap)], fired=fired)
    assert fired == {"detector": [True, False, False]}
    assert always[0] != plain[0]  # the cap changes the firing sequence ...
    assert gated[0] == always[0]  # ... exactly as the unconditional cap does
    assert gated[1:] == plain[1:]  # and the others are untouched
    # the plain hook implementation agrees (the gate set on the first forward, kept for the rest)
    assert gated == hook_generate(tiny_model, PROMPTS, max_new_tokens=8, interventions=[ConditionalCap(det, cap)])
    # batch of one: the gate is per sequence, not per batch
    assert tiny_model.generate(PROMPTS, max_new_tokens=8, interventions=[ConditionalCap(det, cap)],
                               batch_size=1) == gated


def test_non_firing_sequences_are_identical_under_sampling(tiny_model):
    det = _split_detector(tiny_model)
    cap = Steer(torch.randn(tiny_model.d_model, generator=_g(6)), [2], coef=30.0)
    kw = dict(max_new_tokens=8, temperature=1.0, seed=3)
    plain = tiny_model.generate(PROMPTS, **kw)
    gated = tiny_model.generate(PROMPTS, interventions=[ConditionalCap(det, cap)], **kw)
    assert gated[1:] == plain[1:] and gated[0] != plain[0]


def test_conditional_caps_are_for_generation_only(tiny_model):
    det = _split_detector(tiny_model)
    cc = ConditionalCap(det, Cap(torch.randn(tiny_model.d_model), [2], tau=0.0))
    conv = PROMPTS[0] + [{"role": "assistant", "content": "It is deep."}]
    with pytest.raises(ValueError, match="use it with generate"):
        tiny_model.response_activations([conv], interventions=[cc])
    with pytest.raises(ValueError, match="use it with generate"):
        tiny_model.token_activations(conv, interventions=[cc])


@pytest.mark.parametrize("read", ["mean", "last"])
def test_gate_in_generation_matches_the_prompt_activations(tiny_model, read):
    """The detector's score in generation is the one prompt_activations gives (calibration reads the same)."""
    acts = tiny_model.prompt_activations(PROMPTS, read=read, progress=False)
    v = torch.randn(tiny_model.d_model, generator=_g(7))
    scores = acts[:, 1] @ unit(v)
    for threshold in scores.sort().values[:2] + 1e-3:  # one fires, then two
        det = Detector(v, 1, float(threshold), "below", read)
        fired: dict = {}
        tiny_model.generate(PROMPTS, max_new_tokens=2, interventions=[ConditionalCap(det, Cap(v, [2], tau=0.0))],
                            fired=fired)
        assert fired["detector"] == det.fires(acts).tolist() == (scores < threshold).tolist()
