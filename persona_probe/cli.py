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
    persona-probe report RUN_DIR

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
import os
import sys
from pathlib import Path

from persona_probe.schema import non_negative_float, positive_int

log = logging.getLogger(__name__)

# One line per stage folder that provides subcommands.
COMMAND_MODULES = [
    "persona_probe.axis.cli",
    "persona_probe.capping.cli",
    "persona_probe.organisms.cli",
    "persona_probe.judges.cli",
    "persona_probe.stress.cli",
    "persona_probe.analysis.cli",
    "persona_probe.report.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="persona-probe",
        description="Assistant-Axis capping vs conditionally misaligned models: tracing, axes, organisms, judges, "
                    "stress tests.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads for torch (default: the CPUs this process may use; two jobs side by "
                             "side on 2 cores: --threads 1 each)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _register_core(sub)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def setup_logging(verbosity: int = 0) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "filelock", "numba", "matplotlib", "kaleido", "choreographer", "logistro"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: ``taskset`` and cgroup cpusets shrink it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op threads and log the choice; returns the number set.

    ``threads`` (``--threads``) wins; else ``OMP_NUM_THREADS`` if set; else :func:`available_cpus`.
    More OpenMP threads than free cores spin against each other: on a loaded 2-core machine a batch
    took 47 s at 2 threads and 6 s at 1.
    """
    import torch

    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    cpus, env = available_cpus(), os.environ.get("OMP_NUM_THREADS", "")
    if threads:
        n, source = threads, "--threads"
    elif env.isdigit() and int(env) > 0:
        n, source = int(env), "OMP_NUM_THREADS"
    else:
        n, source = cpus, "default: the CPUs this process may use"
    torch.set_num_threads(n)
    log.info("torch uses %d CPU thread(s) (%s; %d CPU(s) available)", n, source, cpus)
    if n > cpus:
        log.warning("%d threads on %d available CPU(s): OpenMP threads will wait on each other", n, cpus)
    return n


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "func", None):
        (getattr(args, "help_parser", None) or parser).print_help()
        return 2
    errors = logging.getLogger("persona_probe")
    from persona_probe.progress import clear_progress

    clear_progress()
    try:
        configure_threads(args.threads)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        errors.error("%s", interrupted_message(sys.argv[1:] if argv is None else argv))
        return 130
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as exc:
        errors.error("%s", exc)
        return 1
    except OSError as exc:  # a full disk or a folder that turned read-only while writing
        errors.error("cannot write %s: %s; re-run the same command to resume once it is fixed",
                     exc.filename or "a file", exc.strerror or exc)
        return 1


def interrupted_message(argv: list[str]) -> str:
    """One line after Ctrl-C: what finished and the exact command that resumes."""
    import shlex

    from persona_probe.progress import progress_notes

    done = "; ".join(progress_notes()) or "no step had finished"
    return f"interrupted ({done}); finished steps are kept, resume with: persona-probe {shlex.join(argv)}"


# ------------------------------------------------------------------ top-level commands
def _register_core(sub) -> None:
    p = sub.add_parser("info", help="load a model and print its layers, width and family")
    p.add_argument("--model", default="embedded")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("generate", help="answer user prompts from a JSONL file (one {'messages': [...]} per line); "
                                        "saves each batch as it finishes, re-run to resume")
    p.add_argument("--model", default="embedded")
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-new-tokens", type=positive_int, default=128)
    p.add_argument("--temperature", type=non_negative_float, default=0.0)
    p.add_argument("--seed", type=int, default=0, help="batch b samples with seed + b (so a resumed run matches)")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("extract", help="mean response activations of conversations (JSONL) to safetensors")
    p.add_argument("--model", default="embedded")
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--pooling", choices=["tokens", "turns"], default="tokens",
                   help="tokens: mean over every assistant token (default); turns: mean of per-turn means "
                        "(the reference pipeline's multi-turn pooling)")
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
    from persona_probe.io import content_hash, write_jsonl
    from persona_probe.loading import load_model
    from persona_probe.progress import check_writable
    from persona_probe.spans import read_conversations

    convs = read_conversations(args.inp, for_generation=True)
    out = check_writable(args.out, what="--out")
    model = load_model(args.model)
    prov = {**model.provenance(), "temperature": args.temperature, "seed": args.seed,
            "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size}
    partial = out.with_name(f".{out.name}.partial-{content_hash(prov, convs)}.jsonl")
    texts = _generate_batches(model, convs, args, partial)
    write_jsonl(out, [{"messages": c + [{"role": "assistant", "content": t}], "provenance": prov}
                      for c, t in zip(convs, texts)])
    partial.unlink(missing_ok=True)
    log.info("wrote %d answers to %s", len(texts), out)
    return 0


def _generate_batches(model, convs: list, args: argparse.Namespace, partial: Path) -> list[str]:
    """Answers batch by batch, each appended to ``partial`` (fsynced) as it finishes; finished batches are reused."""
    from tqdm.auto import tqdm

    from persona_probe.io import append_jsonl
    from persona_probe.progress import note_progress, read_partial_jsonl

    done = {r["i"]: r["text"] for r in read_partial_jsonl(partial)}
    starts = range(0, len(convs), args.batch_size)
    for b, start in enumerate(tqdm(starts, desc="generate", unit="batch", disable=len(starts) < 2)):
        rows = range(start, min(start + args.batch_size, len(convs)))
        if all(i in done for i in rows):
            continue
        texts = model.generate([convs[i] for i in rows], max_new_tokens=args.max_new_tokens,
                               temperature=args.temperature, seed=args.seed + b, batch_size=args.batch_size,
                               progress=False)
        for i, text in zip(rows, texts):
            append_jsonl(partial, {"i": i, "text": text})
            done[i] = text
        note_progress("generate", f"{len(done)} of {len(convs)} answers saved in {partial}")
    return [done[i] for i in range(len(convs))]


def cmd_extract(args: argparse.Namespace) -> int:
    from persona_probe.io import content_hash, save_tensors
    from persona_probe.loading import load_model
    from persona_probe.progress import check_writable
    from persona_probe.spans import read_conversations

    convs = read_conversations(args.inp)
    check_writable(args.out, what="--out")
    model = load_model(args.model)
    acts = model.response_activations(convs, batch_size=args.batch_size, pooling=args.pooling)
    save_tensors(args.out, {"activations": acts},
                 {**model.provenance(), "input_hash": content_hash(Path(args.inp)),
                  "pooling": {"tokens": "mean over assistant content tokens",
                              "turns": "mean of per-assistant-turn means"}[args.pooling]})
    log.info("wrote activations %s to %s", tuple(acts.shape), args.out)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from persona_probe.demo import run_demo

    report = run_demo(Path(args.out), model_source=args.model)
    print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
