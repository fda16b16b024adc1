"""The shipped remote configs are valid stress-test configs, and the ndif: source fails early and clearly."""

from pathlib import Path

import pytest

from persona_probe import load_model
from persona_probe.capping import parse_experiment_id
from persona_probe.stress import expand, load_stress_config

CONFIGS = sorted((Path(__file__).parents[1] / "remote_configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_remote_config_parses_and_names_real_layers(path):
    cfg = load_stress_config(path)
    assert cfg.base.startswith("ndif:")
    assert cfg.models["base"] is None and {"organism", "control"} <= set(cfg.models)  # adapters run as edits
    for exp in cfg.capping:
        start, end, q = parse_experiment_id(exp)
        assert 0 <= start < end <= 80 and 0 < q < 1
    cells = expand(cfg)
    assert any(c.spec.control == "random" for c in cells)


def test_ndif_source_needs_the_key_before_any_request(monkeypatch):
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="NDIF_API_KEY"):
        load_model("ndif:meta-llama/Llama-3.3-70B-Instruct")
