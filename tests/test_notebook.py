"""examples/tracing_session.ipynb runs top to bottom on the embedded model (any cell's error fails the test).

The notebook is stored without outputs; this executes a copy in a fresh kernel with nbclient.
Its own cells assert the numbers (the cap holds at every token, the ablation leaves no component,
the hand-written capped generation equals ``model.generate``, ``remote="local"`` matches).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "tracing_session.ipynb"


def _need(*modules: str) -> None:
    """The notebook test is never skipped: a missing runner is an error that says how to install it."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(f"the notebook test needs {', '.join(missing)}: pip install -e '.[dev]' (make test installs it)")


def test_notebook_is_stored_without_outputs():
    _need("nbformat")
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 7 and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
@pytest.mark.embedded
def test_tracing_session_notebook_runs(monkeypatch):
    _need("nbformat", "nbclient", "ipykernel")
    import nbformat
    from nbclient import NotebookClient

    # the kernel imports this checkout's package and stays offline, whatever the caller's environment
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "remote='local' matches the local trace" in text and "capped, by hand:" in text
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs)  # the inline figure
