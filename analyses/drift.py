"""Trigger-conditioned drift trajectories on a finished run (see persona_probe/analysis/drift.py).

    .venv/bin/python analyses/drift.py --run runs/demo [--trigger-mode every]

Generates scripted multi-turn conversations with the organism (cached per turn
under the output folder) and writes runs/demo/analyses/drift/{numbers.json, <direction>_layer<L>.html}.
"""

from persona_probe.analysis.cli import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main("drift", argv, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
