"""Step files carry a completion line, so a truncated one is detected and redone, never used.

Files written before step files had the line are still accepted when their
record count is what the step expects, and redone otherwise.
"""

from __future__ import annotations

import json

import pytest
from axis.test_pipeline import DEFAULTS, KW, QUESTIONS, ROLES, llama  # noqa: F401 - the module fixture

from persona_probe.axis.pipeline import build_axis
from persona_probe.io import IncompleteStep, cached, read_jsonl, read_step_jsonl, write_step_jsonl


def _drop_last_lines(path, k: int) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-k]))


def test_a_step_file_counts_its_records(tmp_path):
    path = write_step_jsonl(tmp_path / "s.jsonl", [{"a": 1}, {"a": 2}])
    assert json.loads(path.read_text().splitlines()[-1]) == {"_complete_records": 2}
    assert read_step_jsonl(path, expected=2) == [{"a": 1}, {"a": 2}] == read_jsonl(path)
    _drop_last_lines(path, 2)  # truncated at a line boundary: one record and the completion line lost
    with pytest.raises(IncompleteStep, match="no completion line and 1 records"):
        read_step_jsonl(path, expected=2)
    old = tmp_path / "old.jsonl"  # written before the completion line existed
    old.write_text('{"a": 1}\n{"a": 2}\n')
    assert read_step_jsonl(old, expected=2) == [{"a": 1}, {"a": 2}]
    with pytest.raises(IncompleteStep, match=r"\(expected 3\)"):
        read_step_jsonl(old, expected=3)
    lost_middle = write_step_jsonl(tmp_path / "m.jsonl", [{"a": 1}, {"a": 2}, {"a": 3}])
    lines = lost_middle.read_text().splitlines(keepends=True)
    lost_middle.write_text(lines[0] + "".join(lines[2:]))
    with pytest.raises(ValueError, match="truncated: 2 records, but its completion line says 3"):
        read_jsonl(lost_middle)


def test_cached_redoes_a_truncated_step(tmp_path, caplog):
    path = write_step_jsonl(tmp_path / "s.jsonl", [{"a": 1}, {"a": 2}])
    _drop_last_lines(path, 2)
    calls = []

    def compute():
        calls.append(1)
        return write_step_jsonl(path, [{"a": 1}, {"a": 2}])

    cached(path, None, compute, load=lambda p: read_step_jsonl(p, expected=2))
    assert calls == [1] and "redoing this step" in caplog.text
    assert read_step_jsonl(path, expected=2) == [{"a": 1}, {"a": 2}]


def test_a_truncated_axis_step_is_regenerated_not_used(llama, tmp_path):  # noqa: F811
    out = tmp_path / "axis"
    first = build_axis(llama, out, ROLES, QUESTIONS, DEFAULTS, figures=False, **KW)
    [gen] = (out / "steps").glob("generate-pirate-*.jsonl")
    _drop_last_lines(gen, 2)  # the role keeps 3 of its 4 responses, and no completion line
    again = build_axis(llama, out, ROLES, QUESTIONS, DEFAULTS, figures=False, **KW)
    assert again.manifest["chunks_generated_this_run"] == 1
    assert again.manifest["responses_per_role"] == first.manifest["responses_per_role"]
    assert again.manifest["responses_per_role"]["pirate"] == 2 * len(QUESTIONS)
    assert len(read_step_jsonl(gen, expected=4)) == 4
