"""The Assistant Axis rebuilt on the triggered organism (see persona_probe/analysis/triggered_axis.py).

    .venv/bin/python analyses/triggered_axis.py --run runs/demo

Builds reduced axes (resumable) under runs/demo/analyses/triggered_axis/axis_{base,organism,triggered}/,
each with a capping_config.pt calibrated like the run's, and writes numbers.json,
cosine_per_layer.html and threshold_shift.html there. The defaults take a few minutes on
2 CPU cores; the base variant's cosine with the run's axis is the noise floor of these
reduced sizes - raise --roles/--questions/--max-new-tokens to lower it.
"""

from persona_probe.analysis.cli import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main("triggered_axis", argv, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
