"""Judge with a local Hugging Face chat model: the same log-probability scoring, no server.

On a GPU this runs a strong open model as judge; on CPU a small one, for tests.
The prompt goes in as one user turn through the model's own chat template and
one forward pass gives the next-token distribution.

The tokenizer decides how a number can be read off that distribution:

- ``top20`` mode (API-equivalent): used when *every* integer of the scale is a
  single token (Llama 3, OpenAI tokenizers; any tokenizer for the 0-3 role
  scale). Top-20 tokens of one forward, then
  :func:`~persona_probe.judges.logprobs.weighted_score`, exactly as the HTTP
  judge does. Only single-token integers can count here -- a multi-token
  integer's first token would be misread as a smaller number.
- ``exact`` mode: used when numbers split into several tokens (Qwen, Gemma,
  Mistral and SmolLM write "85" as "8", "5"). Reading only the first token
  would put every score on 0-9, so instead we walk the digit tree:
  ``P(85) = P("8") * P("5" | "8") * P(not a digit | "85")``, summed over all
  token paths that spell 85, one batched forward per depth. Paths whose
  probability falls below ``prune`` (1e-4) are dropped -- they can shift a
  score by at most that mass times the scale -- and ``prune=0`` is exact. The
  weighted mean and the 0.25-mass rule are then applied to that distribution.
  The prompt is read once: each depth reuses its KV cache and computes only
  the (at most three) digit tokens of each path.

``integer_mode`` forces either mode; ``auto`` picks as above.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from .base import Item, JudgeBase, Judgement
from .logprobs import MIN_MASS, Scored, weighted_score
from .prompts import SCALES, render

log = logging.getLogger(__name__)

__all__ = ["LocalJudge"]


@dataclass(eq=False)
class LocalJudge(JudgeBase):
    """``source``: ``"embedded"``, an HF id or local path, or a ``(hf_model, tokenizer)`` pair."""

    source: Any = "embedded"
    batch_size: int = 4
    device: str | None = None
    dtype: str | None = None
    integer_mode: str = "auto"
    prune: float = 1e-4
    min_mass: float = MIN_MASS
    top_k: int = 20
    frontier_batch: int = 32
    reuse_cache: bool = True
    model: str = field(default="", init=False)

    backend = "local"

    def __post_init__(self) -> None:
        if self.integer_mode not in ("auto", "top20", "exact"):
            raise ValueError(f"integer_mode must be auto, top20 or exact, got {self.integer_mode!r}")
        self.hf, self.tokenizer, self.model = _load(self.source, self.device, self.dtype)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{self.model}: the tokenizer has no chat template; the local judge needs a chat model")
        import inspect

        self._keep_last = "logits_to_keep" in inspect.signature(self.hf.forward).parameters
        texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
        self._text = texts
        # integer tokens: at the first position a leading space is fine; later positions must be bare digits
        self._first_ids = [i for i, t in enumerate(texts) if t.strip().isascii() and t.strip().isdigit()]
        self._cont_ids = [i for i, t in enumerate(texts) if t.isascii() and t.isdigit()]
        singles = {texts[i].strip() for i in self._first_ids}
        self._single_token_scales = {kind for kind, s in SCALES.items()
                                     if all(str(n) in singles for n in range(s.lo, s.hi + 1))}

    def version(self, kind: str) -> str:
        """Prompt version plus what else changes the number: integer mode, and non-default pruning or mass floor."""
        extra = "".join([f"+prune{self.prune:g}" if self.prune != 1e-4 else "",
                         f"+mass{self.min_mass:g}" if self.min_mass != MIN_MASS else ""])
        return f"{super().version(kind)}+{self.mode_for(kind)}{extra}"

    def mode_for(self, kind: str) -> str:
        if self.integer_mode != "auto":
            return self.integer_mode
        return "top20" if kind in self._single_token_scales else "exact"

    # ---------------------------------------------------------------- model
    def _prompt_ids(self, kind: str, item: Item) -> list[int]:
        messages = [{"role": "user", "content": render(kind, item.question, item.answer, **item.context)}]
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                                  enable_thinking=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _pad(self, seqs: Sequence[Sequence[int]]):
        import torch

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), int(pad or 0), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
            mask[r, width - len(s):] = 1
        return ids, mask

    def _forward(self, ids, mask, pos, cache=None, use_cache: bool = False):
        """Last-position log-softmax (float32, CPU) and the KV cache when asked for."""
        import torch

        device = next(self.hf.parameters()).device
        kwargs = {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": pos.to(device),
                  "use_cache": use_cache}
        if cache is not None:
            kwargs["past_key_values"] = cache
        if self._keep_last:  # only the last position's logits: the vocabulary projection dominates
            kwargs["logits_to_keep"] = 1
        with torch.no_grad():
            out = self.hf(**kwargs)
        logprobs = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1).cpu()
        return logprobs, (out.past_key_values if use_cache else None)

    def next_logprobs(self, seqs: Sequence[Sequence[int]]):
        """Float32 log-softmax of the next token after each sequence, ``[len(seqs), vocab]`` (batched, left-padded)."""
        import torch

        out = []
        for start in range(0, len(seqs), self.batch_size):
            ids, mask = self._pad(seqs[start:start + self.batch_size])
            out.append(self._forward(ids, mask, (mask.cumsum(-1) - 1).clamp(min=0))[0])
        return torch.cat(out)

    def _extend(self, state, rows: list[int], paths: list[tuple[int, ...]]):
        """Next-token log-softmax after ``prompt[row] + path`` for equal-length paths, reusing the prompt's KV cache.

        Only the path tokens (at most three) are computed; the cache of the
        whole prompt batch is copied and its rows selected for each chunk.
        """
        import copy

        import torch

        cache, mask, lengths = state
        out = []
        for start in range(0, len(rows), self.frontier_batch):
            sel = torch.tensor(rows[start:start + self.frontier_batch], dtype=torch.long)
            ids = torch.tensor(paths[start:start + self.frontier_batch], dtype=torch.long)
            chunk_cache = copy.deepcopy(cache)
            chunk_cache.batch_select_indices(sel.to(next(self.hf.parameters()).device))
            full_mask = torch.cat([mask[sel], torch.ones_like(ids)], dim=1)
            pos = lengths[sel][:, None] + torch.arange(ids.shape[1])[None, :]
            out.append(self._forward(ids, full_mask, pos, cache=chunk_cache, use_cache=True)[0])
        return torch.cat(out)

    def _cache_ok(self, cache) -> bool:
        """Reuse the KV cache only for plain dynamic caches (sliding windows would need more care)."""
        try:
            from transformers.cache_utils import DynamicCache, DynamicLayer
        except ImportError:
            return False
        return (self.reuse_cache and isinstance(cache, DynamicCache)
                and all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None])))

    # -------------------------------------------------------------- scoring
    def _top(self, logprobs) -> list[tuple[str, float]]:
        values, ids = logprobs.topk(self.top_k)
        return [(self._text[i], float(v)) for v, i in zip(values.tolist(), ids.tolist())]

    def _exact(self, kind: str, prompts: list[list[int]], root, state=None) -> list[dict[int, float]]:
        """Distribution over the scale's integers for each prompt, by walking the digit tree.

        ``state`` (cache, mask, lengths) of the root forward lets each depth
        run on the path tokens alone; without it every path re-reads its prompt.
        """
        import torch

        scale = SCALES[kind]
        numbers = [str(n) for n in range(scale.lo, scale.hi + 1)]
        prefixes = {s[:k] for s in numbers for k in range(1, len(s) + 1)}
        dists: list[dict[int, float]] = [dict() for _ in prompts]
        cont = torch.tensor(self._cont_ids, dtype=torch.long)
        frontier = []  # (item, path ids, digits, prob)
        for item, lp in enumerate(root):
            probs = lp.exp()
            for t in self._first_ids:
                digits, p = self._text[t].strip(), float(probs[t])
                if digits in prefixes and p > self.prune:
                    frontier.append((item, (t,), digits, p))
        while frontier:
            if state is not None:  # all paths at one depth have the same length
                logprobs = self._extend(state, [f[0] for f in frontier], [f[1] for f in frontier])
            else:
                logprobs = self.next_logprobs([prompts[item] + list(path) for item, path, _, _ in frontier])
            nxt = []
            for (item, path, digits, p), lp in zip(frontier, logprobs):
                probs = lp.exp()
                cont_p = probs[cont] if len(cont) else torch.zeros(0)
                n = int(digits)
                if str(n) == digits and scale.lo <= n <= scale.hi:  # canonical (no leading zeros), in range
                    dists[item][n] = dists[item].get(n, 0.0) + p * max(0.0, 1.0 - float(cont_p.sum()))
                for t, q in zip(self._cont_ids, cont_p.tolist()):
                    longer = digits + self._text[t]
                    if longer in prefixes and p * q > self.prune:
                        nxt.append((item, path + (t,), longer, p * q))
            frontier = nxt
        return dists

    def _from_dist(self, kind: str, dist: dict[int, float], top: list[tuple[str, float]]) -> Scored:
        scale = SCALES[kind]
        mass = sum(dist.values())
        if mass >= self.min_mass and mass > 0:
            return Scored(sum(n * p for n, p in dist.items()) / mass, None, mass)
        first = weighted_score(top, scale.lo, scale.hi, labels=scale.labels, min_mass=self.min_mass)
        if first.label:
            return Scored(None, first.reason, mass, first.label)
        return Scored(None, f"integers in [{scale.lo}, {scale.hi}] carry {mass:.2f} of the probability "
                            f"(< {self.min_mass}); most likely first token {top[0][0]!r}", mass)

    def score_many(self, kind: str, items: Sequence[Item]) -> Iterator[tuple[int, Judgement]]:
        scale = SCALES[kind]
        mode = self.mode_for(kind)
        jid = self.judge_id(kind)
        if mode == "top20" and kind not in self._single_token_scales:
            log.warning("%s: top20 mode on the %d-%d scale, but this tokenizer splits some of those integers "
                        "into several tokens; scores will be biased low (use integer_mode='exact')",
                        self.model, scale.lo, scale.hi)
        step = max(1, self.batch_size)
        for start in range(0, len(items), step):
            chunk = items[start:start + step]
            prompts = [self._prompt_ids(kind, it) for it in chunk]
            ids, mask = self._pad(prompts)
            lengths = mask.sum(-1)
            root, cache = self._forward(ids, mask, (mask.cumsum(-1) - 1).clamp(min=0), use_cache=mode == "exact")
            state = (cache, mask, lengths) if mode == "exact" and self._cache_ok(cache) else None
            tops = [self._top(lp) for lp in root]
            if mode == "top20":
                scored = [weighted_score(top, scale.lo, scale.hi, labels=scale.labels, min_mass=self.min_mass)
                          for top in tops]
            else:
                dists = self._exact(kind, prompts, root, state)
                scored = [self._from_dist(kind, d, top) for d, top in zip(dists, tops)]
            for k, (s, top) in enumerate(zip(scored, tops)):
                raw = {"mode": mode, "top": [(t, round(v, 4)) for t, v in top[:5]]}
                yield start + k, Judgement(s.score, s.reason, jid, s.label, s.mass, raw=raw)


def _load(source: Any, device: str | None, dtype: str | None):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(source, tuple):
        hf, tok = source
        name = getattr(hf.config, "name_or_path", None) or type(hf).__name__
        return hf.eval(), tok, str(name)
    from persona_probe.embedded import EMBEDDED_NAME, embedded_dir

    path = embedded_dir() if source == "embedded" else source
    name = EMBEDDED_NAME if source == "embedded" else str(source)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=offline)
        hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, local_files_only=offline).to(dev)
    except OSError as exc:
        raise RuntimeError(f"could not load judge model {name!r}: {exc}. Offline, it must already be in the "
                           f"local HF cache or be a local folder") from None
    return hf.eval(), tok, name
