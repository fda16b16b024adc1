"""The edit math alone, on random tensors: each operator's defining property, with numbers."""

import pytest
import torch

from persona_probe import Ablate, Cap, Steer, edits
from persona_probe.interventions import bind_interventions
from persona_probe.vectors import orthogonal_like, project, project_layers, random_like, unit

D = 32


@pytest.fixture
def h():
    return torch.randn(3, 7, D, generator=torch.Generator().manual_seed(0)) * 5


@pytest.fixture
def u():
    return unit(torch.randn(D, generator=torch.Generator().manual_seed(1)))


def test_steer_adds_exactly(h, u):
    out = edits.apply_ops(h, [("steer", u, 2.5)])
    torch.testing.assert_close(out - h, (2.5 * u).expand_as(h))


def test_ablate_leaves_zero_component_and_keeps_the_rest(h, u):
    out = edits.apply_ops(h, [("ablate", u, 0.0)])
    assert (out @ u).abs().max() < 1e-5
    # the orthogonal part is untouched
    torch.testing.assert_close(out, h - (h @ u)[..., None] * u)


@pytest.mark.parametrize("tau", [-3.0, 0.0, 1.5])
def test_ceiling_bounds_every_position(h, u, tau):
    out = edits.apply_ops(h, [("ceiling", u, tau)])
    proj = out @ u
    assert proj.max() <= tau + 1e-5
    # positions already below the ceiling are unchanged
    below = (h @ u) <= tau
    torch.testing.assert_close(out[below], h[below])
    # positions above are moved exactly onto the ceiling
    assert torch.allclose(proj[~below], torch.full_like(proj[~below], tau), atol=1e-5)


@pytest.mark.parametrize("tau", [-3.0, 0.0, 1.5])
def test_floor_bounds_every_position(h, u, tau):
    out = edits.apply_ops(h, [("floor", u, tau)])
    proj = out @ u
    assert proj.min() >= tau - 1e-5
    above = (h @ u) >= tau
    torch.testing.assert_close(out[above], h[above])


def test_ops_apply_in_order(h, u):
    # steer far past the ceiling, then cap: the cap must win
    out = edits.apply_ops(h, [("steer", u, 100.0), ("ceiling", u, 0.5)])
    assert (out @ u).max() <= 0.5 + 1e-4


def test_math_is_float32_for_bf16_models(u):
    h = (torch.randn(2, 5, D) * 40).to(torch.bfloat16)
    out = edits.apply_ops(h, [("floor", u, 30.0)])
    assert out.dtype == torch.bfloat16
    # float32 math, then one rounding: the bound holds to bf16 resolution of the value
    assert (out.float() @ u).min() >= 30.0 - 0.5


def test_unknown_kind_is_rejected(h, u):
    with pytest.raises(ValueError, match="unknown edit kind"):
        edits.apply_ops(h, [("shrink", u, 1.0)])


def test_ceiling_and_floor_conventions_give_identical_edits(h):
    """A ceiling at tau on v is a floor at -tau on -v: same edited activations."""
    v = torch.randn(D, generator=torch.Generator().manual_seed(3))
    ceiling = Cap(v, [0], tau=0.7, mode="ceiling")
    floor = ceiling.flipped()
    assert floor.mode == "floor" and floor.tau == (-0.7,)
    a = edits.apply_ops(h, ceiling.ops(0))
    b = edits.apply_ops(h, floor.ops(0))
    torch.testing.assert_close(a, b)
    assert floor.as_ceiling().mode == "ceiling" and floor.as_floor() is floor


def test_per_layer_vectors_and_thresholds():
    axis = torch.randn(4, D)
    cap = Cap(axis, [1, 3], tau=[0.5, -0.5], mode="floor")
    ops = bind_interventions([cap, Steer(axis, [3], coef=2.0)], n_layers=4, d_model=D)
    assert list(ops) == [1, 3]
    kind, vec, tau = ops[3][0]
    assert kind == "floor" and tau == -0.5
    torch.testing.assert_close(vec, unit(axis[3]))
    assert ops[3][1][0] == "steer" and torch.equal(ops[3][1][1], axis[3])


@pytest.mark.parametrize("bad, message", [
    (torch.full((D,), float("nan")), "NaN"),
    (torch.zeros(D), "all zeros"),
    (torch.randn(2, 3, D), r"\[d\] or \[n_layers, d\]"),
])
def test_bad_vectors_fail_early(bad, message):
    with pytest.raises(ValueError, match=message):
        Steer(bad, [0])


def test_binding_checks_width_and_layers():
    with pytest.raises(ValueError, match="width 16 but the model's hidden size is 32"):
        bind_interventions([Ablate(torch.randn(16), [0])], n_layers=4, d_model=D)
    with pytest.raises(ValueError, match=r"layer 4 is out of range.*0\.\.3"):
        bind_interventions([Ablate(torch.randn(D), [4])], n_layers=4, d_model=D)
    with pytest.raises(ValueError, match="layer -1 is out of range"):
        bind_interventions([Ablate(torch.randn(D), [-1])], n_layers=4, d_model=D)
    with pytest.raises(ValueError, match="3 layer rows but the model has 4"):
        bind_interventions([Steer(torch.randn(3, D), [0])], n_layers=4, d_model=D)


def test_cap_validation():
    with pytest.raises(ValueError, match="2 layers but 3 thresholds"):
        Cap(torch.randn(D), [0, 1], tau=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="'ceiling' or 'floor'"):
        Cap(torch.randn(D), [0], tau=1.0, mode="clip")
    with pytest.raises(ValueError, match="finite"):
        Cap(torch.randn(D), [0], tau=float("nan"))
    with pytest.raises(ValueError, match="twice"):
        Cap(torch.randn(D), [1, 1], tau=0.0)


def test_project_on_unit_axis_and_layer_checks():
    axis = torch.randn(4, D)
    acts = torch.randn(5, 4, D)
    expected = acts[:, 2] @ (axis[2] / axis[2].norm())
    torch.testing.assert_close(project(acts, axis, 2), expected)
    torch.testing.assert_close(project(acts[:, 2], axis[2]), expected)
    with pytest.raises(ValueError, match="out of range"):
        project(acts, axis, 4)
    with pytest.raises(ValueError, match="pass layer="):
        project(acts[:, 2], axis)
    every = project_layers(acts, axis)  # [5, 4]: every layer at once, same numbers as project() per layer
    torch.testing.assert_close(every, torch.stack([project(acts, axis, i) for i in range(4)], dim=1))
    torch.testing.assert_close(project_layers(acts[None], axis)[0], every)
    with pytest.raises(ValueError, match="do not match the axis"):
        project_layers(acts[:, :3], axis)


def test_random_and_orthogonal_controls_match_norm():
    v = torch.randn(3, D) * torch.tensor([[1.0], [5.0], [0.1]])
    r = random_like(v, seed=0)
    o = orthogonal_like(v, seed=0)
    torch.testing.assert_close(r.norm(dim=-1), v.norm(dim=-1))
    torch.testing.assert_close(o.norm(dim=-1), v.norm(dim=-1))
    assert ((o * v).sum(-1) / (v.norm(dim=-1) * o.norm(dim=-1))).abs().max() < 1e-5
    assert not torch.allclose(random_like(v, seed=0), random_like(v, seed=1))


def test_lora_delta_is_peft_lora_and_ops_follow_the_activation_device(h):
    """``scale * B(A(x))`` (peft's ``lora_B(lora_A(x)) * scaling``) in float32; op vectors move to ``h``'s device."""
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(4, D, generator=g), torch.randn(48, 4, generator=g)
    lora_a, lora_b = torch.nn.Linear(D, 4, bias=False), torch.nn.Linear(4, 48, bias=False)
    lora_a.weight.data, lora_b.weight.data = a, b
    with torch.no_grad():
        torch.testing.assert_close(edits.lora_delta(h, a, b, 1.5), lora_b(lora_a(h)) * 1.5)
    bf16 = edits.lora_delta(h.bfloat16(), a.bfloat16(), b.bfloat16(), 1.5)
    assert bf16.dtype == torch.float32
    # vectors shipped on the CPU follow the activations to their device (a GPU on NDIF; meta here)
    assert edits.apply_ops(h.to("meta"), [("floor", unit(torch.ones(D)), 0.0)]).device.type == "meta"
