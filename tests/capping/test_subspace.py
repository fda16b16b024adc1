"""Subspace experiments in a capping config: calibration of the regions, storage beside the published keys, CLI."""

import pytest
import torch

from persona_probe import capping as cp
from persona_probe import edits
from persona_probe.capping import subspace as sc
from persona_probe.io import load_pt
from persona_probe.vectors import unit

D = 32


def _g(seed):
    return torch.Generator().manual_seed(seed)


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
