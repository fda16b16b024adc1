"""Integration tests on the embedded SmolLM2-135M-Instruct (a real chat model). Never skipped in CI."""

import pytest
import torch

from persona_probe import Cap, Steer, project
from persona_probe.reference import hook_generate, hook_response_activations
from persona_probe.vectors import random_like, unit

pytestmark = pytest.mark.embedded

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
CONVS = [
    QUESTION + [{"role": "assistant", "content": "The capital of France is Paris."}],
    [{"role": "system", "content": "You are a pirate captain."},
     {"role": "user", "content": "How was your day?"},
     {"role": "assistant", "content": "Arr, we plundered three ships and sang till dawn!"}],
]


def test_dimensions(embedded_model):
    assert (embedded_model.n_layers, embedded_model.d_model) == (30, 576)
    assert embedded_model.family.name == "llama"
    assert embedded_model.target_layer == 15


def test_answers_like_a_chat_model(embedded_model):
    (answer,) = embedded_model.generate([QUESTION], max_new_tokens=16)
    assert "Paris" in answer


def test_extraction_matches_hooks(embedded_model):
    ours = embedded_model.response_activations(CONVS)
    ref = hook_response_activations(embedded_model, CONVS)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-6)
    # residual norms grow with depth in this model: a sanity check on what we read
    norms = ours[0].norm(dim=-1)
    assert norms[20] > norms[2]


def _pirate_direction(model):
    acts = model.response_activations(CONVS)
    return acts[1] - acts[0]  # [n_layers, d]: pirate minus assistant


def test_floor_cap_on_eight_layers_holds_and_matches_hooks(embedded_model):
    layers = list(range(10, 18))
    axis = -_pirate_direction(embedded_model)  # points towards the assistant
    conv = CONVS[1]
    base, _ = embedded_model.token_activations(conv, layers=layers)
    taus = [float((base[i] @ unit(axis[layer])).quantile(0.75)) for i, layer in enumerate(layers)]
    cap = Cap(axis, layers, tau=taus, mode="floor")
    capped, chat = embedded_model.token_activations(conv, layers=layers, interventions=[cap])
    for i, layer in enumerate(layers):
        assert (capped[i] @ unit(axis[layer])).min() >= taus[i] - 1e-3
    prompts = [c[:-1] for c in CONVS]
    ours = embedded_model.generate(prompts, max_new_tokens=12, interventions=[cap])
    assert ours == hook_generate(embedded_model, prompts, max_new_tokens=12, interventions=[cap])


def test_an_inactive_cap_changes_nothing(embedded_model):
    axis = -_pirate_direction(embedded_model)
    low = Cap(axis, list(range(10, 18)), tau=-1e6, mode="floor")
    prompts = [c[:-1] for c in CONVS]
    assert embedded_model.generate(prompts, max_new_tokens=12, interventions=[low]) == \
        embedded_model.generate(prompts, max_new_tokens=12)


def test_steering_changes_output_and_a_tiny_coefficient_does_not(embedded_model):
    layer = 12
    pirate = _pirate_direction(embedded_model)[layer]
    direction = unit(pirate)
    plain = embedded_model.generate([QUESTION], max_new_tokens=16)
    tiny = embedded_model.generate([QUESTION], max_new_tokens=16, interventions=[Steer(direction, [layer], coef=1e-4)])
    strong = embedded_model.generate([QUESTION], max_new_tokens=16,
                                     interventions=[Steer(direction, [layer], coef=4 * float(pirate.norm()))])
    assert tiny == plain
    assert strong != plain
    # steering moves the projection at the next layer along the direction, a random direction of equal
    # norm moves it far less
    coef = float(pirate.norm())
    base = embedded_model.response_activations(CONVS[:1])
    along = embedded_model.response_activations(CONVS[:1], interventions=[Steer(direction, [layer], coef=coef)])
    rand = embedded_model.response_activations(
        CONVS[:1], interventions=[Steer(unit(random_like(direction, seed=0)), [layer], coef=coef)])
    shift_along = float(project(along - base, direction.expand(30, -1), layer + 1)[0])
    shift_rand = float(project(rand - base, direction.expand(30, -1), layer + 1)[0])
    assert shift_along > 0.5 * coef
    assert abs(shift_rand) < 0.2 * shift_along
