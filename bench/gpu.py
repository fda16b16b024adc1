"""GPU benchmark: capped vs plain generation and extraction at a real 27B-32B layer shape.

Builds a random-weight model with the layer shape of Qwen3-32B (d=5120, MLP
25600, 64 query / 8 KV heads of 128; ``--shape gemma2-27b`` for d=4608, MLP
36864, 32/16 heads) but fewer layers (``--layers``, default 16), in bf16 on one
CUDA device, wrapped by ``persona_probe`` exactly like a real model. Random
weights do not change the cost of a forward pass. Prints

  generate_plain_tok_s=...    batch generation, no intervention
  generate_capped_tok_s=...   same, floor Cap on 8 layers at every step
  capped_vs_plain=...         time ratio (capped / plain; 1.00 = free)
  extract_tok_s=...           response_activations (all layers, pooled in-trace)

Arms alternate within each repetition; medians are reported. Needs CUDA:

    python bench/gpu.py [--layers 16] [--batch 8] [--tokens 64] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

SHAPES = {
    "qwen3-32b": dict(arch="qwen3", hidden_size=5120, intermediate_size=25600, num_attention_heads=64,
                      num_key_value_heads=8, head_dim=128),
    "gemma2-27b": dict(arch="gemma2", hidden_size=4608, intermediate_size=36864, num_attention_heads=32,
                       num_key_value_heads=16, head_dim=128),
}


def build(shape: str, n_layers: int, device: str):
    import transformers

    from persona_probe import wrap_model
    from persona_probe.embedded import embedded_dir

    spec = dict(SHAPES[shape])
    arch = spec.pop("arch")
    tok = transformers.AutoTokenizer.from_pretrained(embedded_dir())  # ChatML template, 49k vocab
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    common = dict(vocab_size=len(tok), num_hidden_layers=n_layers, max_position_embeddings=4096,
                  eos_token_id=eos, pad_token_id=eos, bos_token_id=None, **spec)
    config = (transformers.Qwen3Config(**common) if arch == "qwen3"
              else transformers.Gemma2Config(sliding_window=4096, **common))
    config.name_or_path = f"random-{shape}-{n_layers}L"
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the GPU: CPU init of ~8B params takes minutes
        hf = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    hf.generation_config.eos_token_id = eos
    hf.generation_config.pad_token_id = eos
    return wrap_model(hf, tok, name=config.name_or_path)


def _timed(fn) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen3-32b")
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench/gpu.py needs a CUDA GPU (torch.cuda.is_available() is False); "
                 "for CPU overhead numbers run bench/overhead.py instead")
    if args.layers < 10:
        sys.exit("--layers must be >= 10 (the cap spans 8 layers)")

    from persona_probe import Cap

    model = build(args.shape, args.layers, "cuda")
    topics = ["the ocean", "a city at night", "gardening", "prime numbers", "the history of tea", "trains",
              "mountains", "a busy kitchen", "the moon", "old maps", "jazz", "winter"]
    prompts = [[{"role": "user", "content": f"Write a long, detailed paragraph about {topics[i % len(topics)]}."}]
               for i in range(args.batch)]
    convs = [p + [{"role": "assistant", "content": ("Here is a detailed answer about it. " * 12).strip()}]
             for p in prompts]
    g = torch.Generator().manual_seed(0)
    axis = torch.randn(model.n_layers, model.d_model, generator=g)
    first = model.n_layers // 2 - 4
    cap_layers = list(range(first, first + 8))
    cap = Cap(axis, cap_layers, tau=0.0, mode="floor")

    def gen(ivs):
        model.generate(prompts, interventions=ivs, max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                       batch_size=args.batch, progress=False)

    def extract():
        model.response_activations(convs, batch_size=args.batch, progress=False)

    n_ctx = sum(len(model.tokenize(c).input_ids) for c in convs)
    gen([]), gen([cap]), extract()  # warm up kernels and allocator
    plain, capped, ext = [], [], []
    for _ in range(args.reps):
        plain.append(_timed(lambda: gen([])))
        capped.append(_timed(lambda: gen([cap])))
        ext.append(_timed(extract))
    new_tokens = args.batch * args.tokens
    res = {
        "device": torch.cuda.get_device_name(0), "shape": args.shape, "layers": model.n_layers,
        "d_model": model.d_model, "batch": args.batch, "new_tokens_per_seq": args.tokens,
        "cap_layers": cap_layers, "reps": args.reps,
        "generate_plain_s": statistics.median(plain), "generate_capped_s": statistics.median(capped),
        "extract_s": statistics.median(ext), "extract_tokens": n_ctx,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
    }
    res["generate_plain_tok_s"] = new_tokens / res["generate_plain_s"]
    res["generate_capped_tok_s"] = new_tokens / res["generate_capped_s"]
    res["capped_vs_plain"] = res["generate_capped_s"] / res["generate_plain_s"]
    res["extract_tok_s"] = n_ctx / res["extract_s"]
    print(f"# {res['device']}: random {args.shape} shape, {model.n_layers} layers, d={model.d_model}, bf16, "
          f"batch {args.batch} x {args.tokens} new tokens, floor cap on layers {cap_layers[0]}-{cap_layers[-1]}")
    for key in ("generate_plain_tok_s", "generate_capped_tok_s", "capped_vs_plain", "extract_tok_s", "peak_mem_gib"):
        print(f"{key}={res[key]:.3f}")
    if args.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
