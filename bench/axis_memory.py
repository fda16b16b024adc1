"""Peak memory of the axis build at N and at 4N responses, on a random-weight model as wide as Qwen3-32B.

The model is a 4-layer Llama with hidden size 5120 (Qwen3-32B's and Gemma-2-27B's width
class) and small attention/MLP projections and vocabulary, so the forward passes stay cheap
on a CPU and the per-response activations dominate what memory can grow with. Generation
is replaced by a fixed short answer (this measures the build's memory, not sampling). Each
arm runs in its own subprocess and reports its peak resident set size (``ru_maxrss``).

Arms, run side by side:
  stream N / stream 4N      ``build_axis`` (shards of running sums, default rollouts written row by row)
  stream 4R                 the same with 4x the roles (and N's questions per role): what the
                            accumulators, O(roles x layers x d), add
  in-memory N / 4N          the control: the same responses' activations stacked in memory and reduced
                            with ``compute_role_vectors``, as the build did before streaming; it must grow,
                            or the benchmark could not have seen a leak

Prints the peak RSS of every arm, then
  axis_rss_4x_vs_1x=<ratio>       the streaming build (goal <= 1.2)
  axis_rss_4roles_vs_1x=<ratio>   the streaming build, 4N responses from 4x the roles
  inmemory_rss_4x_vs_1x=<ratio>   the control

    python bench/axis_memory.py [--roles 4] [--questions 250] [--layers 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

D_MODEL = 5120
ANSWER = "ok that is fine"


@dataclasses.dataclass
class Role:
    name: str
    description: str
    prompts: list


def tiny_wide_model(n_layers: int):
    """A random Llama of width 5120 with a 64-word vocabulary and a ChatML template (no download)."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    from persona_probe import wrap_model

    words = ["[UNK]", "<|im_start|>", "<|im_end|>", "system", "user", "assistant", "ok", "that", "is", "fine",
             "role", "question"] + [str(i) for i in range(52)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="<|im_end|>",
                                                pad_token="<|im_end|>",
                                                additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    fast.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=len(words), hidden_size=D_MODEL, intermediate_size=256,
                                      num_hidden_layers=n_layers, num_attention_heads=2, num_key_value_heads=1,
                                      head_dim=64, max_position_embeddings=256, eos_token_id=2, pad_token_id=2,
                                      bos_token_id=None, tie_word_embeddings=True)
    hf = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    return wrap_model(hf, fast, name="random-llama-d5120")


class FixedAnswers:
    """A generator that answers every prompt with the same short text (the build's memory is the point)."""

    def preflight(self, identity, adapters=None):
        return "fixed"

    def use_cache(self, path):
        return self

    def describe(self):
        return {"backend": "fixed-answer benchmark stub"}

    def generate(self, model, conversations, **_):
        return [ANSWER] * len(conversations)


def run_arm(arm: str, roles: int, questions: int, n_layers: int, batch_size: int) -> dict:
    import torch

    from persona_probe import axis as ax
    from persona_probe.axis.pipeline import build_axis

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = tiny_wide_model(n_layers)
    role_list = [Role(f"r{i}", f"role {i}", [f"role {i}"]) for i in range(roles)]
    qs = [f"question {i % 52}" for i in range(questions)]
    t0 = time.perf_counter()
    if arm == "stream":
        with tempfile.TemporaryDirectory() as out:
            build_axis(model, out, role_list, qs, [""], batch_size=batch_size, figures=False, progress=False,
                       generator=FixedAnswers())
    else:  # the control: every response's activations in memory, then the axis math
        convs = [[{"role": "system", "content": r.prompts[0]}, {"role": "user", "content": q},
                  {"role": "assistant", "content": ANSWER}] for r in role_list for q in qs]
        labels = [r.name for r in role_list for _ in qs]
        acts = model.response_activations(convs, batch_size=batch_size, progress=False)
        default = model.response_activations([[{"role": "user", "content": q}, {"role": "assistant",
                                                                                "content": ANSWER}] for q in qs],
                                             batch_size=batch_size, progress=False)
        rv = ax.compute_role_vectors(acts, labels)
        ax.compute_axis(ax.default_vector(default), rv.vectors)
    n = questions * (roles + 1)
    return {"arm": arm, "responses": n, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds": round(time.perf_counter() - t0, 1),
            "stacked_activations_mb": n * n_layers * D_MODEL * 4 / 2 ** 20}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--roles", type=int, default=4)
    p.add_argument("--questions", type=int, default=250, help="questions per role at N (4N: four times as many)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--arm", choices=["stream", "in-memory"], help=argparse.SUPPRESS)  # one subprocess = one arm
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.arm:
        print(json.dumps(run_arm(args.arm, args.roles, args.questions, args.layers, args.batch_size)))
        return
    results = {}
    for arm, scale, roles, questions in (("stream", "1N", 1, 1), ("stream", "4N", 1, 4), ("stream", "4R", 4, 1),
                                         ("in-memory", "1N", 1, 1), ("in-memory", "4N", 1, 4)):
        cmd = [sys.executable, __file__, "--arm", arm, "--roles", str(args.roles * roles), "--questions",
               str(args.questions * questions), "--layers", str(args.layers), "--batch-size", str(args.batch_size)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=Path(__file__).parent.parent)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results[(arm, scale)] = r
        print(f"{arm:9s} {scale}: {r['responses']:6d} responses, peak RSS {r['peak_rss_mb']:7.1f} MB "
              f"({r['seconds']} s; all activations stacked would be {r['stacked_activations_mb']:.0f} MB)")
    for arm, scale, label in (("stream", "4N", "axis_rss_4x"), ("stream", "4R", "axis_rss_4roles"),
                              ("in-memory", "4N", "inmemory_rss_4x")):
        ratio = results[(arm, scale)]["peak_rss_mb"] / results[(arm, "1N")]["peak_rss_mb"]
        print(f"{label}_vs_1x={ratio:.3f}")


if __name__ == "__main__":
    main()
