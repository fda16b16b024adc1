"""The command line: one verb grammar, every stage registered, old spellings still working for one release."""

from __future__ import annotations

import pytest

from persona_probe import cli

NEW_GRAMMAR = [
    ["info"], ["generate"], ["extract"], ["demo"],
    ["axis", "build"], ["capping", "calibrate"], ["capping", "list"],
    ["organism", "train"], ["organism", "eval"],
    ["judge", "score"], ["judge", "offline-eval"], ["judge", "metrics"],
    ["stress", "run"],
    *[["analysis", name] for name in ("magnitude", "clustering", "drift", "triggered_axis", "persona_vectors", "sae",
                                      "transfer")],
]


@pytest.mark.parametrize("argv", NEW_GRAMMAR, ids=" ".join)
def test_every_verb_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--help"])
    assert exc.value.code == 0
    assert f"persona-probe {' '.join(argv)}" in capsys.readouterr().out


@pytest.mark.parametrize("group", ["axis", "capping", "organism", "stress", "analysis"])
def test_a_group_without_its_verb_prints_its_help(group, capsys):
    assert cli.main([group]) == 2
    assert f"usage: persona-probe {group}" in capsys.readouterr().out


def test_top_level_help_lists_one_command_per_stage(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("axis", "capping", "organism", "judge", "stress", "analysis"):
        assert f"    {command} " in out
    assert "stress-test" not in out  # old spellings work but are not advertised


def test_stress_run_help_names_the_shipped_example(capsys):
    with pytest.raises(SystemExit):
        cli.main(["stress", "run", "--help"])
    assert "persona_probe/stress_configs/example.yaml" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["organism", "eval", "--out", "x", "--judge", "gpt4"],
                                  ["axis", "build", "--out", "x", "--judge", "offline:big"]])
def test_unknown_judge_fails_before_any_model_loads(argv, caplog, monkeypatch):
    import persona_probe.loading

    monkeypatch.setattr(persona_probe.loading, "load_model", lambda *a, **k: pytest.fail("loaded a model"))
    assert cli.main(argv) == 1
    assert "unknown judge" in caplog.text and "local[:model]" in caplog.text and "http[:<url>]" in caplog.text


@pytest.fixture
def keep_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_option_reaches_torch(monkeypatch, keep_threads):
    import torch

    seen = []
    monkeypatch.setattr(cli, "cmd_info", lambda args: seen.append(torch.get_num_threads()) or 0)
    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cli.main(["--threads", "1", "info"]) == 0
    assert cli.main(["info"]) == 0                     # default: the CPUs this process may use
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cli.main(["info"]) == 0                     # an explicit environment setting is kept
    assert cli.main(["--threads", "1", "info"]) == 0   # and --threads overrides it
    assert seen == [1, 3, 2, 1]
    assert cli.main(["--threads", "0", "info"]) == 1   # a clear error, not a silent default
