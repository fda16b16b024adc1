"""Every script in analyses/ hands its options to its analysis's ``run()``: each option is a real parameter."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "analyses").glob("*.py"))


class _Bound(Exception):
    pass


def _call(path: Path, argv: list[str], monkeypatch) -> dict:
    module = importlib.import_module(f"persona_probe.analysis.{path.stem}")
    real, seen = module.run, {}

    def fake(*args, **kwargs):
        inspect.signature(real).bind(*args, **kwargs)  # TypeError on an option run() does not take
        seen.update(kwargs)
        raise _Bound

    monkeypatch.setattr(module, "run", fake)
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(_Bound):
        script.main(argv)
    return seen


def test_every_analysis_has_a_script():
    helpers = {"__init__", "common", "rundir", "cli", "tokens", "preventative"}  # modules that are not analyses
    names = {p.stem for p in (ROOT / "persona_probe" / "analysis").glob("*.py")} - helpers
    assert names == {p.stem for p in SCRIPTS}


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_options_bind_to_run(path, monkeypatch):
    kw = _call(path, ["--run", "somewhere", "--seed", "3", "--quiet"], monkeypatch)
    assert kw["run_folder"] == "somewhere" and kw["seed"] == 3 and kw["progress"] is False


def test_persona_vectors_reads_its_pairs_file(tmp_path, monkeypatch):
    pairs = tmp_path / "pairs.json"
    pairs.write_text('[["be bad", "be good"]]')
    kw = _call(ROOT / "analyses" / "persona_vectors.py",
               ["--max-steps", "3", "--no-train", "--pairs", str(pairs)], monkeypatch)
    assert kw["max_steps"] == 3 and kw["train"] is False and kw["pairs"] == [["be bad", "be good"]]
    assert kw["run_folder"] == "runs/demo" and kw["progress"] is True
