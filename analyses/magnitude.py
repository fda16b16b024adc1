"""Multi-persona magnitude scoring on a finished run (see persona_probe/analysis/magnitude.py).

    .venv/bin/python analyses/magnitude.py --run runs/demo

Writes runs/demo/analyses/magnitude/{numbers.json, magnitudes.html, nnls_weights.html, roc.html}.
Reads only the run's files (no generation): seconds.
"""

from persona_probe.analysis.cli import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main("magnitude", argv, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
