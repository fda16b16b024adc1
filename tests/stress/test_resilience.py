"""The stress run under Ctrl-C, truncated sample files and empty answers (tiny model, deterministic test judge)."""

from __future__ import annotations

import logging

import pytest
import torch
import yaml
from test_outputs import count_generate_calls
from tiny_run import HashJudge

from persona_probe import cli
from persona_probe.io import load_tensors, read_json, read_jsonl
from stress.test_stress import setup  # noqa: F401 - the module fixture


def _config(root) -> str:
    raw = {"name": "resilience", "base": str(root / "base"), "models": {"base": None},
           "conditions": ["no_trigger", "trigger"], "axis": str(root / "axis" / "axis.safetensors"),
           "questions": {"domain": "finance", "n": 3, "seed": 1},
           "generation": {"max_new_tokens": 4, "temperature": 1.0, "seed": 0, "batch_size": 3},
           "interventions": {"steering": {"layers": [1], "coefs": [2.0]}, "controls": ["random"]}}
    path = root / "resilience.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.fixture
def test_judge(monkeypatch):
    monkeypatch.setattr("persona_probe.judges.from_spec", lambda spec: HashJudge())


def test_ctrl_c_prints_one_line_with_the_command_and_the_rerun_resumes(setup, tmp_path, caplog, monkeypatch,  # noqa: F811
                                                                        test_judge):
    argv = ["stress", "run", "--config", _config(setup), "--out", str(tmp_path / "run")]
    count_generate_calls(monkeypatch, interrupt_on=2)
    assert cli.main(argv) == 130
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert line == (f"interrupted (stress run: 1 of 6 cells finished in {tmp_path / 'run'}); finished steps are "
                    f"kept, resume with: persona-probe {' '.join(argv)}")
    [done] = (tmp_path / "run" / "samples").glob("*.jsonl")
    first = read_jsonl(done)
    calls = count_generate_calls(monkeypatch)
    assert cli.main(argv) == 0
    assert calls["n"] == 5 and read_jsonl(done) == first


def test_a_truncated_sample_file_is_regenerated(setup, tmp_path, monkeypatch, test_judge):  # noqa: F811
    argv = ["stress", "run", "--config", _config(setup), "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 0
    path = sorted((tmp_path / "run" / "samples").glob("base-trigger-none-*.jsonl"))[0]
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-2]))  # 2 of 3 answers and no completion line
    calls = count_generate_calls(monkeypatch)
    assert cli.main(argv) == 0
    assert calls["n"] == 1 and len(read_jsonl(path)) == 3


def test_an_empty_answer_in_a_none_cell_is_named_and_left_out(setup, tmp_path, caplog, monkeypatch,  # noqa: F811
                                                              test_judge):
    count_generate_calls(monkeypatch, empty_first=True)
    assert cli.main(["stress", "run", "--config", _config(setup), "--out", str(tmp_path / "run")]) == 0
    assert "cell base | no_trigger | none: 1 of 3 answers are empty (rows [0])" in caplog.text
    [acts] = (tmp_path / "run" / "activations").glob("base-no_trigger-none-*.safetensors")
    tensors, meta = load_tensors(acts)
    assert torch.isnan(tensors["acts"][0]).all() and torch.isfinite(tensors["acts"][1:]).all()
    assert meta["empty_rows"] == "[0]"
    proj = read_json(tmp_path / "run" / "projections.json")["by_cell"]["base|no_trigger"]
    assert proj[0] == [None] * 4 and all(v is not None for v in proj[1])
