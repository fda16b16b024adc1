"""Capping configs written from numpy values load with weights_only=True; code-running pickles are still refused."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from persona_probe.capping import experiment_interventions, load_capping_config
from persona_probe.io import load_pt, numpy_safe_globals


def _config(cap, layer) -> dict:
    g = torch.Generator().manual_seed(0)
    return {"vectors": {f"v{i}": {"layer": layer(i), "vector": torch.randn(8, generator=g)} for i in (3, 4)},
            "experiments": [{"id": "layers_3:5-p0.25", "interventions": [
                {"vector": "v3", "cap": cap(-1.25)}, {"vector": "v4", "cap": cap(2.5)}]}]}


def test_numpy_scalar_caps_and_layers_give_the_same_caps_as_the_plain_form(tmp_path):
    plain, numpy = tmp_path / "plain.pt", tmp_path / "numpy.pt"
    torch.save(_config(lambda c: torch.tensor(c), lambda i: i), plain)
    torch.save(_config(np.float64, np.int64), numpy)
    assert "numpy._core.multiarray.scalar" in torch.serialization.get_unsafe_globals_in_checkpoint(numpy)
    with pytest.raises(Exception, match="Unsupported global"):
        torch.load(numpy, weights_only=True)  # what plain weights_only=True does with it
    caps = {}
    for name, path in (("plain", plain), ("numpy", numpy)):
        cfg = load_capping_config(path, convention="ceiling")
        caps[name] = [(c.layers, c.tau, c.mode, c.vector) for c in experiment_interventions(cfg, "layers_3:5-p0.25")]
    assert [c[:3] for c in caps["numpy"]] == [c[:3] for c in caps["plain"]] == [((3,), (-1.25,), "ceiling"),
                                                                               ((4,), (2.5,), "ceiling")]
    assert all(torch.equal(a[3], b[3]) for a, b in zip(caps["numpy"], caps["plain"]))


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo unpickled > /dev/null",))


def test_a_pickle_that_would_run_code_is_refused_without_torchs_advice(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"vectors": {}, "experiments": [], "x": _RunsCode()}, evil)
    with pytest.raises(ValueError) as exc:
        load_capping_config(evil)
    msg = str(exc.value)
    assert "it would call posix.system" in msg and "never unpickles arbitrary objects" in msg
    assert "weights_only=False" not in msg and "trusted source" not in msg
    arrays = tmp_path / "array.pt"  # a numpy array is not a scalar: not on the list either
    torch.save({"x": np.ones(3)}, arrays)
    with pytest.raises(ValueError, match="never unpickles"):
        load_pt(arrays)


def test_the_allow_list_is_only_numpy_scalars_and_dtypes():
    names = {getattr(g[0] if isinstance(g, tuple) else g, "__name__", "") for g in numpy_safe_globals()}
    assert names <= {"scalar", "dtype"} | {n for n in dir(np.dtypes) if n.endswith("DType")}
    assert "_reconstruct" not in names and "ndarray" not in names
