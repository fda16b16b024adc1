"""Persona (trait) vectors: monitor the organism with a trait vector, and retrain it with preventative steering.

Reads a finished run folder (``persona-probe demo`` layout) and writes figures and numbers.json into
``<run>/analyses/persona_vectors/``. Everything resumes from its files. Example::

    python analyses/persona_vectors.py --run runs/demo
    python analyses/persona_vectors.py --run runs/demo --max-steps 60 --eval-n 20   # faster, recorded in numbers.json
"""

from persona_probe.analysis.cli import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main("persona_vectors", argv, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
