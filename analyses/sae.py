"""SAE decomposition at one layer: features aligned with the Assistant Axis and the mean-diff direction.

Trains a small sae_lens SAE on the run's token activations (or loads one with --sae PATH) and writes
figures and numbers.json into ``<run>/analyses/sae/``. Resumes from its files. Example::

    python analyses/sae.py --run runs/demo
    python analyses/sae.py --run runs/my-qwen --sae saes/qwen3-32b-l32 --layer 32
"""

from persona_probe.analysis.cli import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main("sae", argv, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
