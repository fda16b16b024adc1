"""TransformerLens 3.9 ``TransformerBridge`` parity with our nnsight path on the embedded model.

The bridge is booted with no weight processing (no LayerNorm folding or weight
centring), so ``hook_resid_post`` is the raw HF decoder-block output, the value
``ProbeModel`` reads. Both run the same float32 weights; the only possible
difference is kernel choice (the bridge may use eager attention where HF uses
SDPA, ~1e-6 relative in float32), so we allow 1e-4 of each layer's largest
residual magnitude (residual norms here reach ~4e3).
"""

from __future__ import annotations

import pytest
import torch

from persona_probe import project
from persona_probe.bridge import boot_bridge, conversation_residuals

CONV = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
        {"role": "user", "content": "And of Italy?"},
        {"role": "assistant", "content": "Rome is the capital of Italy."}]
LAYERS = [0, 7, 15, 29]


@pytest.fixture(scope="module")
def bridge(embedded_model):
    return boot_bridge(embedded_model)


@pytest.fixture(scope="module")
def both(embedded_model, bridge):
    """(ours, theirs, chat): per-token residuals at LAYERS from nnsight and from the bridge."""
    ours, chat = embedded_model.token_activations(CONV, layers=LAYERS)
    theirs, chat2 = conversation_residuals(embedded_model, bridge, CONV, layers=LAYERS)
    assert chat.input_ids == chat2.input_ids
    return ours, theirs, chat


def test_resid_post_matches_token_activations(embedded_model, both):
    ours, theirs, chat = both
    assert theirs.shape == ours.shape == (len(LAYERS), len(chat.input_ids), embedded_model.d_model)
    scale = ours.abs().amax(dim=(-2, -1), keepdim=True)
    err = ((theirs - ours).abs() / scale).max()
    assert err <= 1e-4, err


def test_mean_projection_matches_response_activations(embedded_model, both):
    _, theirs, chat = both
    g = torch.Generator().manual_seed(1)
    axis = torch.randn(embedded_model.n_layers, embedded_model.d_model, generator=g)
    acts = embedded_model.response_activations([CONV], progress=False)  # [1, n_layers, d]
    pooled = theirs[:, chat.positions("all")].mean(1)  # [len(LAYERS), d]: mean over assistant tokens
    for row, layer in enumerate(LAYERS):
        want = project(acts, axis, layer)[0]
        got = pooled[row] @ (axis[layer] / axis[layer].norm())
        # 1e-4 relative to the pooled vector's norm (|projection| <= norm)
        assert abs(got - want) <= 1e-4 * pooled[row].norm(), (layer, got, want)


def test_bridge_does_not_touch_probe_model(embedded_model, bridge):
    """boot_bridge copies the module tree: the ProbeModel's HF blocks are not rewrapped."""
    assert type(embedded_model.hf.model.layers[0]).__module__.startswith("transformers.")
    assert bridge.blocks[0] is not embedded_model.hf.model.layers[0]
