"""SubspaceCap: the basis, the two regions, and k = 1 equals Cap bit for bit, in the edit math and in a model."""

import pytest
import torch

from persona_probe import Cap, SubspaceCap, edits
from persona_probe.interventions import bind_interventions, orthonormal_basis
from persona_probe.vectors import unit

D = 32


def _g(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def h():
    return torch.randn(3, 7, D, generator=_g(0)) * 5


def test_basis_is_gram_schmidt_in_order_and_rejects_dependent_directions():
    v = torch.randn(4, D, generator=_g(1))
    q = orthonormal_basis(v)
    torch.testing.assert_close(q @ q.T, torch.eye(4), atol=1e-6, rtol=0)
    assert torch.equal(q[0], unit(v[0]))  # the first direction, exactly as Cap normalises it
    for i in range(4):  # each basis vector lies in the span of the first i+1 directions
        resid = q[i] - (q[i] @ torch.linalg.pinv(v[: i + 1])) @ v[: i + 1]
        assert resid.norm() < 1e-4
    with pytest.raises(ValueError, match="direction 2 lies in the span of directions 0..1"):
        orthonormal_basis(torch.stack([v[0], v[1], 2 * v[0] - 3 * v[1]]))


def test_k1_floors_on_the_axis_equal_cap_bit_for_bit(h):
    axis = torch.randn(4, D, generator=_g(2))
    for layer, tau in ((1, 0.7), (3, -2.0)):
        cap = Cap(axis, [layer], tau=tau, mode="floor")
        sub = SubspaceCap(axis[layer], [layer], tau=[tau])
        a = edits.apply_ops(h, cap.ops(layer))
        b = edits.apply_ops(h, sub.ops(layer))
        assert torch.equal(a, b)
        assert not torch.equal(a, h)  # the cap acted
        # a published-style ceiling on -axis at -tau is the same edit (to float32 rounding: other arithmetic)
        torch.testing.assert_close(edits.apply_ops(h, cap.flipped().ops(layer)), b, atol=1e-5, rtol=0)
    # per-layer bases and thresholds, bound as a model would bind them
    ops_cap = bind_interventions([Cap(axis, [1, 3], tau=[0.5, -0.5], mode="floor")], n_layers=4, d_model=D)
    ops_sub = bind_interventions([SubspaceCap(axis[:, None, :], [1, 3], tau=[[0.5], [-0.5]])], n_layers=4, d_model=D)
    for layer in (1, 3):
        assert torch.equal(edits.apply_ops(h, ops_cap[layer]), edits.apply_ops(h, ops_sub[layer]))


def test_floors_hold_every_coordinate_and_leave_the_rest(h):
    basis = torch.randn(3, D, generator=_g(3))
    q = orthonormal_basis(basis)
    tau = torch.tensor([0.5, -1.0, 2.0])
    out = edits.apply_ops(h, SubspaceCap(basis, [0], tau=tau).ops(0))
    z_in, z_out = h @ q.T, out @ q.T
    assert (z_out >= tau - 1e-5).all()
    inside = (z_in >= tau).all(-1)
    assert inside.any() and (~inside).any()
    assert torch.equal(out[inside], h[inside])  # positions already inside are untouched, bit for bit
    torch.testing.assert_close(z_out, torch.maximum(z_in, tau), atol=1e-5, rtol=0)  # moved onto the floor only
    torch.testing.assert_close(out - z_out @ q, h - z_in @ q, atol=1e-4, rtol=0)  # complement unchanged


def test_ball_pulls_outside_points_to_the_sphere(h):
    basis = torch.randn(4, D, generator=_g(4))
    q = orthonormal_basis(basis)
    centre = torch.tensor([1.0, 0.0, -1.0, 0.5])
    dist = (h @ q.T - centre).norm(dim=-1)
    radius = float(dist.median())
    out = edits.apply_ops(h, SubspaceCap(basis, [0], radius=radius, centre=centre).ops(0))
    new = (out @ q.T - centre).norm(dim=-1)
    assert new.max() <= radius + 1e-4
    outside = dist > radius
    torch.testing.assert_close(new[outside], torch.full_like(new[outside], radius), atol=1e-4, rtol=0)
    assert torch.equal(out[~outside], h[~outside])
    # pulled straight back: the centred coordinates keep their direction
    torch.testing.assert_close(unit(out[outside] @ q.T - centre), unit(h[outside] @ q.T - centre), atol=1e-5, rtol=0)
    torch.testing.assert_close(out - (out @ q.T) @ q, h - (h @ q.T) @ q, atol=1e-4, rtol=0)


def test_validation_errors_name_the_fix():
    b = torch.randn(2, D)
    with pytest.raises(ValueError, match="exactly one region"):
        SubspaceCap(b, [0])
    with pytest.raises(ValueError, match="exactly one region"):
        SubspaceCap(b, [0], tau=[0.0, 0.0], radius=1.0)
    with pytest.raises(ValueError, match=r"tau must be \[k\] = \[2\]"):
        SubspaceCap(b, [0], tau=[0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        SubspaceCap(b, [0], radius=0.0)
    with pytest.raises(ValueError, match="centre= goes with radius="):
        SubspaceCap(b, [0], tau=[0.0, 0.0], centre=[0.0, 0.0])
    with pytest.raises(ValueError, match="hidden size is 16"):
        bind_interventions([SubspaceCap(b, [0], radius=1.0)], n_layers=4, d_model=16)


def test_subspace_cap_holds_at_every_token_of_a_model(tiny_model):
    conv = [{"role": "user", "content": "Tell me about the sea."},
            {"role": "assistant", "content": "The sea is wide, deep and full of life."}]
    layer = tiny_model.n_layers // 2
    base, _ = tiny_model.token_activations(conv, layers=[layer, layer + 1])
    basis = torch.randn(3, tiny_model.d_model, generator=_g(5))
    q = orthonormal_basis(basis)
    z = base[0] @ q.T
    tau = z.median(0).values
    radius = float((z - z.mean(0)).norm(dim=-1).median())
    for cap, inside in ((SubspaceCap(basis, [layer], tau=tau), lambda c: (c >= tau - 1e-4).all()),
                        (SubspaceCap(basis, [layer], radius=radius, centre=z.mean(0)),
                         lambda c: ((c - z.mean(0)).norm(dim=-1) <= radius + 1e-3).all())):
        after, _ = tiny_model.token_activations(conv, layers=[layer, layer + 1], interventions=[cap])
        assert not inside(z)  # some tokens were outside, so the cap had to act
        assert inside(after[0] @ q.T)  # every token inside after the cap
        assert (after[1] - base[1]).abs().max() > 1e-3  # and the change propagates


def test_k1_subspace_cap_equals_cap_in_generation(tiny_model):
    prompts = [[{"role": "user", "content": "Tell me about the sea."}], [{"role": "user", "content": "Hi"}]]
    v = torch.randn(tiny_model.d_model, generator=_g(6)) * 3
    cap = Cap(v, [1, 2], tau=[0.5, 1.0], mode="floor")
    sub = SubspaceCap(v, [1, 2], tau=[[0.5], [1.0]])
    assert tiny_model.generate(prompts, max_new_tokens=6, interventions=[cap]) == \
        tiny_model.generate(prompts, max_new_tokens=6, interventions=[sub])
    conv = prompts[0] + [{"role": "assistant", "content": "It is deep."}]
    a, _ = tiny_model.token_activations(conv, interventions=[cap])
    b, _ = tiny_model.token_activations(conv, interventions=[sub])
    assert torch.equal(a, b)
