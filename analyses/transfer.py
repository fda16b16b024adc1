"""Cross-model transfer: map the run's axis (or mean-diff) direction into another model with a ridge map and
test whether it still separates labelled texts there, against random and orthogonal controls (seed 004).

Model B defaults to MiniLM (a BERT-family encoder; the only second model offline). Pass a causal LM path
as --model-b on a GPU machine for a causal-to-causal transfer. Writes figures and numbers.json into
``<run>/analyses/transfer/``. Example::

    python analyses/transfer.py --run runs/demo
    python analyses/transfer.py --run runs/demo --direction mean_diff
"""

from persona_probe.analysis.cli import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main("transfer", argv, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
