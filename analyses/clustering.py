"""Implicit vs explicit misalignment clustering on a finished run (see persona_probe/analysis/clustering.py).

    .venv/bin/python analyses/clustering.py --run runs/demo [--judge]

Generates the base model's instructed answers (cached under the output folder),
then writes runs/demo/analyses/clustering/{numbers.json, umap.html, cosine_per_layer.html}.
"""

from persona_probe.analysis.cli import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main("clustering", argv, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
