"""Axis math and persona-space PCA on synthetic tensors with known answers."""

import pytest
import torch

from persona_probe import axis as ax
from persona_probe.axis.persona_space import layer_summary, role_pca, write_figures


def test_known_means_give_known_axis():
    L, d = 3, 4
    a = torch.ones(L, d) * 1.0
    b = torch.ones(L, d) * 3.0
    # role a: 3 responses all equal to 1; role b: 1 response equal to 3 -> equal weighting -> mean 2
    acts = torch.stack([a, a, a, b])
    rv = ax.compute_role_vectors(acts, ["a", "a", "a", "b"], None)
    assert rv.judged is False and rv.counts == {"a": 3, "b": 1}
    default = ax.default_vector(torch.stack([torch.full((L, d), 5.0), torch.full((L, d), 7.0)]))
    axis = ax.compute_axis(default, rv.vectors)
    assert torch.allclose(axis, torch.full((L, d), 6.0 - 2.0))  # not 6 - 1.5 (response-weighted)


def test_scores_filter_and_min_count_drop():
    acts = torch.arange(6, dtype=torch.float32).view(6, 1, 1).expand(6, 2, 2).contiguous()
    labels = ["a", "a", "a", "b", "b", "c"]
    scores = [3, 2, 2.9, 3, None, 1]
    rv = ax.compute_role_vectors(acts, labels, scores, min_count=2)
    assert rv.judged is True
    assert set(rv.vectors) == {"a"} and rv.counts == {"a": 2}
    assert rv.dropped == {"b": 1, "c": 0}
    assert torch.allclose(rv.vectors["a"], torch.full((2, 2), (0 + 2) / 2))
    with pytest.raises(ValueError, match="no role vectors"):
        ax.compute_axis(torch.zeros(2, 2), {})


def test_axis_files_roundtrip(tmp_path):
    axis = torch.randn(5, 8)
    ax.save_axis(tmp_path / "a.safetensors", axis, {"model": "m"})
    got, meta = ax.load_axis(tmp_path / "a.safetensors", return_metadata=True)
    assert torch.equal(got, axis) and meta["model"] == "m"
    ax.export_reference_axis(tmp_path / "assistant_axis.pt", axis)
    assert torch.equal(ax.load_axis(tmp_path / "assistant_axis.pt"), axis)
    torch.save({"axis": axis}, tmp_path / "dict.pt")
    assert torch.equal(ax.load_axis(tmp_path / "dict.pt"), axis)
    torch.save({"other": axis}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="'axis' key"):
        ax.load_axis(tmp_path / "bad.pt")
    rv = ax.compute_role_vectors(torch.randn(4, 5, 8), ["x", "x", "y", "z"], [3, 3, 3, 0], min_count=1)
    ax.save_role_vectors(tmp_path / "rv.safetensors", rv)
    back = ax.load_role_vectors(tmp_path / "rv.safetensors")
    assert set(back.vectors) == {"x", "y"} and back.dropped == {"z": 0} and back.judged
    assert torch.equal(back.vectors["x"], rv.vectors["x"])


def _planted(n_roles=12, L=3, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(L, d, generator=g)
    coef = torch.linspace(-5, 5, n_roles)
    roles = {f"r{i}": coef[i] * direction + 0.05 * torch.randn(L, d, generator=g) for i in range(n_roles)}
    axis = -2.0 * direction  # anti-parallel on purpose: PC1 must be flipped to align
    return roles, axis


def test_pca_pc1_along_planted_axis(tmp_path):
    roles, axis = _planted()
    r = role_pca(roles, 1, axis)
    assert r.cos_pc1_axis == pytest.approx(1.0, abs=1e-3)
    assert r.explained_ratio[0] > 0.95
    pc1 = torch.tensor(r.components[0], dtype=torch.float64)
    assert float(pc1 @ axis[1].double()) > 0  # sign-aligned
    summary = layer_summary(roles, axis)
    assert [s["layer"] for s in summary] == [0, 1, 2] and all(s["cos_pc1_axis"] > 0.999 for s in summary)
    rs = role_pca(roles, 1, axis, standardize=True)
    assert rs.cos_pc1_axis > 0.9
    paths = write_figures(tmp_path / "figs", roles, axis, 1, summary)
    assert len(paths) == 3 and all(p.stat().st_size > 100 for p in paths)
    assert (tmp_path / "figs" / "plotly.min.js").exists()
