"""Output problems surface before the work, long commands write as they go, Ctrl-C says how to resume.

Commands run through ``cli.main`` on a tiny random Llama saved to a folder, so
each case checks the exit code, the message (which names the path or the
command to run) and that finished work is intact.
"""

from __future__ import annotations

import errno
import logging
import os

import pytest
import yaml
from conftest import make_tiny_hf

from persona_probe import cli
from persona_probe.io import read_jsonl, write_jsonl
from persona_probe.model import ProbeModel

PROMPTS = [[{"role": "user", "content": f"Question number {i}?"}] for i in range(6)]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tiny_tokenizers):
    root = tmp_path_factory.mktemp("tiny_model")
    tok = tiny_tokenizers["llama"]
    make_tiny_hf("llama", len(tok), tok.eos_token_id).save_pretrained(root)
    tok.save_pretrained(root)
    return root


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.jsonl"
    write_jsonl(path, [{"messages": p} for p in PROMPTS])
    return path


def _generate(tiny_dir, prompts, out, *extra) -> list[str]:
    return ["generate", "--model", str(tiny_dir), "--in", str(prompts), "--out", str(out), "--batch-size", "2",
            "--max-new-tokens", "5", "--temperature", "1.0", *extra]


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def count_generate_calls(monkeypatch, *, interrupt_on: int | None = None, empty_first: bool = False) -> dict:
    """Count ``ProbeModel.generate`` calls; Ctrl-C on call ``interrupt_on``; ``empty_first``: answer 0 is empty."""
    calls = {"n": 0}
    real = ProbeModel.generate

    def counted(self, convs, **kw):
        calls["n"] += 1
        if calls["n"] == interrupt_on:
            raise KeyboardInterrupt
        texts = real(self, convs, **kw)
        return ([""] + texts[1:]) if empty_first else texts

    monkeypatch.setattr(ProbeModel, "generate", counted)
    return calls


def test_generate_saves_each_batch_and_resumes_after_ctrl_c(tiny_dir, prompts, tmp_path, caplog, monkeypatch):
    whole = tmp_path / "whole.jsonl"
    assert cli.main(_generate(tiny_dir, prompts, whole)) == 0

    out = tmp_path / "answers.jsonl"
    calls = count_generate_calls(monkeypatch, interrupt_on=2)
    argv = _generate(tiny_dir, prompts, out)
    assert cli.main(argv) == 130
    [line] = _errors(caplog)
    assert "interrupted (generate: 2 of 6 answers saved in" in line
    assert line.endswith("finished steps are kept, resume with: persona-probe " + " ".join(argv))
    assert not out.exists()
    [partial] = tmp_path.glob(".answers.jsonl.partial-*.jsonl")
    assert len(read_jsonl(partial)) == 2

    calls = count_generate_calls(monkeypatch)
    assert cli.main(argv) == 0
    assert calls["n"] == 2, "only the two unfinished batches were generated"
    assert [r["messages"] for r in read_jsonl(out)] == [r["messages"] for r in read_jsonl(whole)]
    assert not partial.exists()


def test_generate_refuses_a_conversation_that_already_ends_with_an_answer(tiny_dir, tmp_path, caplog, monkeypatch):
    path = tmp_path / "done.jsonl"
    write_jsonl(path, [{"messages": PROMPTS[0] + [{"role": "assistant", "content": "Done."}]}])
    monkeypatch.setattr("persona_probe.loading.load_model", lambda *a, **k: pytest.fail("model loaded"))
    assert cli.main(["generate", "--model", str(tiny_dir), "--in", str(path), "--out", str(tmp_path / "o")]) == 1
    assert "record 1: conversation already ends with an assistant turn" in caplog.text
    assert "drop the last answer to regenerate it" in caplog.text


def _unwritable_cases(tiny_dir, prompts, tmp_path, blocked):
    import torch

    from persona_probe.axis import save_axis

    axis = tmp_path / "axis.safetensors"
    save_axis(axis, torch.randn(4, 64))
    config = tmp_path / "stress.yaml"
    config.write_text(yaml.safe_dump({"base": str(tiny_dir), "models": {"base": None}, "axis": str(axis),
                                      "questions": {"domain": "finance", "n": 2}}))
    return {
        "generate": (_generate(tiny_dir, prompts, blocked / "a.jsonl"), "--out"),
        "extract": (["extract", "--model", str(tiny_dir), "--in", str(prompts), "--out", str(blocked / "a.st")],
                    "--out"),
        "stress run": (["stress", "run", "--config", str(config), "--out", str(blocked / "run")],
                       "stress run --out"),
        "axis build": (["axis", "build", "--model", str(tiny_dir), "--out", str(blocked / "axis"), "--roles", "2"],
                       "axis build --out"),
        "capping calibrate": (["capping", "calibrate", "--axis", str(axis), "--model", str(tiny_dir),
                               "--out", str(blocked / "c.pt")], "capping calibrate --out"),
        "organism train": (["organism", "train", "--recipe", "embedded", "--out", str(blocked / "org")],
                           "organism train --out"),
    }


@pytest.mark.parametrize("command", ["generate", "extract", "stress run", "axis build", "capping calibrate",
                                     "organism train"])
def test_an_unwritable_output_fails_before_any_model_loads(command, tiny_dir, prompts, tmp_path, caplog,
                                                           monkeypatch):
    blocked = tmp_path / "a_file"
    blocked.write_text("a file where a folder is needed")  # root ignores permissions; a file path cannot be a dir
    argv, what = _unwritable_cases(tiny_dir, prompts, tmp_path, blocked)[command]
    monkeypatch.setattr("persona_probe.loading.load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    assert cli.main(argv) == 1
    [line] = _errors(caplog)
    assert line.startswith(f"{what} {blocked}") and "is not writable" in line and "choose another location" in line


def test_a_full_disk_is_refused_before_compute(tiny_dir, prompts, tmp_path, caplog, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 1 << 20))
    monkeypatch.setattr("persona_probe.loading.load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    assert cli.main(_generate(tiny_dir, prompts, tmp_path / "a.jsonl")) == 1
    assert "only 1 MiB free on its disk" in caplog.text and "free some space" in caplog.text


def test_a_disk_that_fills_up_while_writing_names_the_file_and_keeps_the_work(tiny_dir, prompts, tmp_path, caplog,
                                                                             monkeypatch):
    out = tmp_path / "answers.jsonl"
    real_fsync = os.fsync

    def full(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if name.startswith(str(tmp_path / ".answers.jsonl.")) and name.endswith(".tmp"):  # the final file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    assert cli.main(_generate(tiny_dir, prompts, out)) == 1
    [line] = _errors(caplog)
    assert line.startswith(f"cannot write {out}: No space left on device (free some space")
    assert "re-run the same command to resume" in line and not out.exists()
    monkeypatch.setattr(os, "fsync", real_fsync)
    calls = count_generate_calls(monkeypatch)
    assert cli.main(_generate(tiny_dir, prompts, out)) == 0
    assert calls["n"] == 0, "the answers saved before the disk filled up were reused"
    assert len(read_jsonl(out)) == len(PROMPTS)


def test_capping_calibrate_keeps_finished_rollout_chunks_across_ctrl_c(tiny_dir, tmp_path, caplog, monkeypatch):
    import torch

    from persona_probe.axis import save_axis
    from persona_probe.capping import cli as capping_cli
    from persona_probe.capping import load_capping_config

    axis = tmp_path / "axis.safetensors"
    save_axis(axis, torch.randn(4, 64, generator=torch.Generator().manual_seed(0)))
    rollouts = tmp_path / "rollouts.jsonl"
    write_jsonl(rollouts, [{"messages": p + [{"role": "assistant", "content": f"Answer {i}, fairly long."}]}
                           for i, p in enumerate(PROMPTS)])
    monkeypatch.setattr(capping_cli, "ROLLOUT_CHUNK", 2)
    calls = {"n": 0}
    real = ProbeModel.response_activations

    def counted(self, convs, **kw):
        calls["n"] += 1
        if calls["n"] == interrupt["on"]:
            raise KeyboardInterrupt
        return real(self, convs, **kw)

    interrupt = {"on": 3}
    monkeypatch.setattr(ProbeModel, "response_activations", counted)
    out = tmp_path / "capping_config.pt"
    argv = ["capping", "calibrate", "--axis", str(axis), "--model", str(tiny_dir), "--rollouts", str(rollouts),
            "--out", str(out), "--width", "2", "--stride", "2"]
    assert cli.main(argv) == 130
    assert "capping calibrate: activations of 4 of 6 rollouts in" in caplog.text and not out.exists()
    assert len(list(tmp_path.glob(".capping_config.pt.steps/acts-*.safetensors"))) == 2
    calls["n"], interrupt["on"] = 0, None
    assert cli.main(argv) == 0
    assert calls["n"] == 1, "only the unfinished chunk was computed"
    assert load_capping_config(out)["calibration"]["n_rollouts"] == len(PROMPTS)
    assert not (tmp_path / ".capping_config.pt.steps").exists()
