"""Core subcommands: ``info``, ``generate``, ``extract`` and ``demo``.

``demo`` is the README's main job on the embedded model. It runs each stage
the project has, in order, into one run folder, and every stage resumes from
its own finished files.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub) -> None:
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
    from persona_probe import load_model

    model = load_model(args.model)
    for key, value in {**model.provenance(), "target_layer": model.target_layer,
                       "supports_system": model.family.supports_system}.items():
        print(f"{key}: {value}")
    return 0


def _read_messages(path: str) -> list[list[dict]]:
    from persona_probe.io import read_jsonl
    from persona_probe.spans import validate_conversation

    records = read_jsonl(path, required=["messages"])
    for i, rec in enumerate(records):
        try:
            validate_conversation(rec["messages"])
        except ValueError as exc:
            raise ValueError(f"{path}: record {i + 1}: {exc}") from None
    return [rec["messages"] for rec in records]


def cmd_generate(args: argparse.Namespace) -> int:
    from persona_probe import load_model
    from persona_probe.io import write_jsonl

    convs = _read_messages(args.inp)
    model = load_model(args.model)
    texts = model.generate(convs, max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    prov = {**model.provenance(), "temperature": args.temperature, "seed": args.seed}
    write_jsonl(args.out, [{"messages": c + [{"role": "assistant", "content": t}], "provenance": prov}
                           for c, t in zip(convs, texts)])
    log.info("wrote %d answers to %s", len(texts), args.out)
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from persona_probe import load_model
    from persona_probe.io import content_hash, save_tensors

    convs = _read_messages(args.inp)
    model = load_model(args.model)
    acts = model.response_activations(convs, batch_size=args.batch_size)
    save_tensors(args.out, {"activations": acts},
                 {**model.provenance(), "input_hash": content_hash(Path(args.inp)), "pooling": "mean over assistant content"})
    log.info("wrote activations %s to %s", tuple(acts.shape), args.out)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from persona_probe.demo import run_demo

    report = run_demo(Path(args.out), model_source=args.model)
    print(report.read_text())
    return 0
