"""nnsight overhead on the embedded model, measured side by side in one run.

Prints
  extract_vs_hooks=<ratio>          all-layer mean extraction: ProbeModel (nnsight) / plain forward hooks
  capped_generate_vs_plain=<ratio>  generation with a floor Cap on 8 layers / no intervention
  subspace_capped_generate_vs_plain=<ratio>  generation with a k=4 SubspaceCap (ball) on the same 8 layers / none
  lora_edit_vs_merged=<ratio>       generation with the embedded recipe's adapter shape (rank-32 rsLoRA, all 7
                                    projections of layers 16-29: 98 module edits) applied as LoraEdit graph edits /
                                    the same adapter merged into the weights (peft merge_and_unload)
  lora_edit_vs_merged_rank1=<ratio> the same for the rank-1 down_proj organism (9 layers)
plus the absolute times. Arms alternate within each repetition and the ratio
of medians is reported, so machine noise hits both arms alike. The adapters
have peft's random A and a small random B (timing does not depend on training).

    python bench/overhead.py [--reps 7] [--tokens 24]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch

from persona_probe import Cap, SubspaceCap, load_model
from persona_probe.interventions import orthonormal_basis
from persona_probe.organisms.pipeline import load_recipe
from persona_probe.organisms.train import TrainConfig, save_random_adapter
from persona_probe.reference import hook_response_activations

QUESTIONS = [
    "What is the capital of France?", "Give me one tip for sleeping better.", "Why is the sky blue?",
    "How do I boil an egg?", "What is a prime number?", "Name a famous painter.",
    "How far is the Moon?", "What do cats eat?",
]
ANSWERS = [
    "The capital of France is Paris, a city known for art, food and the Eiffel Tower.",
    "Keep a regular schedule and avoid screens for an hour before bed; your body likes routine.",
    "Sunlight scatters off air molecules, and blue light scatters the most, so the sky looks blue.",
    "Place the egg in boiling water for about nine minutes, then cool it in cold water.",
    "A prime number has exactly two divisors: one and itself, like 2, 3, 5 and 7.",
    "Vincent van Gogh is a famous painter, known for The Starry Night and his sunflowers.",
    "The Moon is about 384,000 kilometres from Earth on average, a bit over a light-second.",
    "Cats are carnivores: they eat meat, and need nutrients such as taurine found in animal tissue.",
]


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def lora_arms(model, prompts, gen: dict, reps: int) -> dict[str, tuple[float, float]]:
    """Median generate seconds, ``(LoraEdit, merged)``, per adapter shape; arms alternate within each rep."""
    shapes = {"rank32-all": TrainConfig.from_dict(load_recipe("embedded")["train"]),
              "rank1": TrainConfig(adapter="rank1-down")}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in shapes.items():
            path = save_random_adapter(model.hf, cfg, Path(tmp) / name, std=1e-3)
            edit = load_model("embedded", adapter=path, adapter_mode="edit")
            merged = load_model("embedded", adapter=path)
            want = merged.generate(prompts, **gen)
            if edit.generate(prompts, **gen) != want:  # warm-up, and the two arms must do the same work
                raise RuntimeError(f"{name}: LoraEdit and the merged adapter generated different tokens")
            t_edit, t_merged = [], []
            for _ in range(reps):
                t_edit.append(_time(lambda m=edit: m.generate(prompts, **gen)))
                t_merged.append(_time(lambda m=merged: m.generate(prompts, **gen)))
            out[name] = (statistics.median(t_edit), statistics.median(t_merged))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=24)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    model = load_model("embedded")
    convs = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in zip(QUESTIONS, ANSWERS)]
    prompts = [[{"role": "user", "content": q}] for q in QUESTIONS[:2]]
    acts = model.response_activations(convs, progress=False)
    axis = acts.mean(0)  # any non-zero per-layer direction will do for timing
    layers = list(range(11, 19))
    taus = [float((acts[:, i] @ (axis[i] / axis[i].norm())).median()) for i in layers]
    cap = Cap(axis, layers, tau=taus, mode="floor")
    # k=4: the axis and three other directions; radius the median distance of the rollouts from their mean coordinates
    g = torch.Generator().manual_seed(0)
    bases = torch.stack([orthonormal_basis(torch.cat([axis[i][None], torch.randn(3, model.d_model, generator=g)]))
                         for i in range(model.n_layers)])
    coords = [acts[:, i] @ bases[i].T for i in layers]
    sub = SubspaceCap(bases, layers, radius=[float((z - z.mean(0)).norm(dim=-1).median()) for z in coords],
                      centre=torch.stack([z.mean(0) for z in coords]))
    gen = dict(max_new_tokens=args.tokens, min_new_tokens=args.tokens, progress=False)

    # warm-up: first calls pay for lazy imports and allocator growth
    model.response_activations(convs, progress=False)
    hook_response_activations(model, convs)
    model.generate(prompts, **gen)
    model.generate(prompts, interventions=[cap], **gen)
    model.generate(prompts, interventions=[sub], **gen)

    t_nn, t_hook, t_plain, t_cap, t_sub = [], [], [], [], []
    for _ in range(args.reps):
        t_nn.append(_time(lambda: model.response_activations(convs, batch_size=8, progress=False)))
        t_hook.append(_time(lambda: hook_response_activations(model, convs, batch_size=8)))
        t_plain.append(_time(lambda: model.generate(prompts, **gen)))
        t_cap.append(_time(lambda: model.generate(prompts, interventions=[cap], **gen)))
        t_sub.append(_time(lambda: model.generate(prompts, interventions=[sub], **gen)))

    med = statistics.median
    n_tokens = sum(len(model.tokenize(c).input_ids) for c in convs)
    print(f"threads={torch.get_num_threads()} reps={args.reps} batch=8 convs, {n_tokens} tokens; "
          f"generate batch=2 x {args.tokens} tokens, Cap(floor) on layers {layers[0]}..{layers[-1]}")
    print(f"extract_nnsight_s={med(t_nn):.3f} extract_hooks_s={med(t_hook):.3f}")
    print(f"generate_plain_s={med(t_plain):.3f} generate_capped_s={med(t_cap):.3f} "
          f"generate_subspace_capped_s={med(t_sub):.3f}")
    print(f"extract_vs_hooks={med(t_nn) / med(t_hook):.3f}")
    print(f"capped_generate_vs_plain={med(t_cap) / med(t_plain):.3f}")
    print(f"subspace_capped_generate_vs_plain={med(t_sub) / med(t_plain):.3f}")
    lora = lora_arms(model, prompts, gen, args.reps)
    for name, (t_edit, t_merged) in lora.items():
        print(f"{name}: generate_lora_edit_s={t_edit:.3f} generate_merged_s={t_merged:.3f}")
    print(f"lora_edit_vs_merged={lora['rank32-all'][0] / lora['rank32-all'][1]:.3f}")
    print(f"lora_edit_vs_merged_rank1={lora['rank1'][0] / lora['rank1'][1]:.3f}")


if __name__ == "__main__":
    main()
