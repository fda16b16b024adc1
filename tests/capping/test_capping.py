"""Capping configs: published structure round-trip, errors, ids, calibration, sign convention."""

import logging

import pytest
import torch

from persona_probe import capping as cp
from persona_probe.edits import apply_ops
from persona_probe.interventions import Cap, bind_interventions


class FakeModel:
    n_layers = 8
    d_model = 6


def _published(d=6):
    g = torch.Generator().manual_seed(0)
    vectors = {f"v{i}": {"layer": i, "vector": torch.randn(d, generator=g)} for i in (2, 3, 4, 5)}
    return {"vectors": vectors, "experiments": [
        {"id": "layers_2:6-p0.25", "interventions": [{"vector": f"v{i}", "cap": -1.0 - i} for i in (2, 3, 4, 5)]},
        {"id": "layers_2:4-p0.5", "interventions": [{"vector": "v2", "cap": 0.5}, {"vector": "v3"}]},
    ]}


def test_published_structure_roundtrip(tmp_path, caplog):
    cfg = _published()
    path = tmp_path / "capping_config.pt"
    torch.save(cfg, path)  # a file as published: no convention key
    with caplog.at_level(logging.WARNING):
        loaded = cp.load_capping_config(path)
    assert "ASSUMING 'ceiling'" in caplog.text and loaded["convention"] == "ceiling"
    assert cp.list_experiments(loaded) == ["layers_2:6-p0.25", "layers_2:4-p0.5"]
    cp.save_capping_config(tmp_path / "again.pt", loaded)
    again = cp.load_capping_config(tmp_path / "again.pt")
    for eid in cp.list_experiments(cfg):
        a = cp.experiment_interventions(loaded, eid, FakeModel())
        b = cp.experiment_interventions(again, eid, FakeModel())
        assert [(c.layers, c.tau, c.mode) for c in a] == [(c.layers, c.tau, c.mode) for c in b]
        assert all(torch.equal(x.vector, y.vector) for x, y in zip(a, b))
    caps = cp.experiment_interventions(loaded, "layers_2:4-p0.5")
    assert len(caps) == 1 and caps[0].layers == (2,) and caps[0].tau == (0.5,)  # entry without cap skipped
    caps = cp.experiment_interventions(loaded, "layers_2:6-p0.25")
    assert [c.layers[0] for c in caps] == [2, 3, 4, 5] and caps[1].tau == (-4.0,) and caps[0].mode == "ceiling"
    # stating a convention for a file that has one must agree
    with pytest.raises(ValueError, match="convention"):
        cp.load_capping_config(tmp_path / "again.pt", convention="floor")
    floor = cp.load_capping_config(path, convention="floor")
    assert cp.experiment_interventions(floor, "layers_2:4-p0.5")[0].mode == "floor"


def test_errors_name_the_problem(tmp_path):
    cfg = cp.validate_config(_published())
    with pytest.raises(ValueError, match=r"unknown experiment id 'layers_2:6-p0.3'.*layers_2:6-p0.25"):
        cp.experiment_interventions(cfg, "layers_2:6-p0.3")
    wide = FakeModel()
    wide.d_model = 7
    with pytest.raises(ValueError, match="width 6.*hidden size is 7"):
        cp.experiment_interventions(cfg, "layers_2:6-p0.25", wide)
    short = FakeModel()
    short.n_layers = 4
    with pytest.raises(ValueError, match="layer 4 but the model has 4 layers"):
        cp.experiment_interventions(cfg, "layers_2:6-p0.25", short)
    bad = _published()
    bad["experiments"][0]["interventions"][0]["vector"] = "nope"
    with pytest.raises(ValueError, match="'nope', which is not in 'vectors'"):
        cp.validate_config(bad)
    with pytest.raises(ValueError, match="missing key 'experiments'"):
        cp.validate_config({"vectors": {}})
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="expected a dict"):
        cp.load_capping_config(tmp_path / "list.pt")


@pytest.mark.parametrize("eid,expected", [("layers_46:54-p0.25", (46, 54, 0.25)), ("layers_0:4-p0.01", (0, 4, 0.01)),
                                          ("layers_56:72-p0.5", (56, 72, 0.5)), ("layers_1:2-p1", (1, 2, 1.0))])
def test_parse_experiment_id(eid, expected):
    assert cp.parse_experiment_id(eid) == expected


@pytest.mark.parametrize("eid", ["layers_46-54-p0.25", "layers_54:46-p0.25", "layers_4:8-p25", "layer_4:8-p0.25",
                                 "layers_4:8-0.25", "", "layers_4:4-p0.5"])
def test_parse_experiment_id_rejects(eid):
    with pytest.raises(ValueError):
        cp.parse_experiment_id(eid)


def test_calibrate_exact_percentiles_and_windows(tmp_path):
    g = torch.Generator().manual_seed(1)
    proj = torch.randn(37, 12, generator=g) * 3 + 1
    axis = torch.randn(12, 5, generator=g)
    cfg = cp.calibrate(proj, axis, rollouts="default-prompt rollouts (test)")
    starts = [0, 2, 4, 6, 8]
    assert cp.list_experiments(cfg) == [f"layers_{s}:{s + 4}-p{q}" for s in starts
                                        for q in ("0.01", "0.25", "0.5", "0.75")]
    assert set(cfg["vectors"]) == {f"axis_layer_{i}" for i in range(12)}
    assert cfg["convention"] == "ceiling" and cfg["source"] == "persona-probe"
    assert cfg["calibration"]["rollouts"] == "default-prompt rollouts (test)"
    for exp in cfg["experiments"]:
        start, end, q = cp.parse_experiment_id(exp["id"])
        assert [cfg["vectors"][iv["vector"]]["layer"] for iv in exp["interventions"]] == list(range(start, end))
        for iv in exp["interventions"]:
            layer = cfg["vectors"][iv["vector"]]["layer"]
            assert iv["cap"] == pytest.approx(-float(torch.quantile(proj[:, layer], q)), abs=1e-6)
            assert torch.equal(cfg["vectors"][iv["vector"]]["vector"], -axis[layer])
    path = cp.save_capping_config(tmp_path / "ours.pt", cfg)
    back = cp.load_capping_config(path)
    assert back["calibration"]["percentiles"] == [0.01, 0.25, 0.5, 0.75]
    assert cp.windows(range(3, 10), 4, 2) == [(3, 7), (5, 9)]
    with pytest.raises(ValueError, match="fractions"):
        cp.calibrate(proj, axis, percentiles=(25,))


def test_published_ceiling_form_equals_floor_on_axis(tmp_path):
    """Stored -axis with cap -tau under the reference ceiling == a floor at tau on the axis."""
    g = torch.Generator().manual_seed(2)
    L, d = 6, 8
    axis = torch.randn(L, d, generator=g)
    h = torch.randn(3, 10, L, d, generator=g) * 2
    proj = torch.einsum("btld,ld->btl", h, axis / axis.norm(dim=-1, keepdim=True)).reshape(-1, L)
    cfg = cp.calibrate(proj, axis, percentiles=(0.5,), width=4, stride=2)
    cp.save_capping_config(tmp_path / "c.pt", cfg)
    cfg = cp.load_capping_config(tmp_path / "c.pt")
    eid = "layers_2:6-p0.5"
    caps = cp.experiment_interventions(cfg, eid)
    ops_ceiling = bind_interventions(caps, n_layers=L, d_model=d)
    taus = [float(torch.quantile(proj[:, i], 0.5)) for i in range(2, 6)]
    floor = Cap(axis, list(range(2, 6)), tau=taus, mode="floor")
    ops_floor = bind_interventions([floor], n_layers=L, d_model=d)
    changed = False
    for layer in range(2, 6):
        a = apply_ops(h[:, :, layer], ops_ceiling[layer])
        b = apply_ops(h[:, :, layer], ops_floor[layer])
        assert torch.allclose(a, b, atol=1e-5)
        changed |= not torch.allclose(a, h[:, :, layer])
        after = a @ (axis[layer] / axis[layer].norm())
        assert (after >= taus[layer - 2] - 1e-4).all()
    assert changed
    # the same caps flipped are the floor form
    assert caps[0].flipped().mode == "floor" and caps[0].flipped().tau == pytest.approx((taus[0],))


def test_cli_capping_list(tmp_path, capsys):
    from persona_probe.cli import main

    cp.save_capping_config(tmp_path / "c.pt", cp.calibrate(torch.randn(9, 8), torch.randn(8, 6), rollouts="test"))
    assert main(["capping", "list", str(tmp_path / "c.pt")]) == 0
    out = capsys.readouterr().out
    assert "convention: ceiling" in out and "layers_4:8-p0.75" in out and "rollouts': 'test'" in out


@pytest.mark.embedded
def test_cli_calibrate_reads_the_default_rollouts_a_block_at_a_time(tmp_path, capsys):
    """`capping calibrate` on the axis build's default rows, read in blocks: the thresholds of the whole tensor."""
    from persona_probe import cli
    from persona_probe.axis import save_axis
    from persona_probe.io import save_tensors
    from persona_probe.vectors import project_layers

    g = torch.Generator().manual_seed(3)
    axis, acts = torch.randn(30, 576, generator=g), torch.randn(300, 30, 576, generator=g)  # 300 rows: 2 blocks
    save_axis(tmp_path / "axis.safetensors", axis)
    save_tensors(tmp_path / "default_activations.safetensors", {"acts": acts})
    assert cli.main(["capping", "calibrate", "--axis", str(tmp_path / "axis.safetensors"), "--model", "embedded",
                     "--out", str(tmp_path / "c.pt"), "--percentiles", "0.25", "0.75"]) == 0
    assert "calibrated on 300 default-prompt rollouts" in capsys.readouterr().out
    got = cp.load_capping_config(tmp_path / "c.pt")
    want = cp.calibrate(project_layers(acts, axis), axis, percentiles=[0.25, 0.75], rollouts="x")
    caps = lambda cfg: [iv["cap"] for e in cfg["experiments"] for iv in e["interventions"]]
    assert caps(got) == pytest.approx(caps(want), abs=1e-5) and len(caps(got)) > 0
