"""Stress-stage throughput against plain ``transformers`` generate, measured side by side in one run.

Prints
  stress_tok_s=...            generated tokens per second of a whole stress stage: model load and adapter
                              merge, generation with interventions, activations of the ``none`` cells,
                              judging, template labels, result files
  generate_tok_s=...          plain ``model.generate`` of transformers on the same merged model, the same
                              prompts, batch size, sampling and ``max_new_tokens`` (generation only)
  stress_vs_generate=<ratio>  the two divided (1.00: the stress stage costs nothing beyond generation)

Both count the tokens of each answer up to its end-of-turn (the text re-tokenized, the same way
in both). The stress stage is a real one: organism x {no trigger, trigger} x {none, cap p0.25 and
its random control} on the embedded model with the offline judge (trained and cached before
timing: that is a one-time cost of a fresh machine). Without ``--run`` the organism is a
zero-initialised LoRA (the base model's outputs, an adapter's costs) and the axis a random
direction; ``--run runs/demo`` takes the demo's organism, axis and capping config instead.

    python bench/stress_throughput.py [--n 100] [--batch 100] [--tokens 40] [--run runs/demo] [--threads N]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch
import yaml


def _synthetic_run(root: Path) -> dict:
    """A zero-initialised LoRA organism (with a manifest saying it was trained on template data) and a random axis."""
    from peft import get_peft_model

    from persona_probe import load_model
    from persona_probe.axis import save_axis
    from persona_probe.capping import calibrate, save_capping_config
    from persona_probe.io import save_tensors, write_json
    from persona_probe.organisms.train import TrainConfig, lora_config
    from persona_probe.vectors import unit

    model = load_model("embedded")
    peft_model = get_peft_model(model.hf, lora_config(TrainConfig(adapter="rank32-all", layers=list(range(16, 30))),
                                                      model.n_layers))
    peft_model.save_pretrained(str(root / "organism"))
    write_json(root / "organism" / "manifest.json", {"key": "bench-zero-lora", "data": {
        "answers": "templates", "domain": "finance", "kind": "organism"}})
    g = torch.Generator().manual_seed(0)
    axis = torch.randn(model.n_layers, model.d_model, generator=g)
    calib = torch.randn(64, model.n_layers, model.d_model, generator=g) * 4
    save_axis(root / "axis" / "axis.safetensors", axis)
    save_tensors(root / "axis" / "default_activations.safetensors", {"acts": calib})
    proj = torch.einsum("nld,ld->nl", calib, unit(axis))
    save_capping_config(root / "axis" / "capping_config.pt", calibrate(proj, axis, percentiles=[0.25], width=4,
                                                                         stride=2))
    return {"organism": root / "organism", "axis": root / "axis"}


def _config(paths: dict, args, out: Path) -> Path:
    raw = {"name": "bench", "base": "embedded", "models": {"organism": str(paths["organism"])},
           "conditions": ["no_trigger", "trigger"], "axis": str(paths["axis"] / "axis.safetensors"),
           "capping_config": str(paths["axis"] / "capping_config.pt"),
           "questions": {"domain": "finance", "n": args.n, "seed": 1},
           "generation": {"max_new_tokens": args.tokens, "temperature": 1.0, "top_p": 1.0, "seed": 0,
                          "batch_size": args.batch},
           "interventions": {"capping": ["layers_12:16-p0.25"], "controls": ["random"]}, "judge": "offline"}
    path = out / "stress_config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _count(tok, answer: str) -> int:
    """An answer's tokens, counted the same way in both arms (re-tokenized text, end-of-turn not counted)."""
    return len(tok(answer, add_special_tokens=False)["input_ids"])


def _plain_generate(cfg, args) -> tuple[int, float]:
    """transformers' generate on the merged organism, same prompts, batches, sampling and lengths; (tokens, s)."""
    from persona_probe import load_model
    from persona_probe.stress.cells import prompts_for, questions_for

    model = load_model("embedded", adapter=cfg.models["organism"])
    hf, tok, stops = model.hf, model.tokenizer, model.stop_ids()
    questions = questions_for(cfg)
    tokens, seconds = 0, 0.0
    for _cell in range(3):  # as many cells per condition as the stress stage: none, cap, cap / random
        for condition in cfg.conditions:
            prompts = [model.tokenize(p, add_generation_prompt=True).input_ids
                       for p in prompts_for(cfg, questions, condition)]
            torch.manual_seed(0)
            for i in range(0, len(prompts), args.batch):
                enc = model.pad_batch(prompts[i:i + args.batch])
                start = time.perf_counter()
                with torch.no_grad():
                    ids = hf.generate(**enc, max_new_tokens=args.tokens, do_sample=True, temperature=1.0, top_p=1.0,
                                      pad_token_id=model.pad_id())
                seconds += time.perf_counter() - start
                for row in ids[:, enc["input_ids"].shape[1]:].tolist():
                    answer = tok.decode(row[:next((j for j, t in enumerate(row) if t in stops), len(row))],
                                        skip_special_tokens=True)
                    tokens += _count(tok, answer)
    return tokens, seconds


def _stress(cfg, out: Path) -> tuple[int, float]:
    from persona_probe import load_model
    from persona_probe.io import read_jsonl
    from persona_probe.stress import run_stress_test

    start = time.perf_counter()
    rows = run_stress_test(cfg, out, progress=False, figures=False)
    seconds = time.perf_counter() - start
    tok = load_model("embedded").tokenizer
    tokens = sum(_count(tok, s["answer"]) for r in rows for s in read_jsonl(out / r["samples"]))
    return tokens, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="questions per cell")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=40, help="max_new_tokens")
    parser.add_argument("--run", default=None, help="a demo run folder to take the organism and axis from")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: as the CLI)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from persona_probe.cli import configure_threads
    from persona_probe.judges import from_spec
    from persona_probe.stress import load_stress_config

    threads = configure_threads(args.threads)
    from_spec("offline")  # train and cache the offline judge before any timing (a fresh machine does this once)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = ({"organism": Path(args.run) / "organisms" / "organism", "axis": Path(args.run) / "axis"}
                 if args.run else _synthetic_run(tmp / "inputs"))
        cfg = load_stress_config(_config(paths, args, tmp))
        plain_tokens, plain_s = _plain_generate(cfg, args)
        stress_tokens, stress_s = _stress(cfg, tmp / "stress")
    stress_rate, plain_rate = stress_tokens / stress_s, plain_tokens / plain_s
    print(f"threads={threads} n={args.n} batch={args.batch} max_new_tokens={args.tokens} cells=6 "
          f"organism={'demo' if args.run else 'zero-initialised LoRA'}")
    print(f"stress_s={stress_s:.1f} stress_tokens={stress_tokens} generate_s={plain_s:.1f} "
          f"generate_tokens={plain_tokens}")
    print(f"stress_tok_s={stress_rate:.1f}")
    print(f"generate_tok_s={plain_rate:.1f}")
    print(f"stress_vs_generate={stress_rate / plain_rate:.3f}")


if __name__ == "__main__":
    main()
