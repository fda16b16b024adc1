"""The run-folder reader the analyses share, on a complete tiny run."""

import pytest

from persona_probe.analysis.rundir import RunFolder


def test_run_folder_reads_every_part(tiny_run):
    run = RunFolder(tiny_run)
    assert run.axis().shape == (4, 64)
    assert len(run.role_vectors().vectors) >= 2
    assert run.default_activations().shape[1:] == (4, 64)
    assert "layers_0:2-p0.25" in [e["id"] for e in run.capping_config()["experiments"]]
    acts = run.activations("organism", "trigger")
    assert acts.shape == (6, 4, 64)
    assert len(run.samples("organism", "trigger")) == 6
    assert run.mean_diff() is not None and run.mean_diff().shape == (4, 64)
    assert run.trigger().text
    model = run.load_model("organism")
    assert model.adapter and model.n_layers == 4
    with pytest.raises(KeyError, match="no cell"):
        run.cell("organism", "trigger", "cap nowhere")
    with pytest.raises(FileNotFoundError, match="persona-probe demo"):
        RunFolder(tiny_run / "stress")
