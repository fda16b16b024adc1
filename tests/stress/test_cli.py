"""``persona-probe stress run``, its old spelling ``stress-test``, and the shipped example config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from persona_probe import cli
from persona_probe.axis import save_axis
from persona_probe.stress import expand, load_stress_config

EXAMPLE = Path(__file__).resolve().parents[2] / "persona_probe" / "stress_configs" / "example.yaml"


@pytest.fixture
def config(tmp_path):
    g = torch.Generator().manual_seed(0)
    save_axis(tmp_path / "axis.safetensors", torch.randn(30, 576, generator=g))  # the embedded model's shape
    raw = {"name": "tiny", "base": "embedded", "models": {"base": None}, "axis": "axis.safetensors",
           "questions": {"domain": "finance", "n": 2}, "judge": "offline",
           "interventions": {"steering": {"layers": [1, 2], "coefs": [1.0]}, "controls": ["random"]}}
    path = tmp_path / "stress.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_old_spelling_runs_and_names_the_new_one(config, capsys, caplog):
    assert cli.main(["stress", "run", "--config", str(config), "--dry-run"]) == 0
    new = capsys.readouterr().out
    assert "deprecated" not in caplog.text
    assert cli.main(["stress-test", "--config", str(config), "--dry-run"]) == 0
    assert capsys.readouterr().out == new and "9 cells, 18 answers" in new and "| none  (n=2)" in new
    assert "`persona-probe stress-test` is deprecated" in caplog.text and "`persona-probe stress run`" in caplog.text


def test_the_shipped_example_parses_and_expands():
    cfg = load_stress_config(EXAMPLE)
    assert cfg.judge == {"backend": "offline"} and cfg.name == "example"
    assert set(cfg.models) == {"base", "organism", "control"} and cfg.capping and cfg.steering
    assert cfg.axis.name == "axis.safetensors" and cfg.capping_config.name == "capping_config.pt"
    cells = expand(cfg)
    assert len({c.label for c in cells}) == len(cells) > 40
    assert {c.spec.control for c in cells} == {"", "random", "orthogonal"}


def test_judge_spellings_in_a_config_give_the_same_config(config):
    raw = yaml.safe_load(config.read_text())
    as_string = load_stress_config(raw, root=config.parent)
    as_dict = load_stress_config({**raw, "judge": {"backend": "offline"}}, root=config.parent)
    omitted = load_stress_config({k: v for k, v in raw.items() if k != "judge"}, root=config.parent)
    assert as_string.judge == as_dict.judge == omitted.judge == {"backend": "offline"}
    assert as_string.key() == as_dict.key() == omitted.key()
    for bad, why in (("none", "needs a judge"), ("gpt-4o", "unknown judge")):
        with pytest.raises(ValueError, match=why):
            load_stress_config({**raw, "judge": bad}, root=config.parent)
