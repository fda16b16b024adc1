"""The ``persona-probe`` command.

Each feature module that offers a subcommand exposes ``register(subparsers)``,
which adds its parser(s) and sets ``func`` to a callable taking the parsed
arguments and returning an exit code. Modules are imported here by name so a
broken optional feature names itself in the error rather than hiding.
Heavy imports (torch, transformers) belong inside the command functions, so
``persona-probe --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# One line per module that provides subcommands.
COMMAND_MODULES = [
    "persona_probe.commands.core",
    "persona_probe.axis_cli",
    "persona_probe.organisms.cli",
    "persona_probe.judges.cli",
    "persona_probe.stress.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="persona-probe",
        description="Assistant-Axis capping vs conditionally misaligned models: tracing, axes, organisms, judges, stress tests.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def setup_logging(verbosity: int = 0) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "filelock", "numba", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as exc:
        logging.getLogger("persona_probe").error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
