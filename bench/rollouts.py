"""Rollout throughput: ``transformers serve`` against our in-process generate, on the embedded model.

Arms, run one after the other in this process on the same greedy prompts:
  in-process     ``ProbeModel.generate`` (HF generate under nnsight), batches of ``--batch-size``
  served         ``transformers serve`` with continuous batching (paged attention), ``--concurrency``
                 requests in flight through :class:`persona_probe.rollouts.ServedRollouts`
  served-seq     ``transformers serve`` without continuous batching (one request at a time on its
                 inference thread), the same client

Tokens are counted by re-tokenizing each answer (the same rule for every arm). Each arm has
one untimed warm-up request. Prints tokens/s per arm, then
  served_vs_inprocess_tokens_per_s=<ratio>      continuous-batching server / in-process
  served_seq_vs_inprocess_tokens_per_s=<ratio>

On a CPU this measures the serving path, not a GPU engine: vLLM's throughput on a GPU comes
from kernels and batch sizes a 2-core CPU cannot show (see remote_configs/README.md).

    python bench/rollouts.py [--prompts 32] [--tokens 48] [--batch-size 8] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from persona_probe import load_model
from persona_probe.axis.roledata import load_questions
from persona_probe.embedded import embedded_dir
from persona_probe.local_server import transformers_server
from persona_probe.rollouts import ServedRollouts


def _tokens(model, texts: list[str]) -> int:
    return sum(len(model.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


def _served(model, convs, args, *, continuous_batching: bool) -> tuple[float, list[str]]:
    with transformers_server(embedded_dir(), dtype="float32", continuous_batching=continuous_batching) as url, \
            tempfile.TemporaryDirectory() as tmp:
        gen = ServedRollouts(url, concurrency=args.concurrency, cache=str(Path(tmp) / "warmup.sqlite"))
        gen.generate(model, convs[:1], max_new_tokens=4, progress=False)  # warm-up (loads, compiles nothing)
        gen = ServedRollouts(url, concurrency=args.concurrency)  # no cache: every answer is generated
        t0 = time.perf_counter()
        texts = gen.generate(model, convs, max_new_tokens=args.tokens, temperature=0.0, progress=False)
        return time.perf_counter() - t0, texts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--tokens", type=int, default=48, help="max new tokens per answer")
    p.add_argument("--batch-size", type=int, default=8, help="in-process generate batch size")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight to the server")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    model = load_model("embedded")
    convs = [[{"role": "user", "content": q.text}] for q in load_questions()[: args.prompts]]

    model.generate(convs[:1], max_new_tokens=4, progress=False)  # warm-up
    t0 = time.perf_counter()
    local = model.generate(convs, max_new_tokens=args.tokens, batch_size=args.batch_size, progress=False)
    arms = {"in-process": (time.perf_counter() - t0, local)}
    arms["served"] = _served(model, convs, args, continuous_batching=True)
    arms["served-seq"] = _served(model, convs, args, continuous_batching=False)

    rate = {}
    for name, (seconds, texts) in arms.items():
        n = _tokens(model, texts)
        rate[name] = n / seconds
        same = sum(a == b for a, b in zip(texts, local))
        print(f"{name:10s} {n:6d} tokens in {seconds:7.1f} s = {rate[name]:7.1f} tokens/s "
              f"({same}/{len(texts)} answers identical to in-process greedy)")
    print(f"served_vs_inprocess_tokens_per_s={rate['served'] / rate['in-process']:.3f}")
    print(f"served_seq_vs_inprocess_tokens_per_s={rate['served-seq'] / rate['in-process']:.3f}")


if __name__ == "__main__":
    main()
