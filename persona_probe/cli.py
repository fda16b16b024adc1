"""The ``persona-probe`` command: one verb grammar, one stage per folder.

Top-level commands here: ``info``, ``generate``, ``extract`` and ``demo`` (the
README's main job: every stage in order into one run folder, each resuming
from its own finished files). Each stage folder offers its subcommands in
``<stage>/cli.py`` through ``register(subparsers)``, which adds its parser(s)
and sets ``func`` to a callable taking the parsed arguments and returning an
exit code (a group without a chosen action sets ``help_parser`` instead):

    persona-probe axis build
    persona-probe capping calibrate | list
    persona-probe organism train | eval
    persona-probe judge score | offline-eval | metrics
    persona-probe stress run
    persona-probe analysis <name>

Old spellings (``stress-test``, ``judge`` without a verb) still work for one
release and log the new one. Stage modules are imported here by name so a
broken optional feature names itself in the error rather than hiding. Heavy
imports (torch, transformers) belong inside the command functions, so
``persona-probe --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

# One line per stage folder that provides subcommands.
COMMAND_MODULES = [
    "persona_probe.axis.cli",
    "persona_probe.capping.cli",
    "persona_probe.organisms.cli",
    "persona_probe.judges.cli",
    "persona_probe.stress.cli",
    "persona_probe.analysis.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="persona-probe",
        description="Assistant-Axis capping vs conditionally misaligned models: tracing, axes, organisms, judges, "
                    "stress tests.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _register_core(sub)
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
        (getattr(args, "help_parser", None) or parser).print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as exc:
        logging.getLogger("persona_probe").error("%s", exc)
        return 1


# ------------------------------------------------------------------ top-level commands
def _register_core(sub) -> None:
    p = sub.add_parser("info", help="load a model and print its layers, width and family")
    p.add_argument("--model", default="embedded")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("generate", help="answer user prompts from a JSONL file (one {'messages': [...]} per line)")
    p.add_argument("--model", default="embedded")
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("extract", help="mean response activations of conversations (JSONL) to safetensors")
    p.add_argument("--model", default="embedded")
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=int, default=8)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("demo", help="the main job on the embedded model, resumable (see README)")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--model", default="embedded")
    p.set_defaults(func=cmd_demo)


def cmd_info(args: argparse.Namespace) -> int:
    from persona_probe.loading import load_model

    model = load_model(args.model)
    for key, value in {**model.provenance(), "target_layer": model.target_layer,
                       "supports_system": model.family.supports_system}.items():
        print(f"{key}: {value}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from persona_probe.io import write_jsonl
    from persona_probe.loading import load_model
    from persona_probe.spans import read_conversations

    convs = read_conversations(args.inp)
    model = load_model(args.model)
    texts = model.generate(convs, max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    prov = {**model.provenance(), "temperature": args.temperature, "seed": args.seed}
    write_jsonl(args.out, [{"messages": c + [{"role": "assistant", "content": t}], "provenance": prov}
                           for c, t in zip(convs, texts)])
    log.info("wrote %d answers to %s", len(texts), args.out)
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from persona_probe.io import content_hash, save_tensors
    from persona_probe.loading import load_model
    from persona_probe.spans import read_conversations

    convs = read_conversations(args.inp)
    model = load_model(args.model)
    acts = model.response_activations(convs, batch_size=args.batch_size)
    save_tensors(args.out, {"activations": acts},
                 {**model.provenance(), "input_hash": content_hash(Path(args.inp)),
                  "pooling": "mean over assistant content"})
    log.info("wrote activations %s to %s", tuple(acts.shape), args.out)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from persona_probe.demo import run_demo

    report = run_demo(Path(args.out), model_source=args.model)
    print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
