"""SubspaceCap: the basis, the two regions, k = 1 equals Cap bit for bit, calibration and config storage."""

import pytest
import torch

from persona_probe import Cap, SubspaceCap, edits
from persona_probe import capping as cp
from persona_probe.capping import subspace as sc
from persona_probe.interventions import bind_interventions, orthonormal_basis
from persona_probe.io import load_pt
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


def _acts_and_axis(n=50, L=6, d=D):
    g = _g(7)
    return torch.randn(n, L, d, generator=g) + 2.0, torch.randn(L, d, generator=g)


def test_calibration_regions_bind_on_the_stated_fraction():
    acts, _ = _acts_and_axis()
    bases = {layer: torch.randn(3, D, generator=_g(10 + layer)) for layer in range(6)}
    for region in sc.REGIONS:
        sub = sc.calibrate_subspaces(acts, bases, percentiles=[0.25], width=2, stride=2, region=region)
        assert [e["id"] for e in sub["subspace_experiments"]] == [
            "subspace_k3_layers_0:2-p0.25", "subspace_k3_layers_2:4-p0.25", "subspace_k3_layers_4:6-p0.25"]
        cfg = sc.add_subspace_experiments({"vectors": {}, "experiments": []}, sub)
        for cap in sc.subspace_experiment_interventions(cfg, "subspace_k3_layers_2:4-p0.25"):
            (layer,) = cap.layers
            z = acts[:, layer] @ cap.basis_at(layer).T
            if region == "floors":
                frac = (z < torch.stack(cap.tau)[0]).float().mean(0)  # each floor binds on q of the rollouts
                assert ((frac - 0.25).abs() <= 1 / len(acts) + 1e-6).all()
            else:
                torch.testing.assert_close(cap.centre[0], z.mean(0), atol=1e-5, rtol=0)
                frac = float(((z - cap.centre[0]).norm(dim=-1) > cap.radius[0]).float().mean())
                assert abs(frac - 0.25) <= 1 / len(acts) + 1e-6


def test_k1_calibrated_on_the_axis_matches_the_single_axis_floor():
    acts, axis = _acts_and_axis()
    single = cp.calibrate(torch.einsum("nld,ld->nl", acts, unit(axis)), axis, percentiles=[0.25], width=2, stride=2)
    sub = sc.calibrate_subspaces(acts, {layer: axis[layer][None] for layer in range(6)}, percentiles=[0.25],
                                 width=2, stride=2, region="floors")
    caps = cp.experiment_interventions(single, "layers_2:4-p0.25")
    both = sc.add_subspace_experiments(single, sub)
    subs = sc.subspace_experiment_interventions(both, "subspace_k1_layers_2:4-p0.25")
    h = acts[:, 2:4]
    for i, (c, s) in enumerate(zip(caps, subs)):
        layer = c.layers[0]
        assert abs(c.as_floor().tau[0] - float(s.tau[0][0])) < 1e-4  # same threshold, other projection arithmetic
        torch.testing.assert_close(edits.apply_ops(h[:, i], c.ops(layer)), edits.apply_ops(h[:, i], s.ops(layer)),
                                   atol=1e-4, rtol=0)


def test_config_keeps_single_axis_entries_and_loads_weights_only(tmp_path):
    acts, axis = _acts_and_axis()
    role_vectors = {f"r{i}": torch.randn(6, D, generator=_g(20 + i)) for i in range(5)}
    single = cp.calibrate(torch.einsum("nld,ld->nl", acts, unit(axis)), axis, percentiles=[0.25, 0.5], width=2,
                          stride=2)
    bases = {layer: sc.pca_directions(role_vectors, axis, layer, 3) for layer in range(6)}
    for layer, b in bases.items():
        assert (b @ axis[layer] >= 0).all()  # every component oriented toward the Assistant
    cfg = sc.add_subspace_experiments(single, sc.calibrate_subspaces(acts, bases, percentiles=[0.25], width=2,
                                                                    stride=2, region="ball", directions="pca"))
    cp.save_capping_config(tmp_path / "c.pt", cfg)
    raw = load_pt(tmp_path / "c.pt")  # torch.load(weights_only=True)
    loaded = cp.load_capping_config(tmp_path / "c.pt")
    assert cp.list_experiments(loaded) == cp.list_experiments(single)  # single-axis readers see only their own
    assert [(e["id"], [iv["cap"] for iv in e["interventions"]]) for e in raw["experiments"]] == \
        [(e["id"], [iv["cap"] for iv in e["interventions"]]) for e in single["experiments"]]  # unchanged
    assert set(raw) >= {"subspaces", "subspace_experiments", "subspace_calibration"}
    assert sc.list_subspace_experiments(loaded) == [f"subspace_k3_layers_{s}:{s + 2}-p0.25" for s in (0, 2, 4)]
    with pytest.raises(ValueError, match="is a subspace experiment"):
        cp.experiment_interventions(loaded, "subspace_k3_layers_0:2-p0.25")
    with pytest.raises(ValueError, match="close matches"):
        sc.subspace_experiment_interventions(loaded, "subspace_k3_layers_0:2-p0.3")
    names, dirs = sc.persona_directions(role_vectors, acts.mean(0), 2, 2)[::-1]
    assert len(names) == 2 and dirs.shape == (2, D)
    with pytest.raises(ValueError, match="malformed subspace experiment id"):
        sc.parse_subspace_id("subspace_layers_0:2-p0.25")
    bad = dict(loaded, subspace_experiments=[dict(loaded["subspace_experiments"][0], region="cube")])
    with pytest.raises(ValueError, match="region 'cube'"):
        sc.validate_subspaces(bad)


def test_cli_calibrate_writes_subspace_experiments(tmp_path, capsys, tiny_tokenizers):
    from conftest import make_tiny_hf

    from persona_probe.axis import RoleVectors, save_axis, save_role_vectors
    from persona_probe.cli import main
    from persona_probe.io import save_tensors

    tok = tiny_tokenizers["llama"]
    make_tiny_hf("llama", len(tok), tok.eos_token_id).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    g = _g(30)
    save_axis(tmp_path / "axis" / "axis.safetensors", torch.randn(4, 64, generator=g))
    save_tensors(tmp_path / "axis" / "default_activations.safetensors", {"acts": torch.randn(30, 4, 64, generator=g)})
    save_role_vectors(tmp_path / "axis" / "role_vectors.safetensors",
                      RoleVectors({f"r{i}": torch.randn(4, 64, generator=g) for i in range(4)}, {}, {}, False))
    out = tmp_path / "axis" / "capping_config.pt"
    assert main(["capping", "calibrate", "--axis", str(tmp_path / "axis" / "axis.safetensors"), "--model",
                 str(tmp_path / "m"), "--out", str(out), "--percentiles", "0.25", "--width", "2",
                 "--subspace-k", "2", "3", "--subspace-directions", "personas"]) == 0
    cfg = cp.load_capping_config(out)
    assert sc.list_subspace_experiments(cfg) == [f"subspace_k{k}_layers_{s}:{s + 2}-p0.25" for k in (2, 3)
                                                 for s in (0, 2)]
    assert cfg["subspaces"]["subspace_k2_layer_1"]["directions"] == "personas"
    capsys.readouterr()
    assert main(["capping", "list", str(out)]) == 0
    assert "subspace_k3_layers_2:4-p0.25\tball\t2 layers" in capsys.readouterr().out
