"""Judges: one interface, several backends, every result a score or a reason.

Backends (pick with :func:`from_spec`: ``offline``, ``local[:model]``, ``http:<url>``, or a
mapping of constructor options; ``persona-probe judge score --judge SPEC``):

- ``http``: any server speaking OpenAI chat completions (OpenAI, vLLM, ...),
  scored from top-20 log-probabilities of one token (:mod:`.http`);
- ``local``: a local Hugging Face chat model, same scoring (:mod:`.local`);
- ``offline``: a classifier over MiniLM sentence embeddings trained on our
  labelled set, for machines with neither (:mod:`.offline`). It is a weak
  judge; its held-out accuracy is printed by ``persona-probe judge offline-eval``.

:func:`score_items` is how evaluations call a judge: it consults the sqlite
cache (:mod:`.cache`), sends only the misses, stores each result as it
arrives, and shows a progress bar.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from .base import Item, JudgeBase, JudgeError, Judgement, MissingAPIKey, check_kind, judge_id
from .cache import JudgeCache, cache_key
from .failures import FailureTally, JudgeFailures, failure_reason
from .prompts import CONTEXT_KEYS, KINDS, PROMPT_VERSION, SCALES, render
from .spec import BACKENDS, SPELLINGS, from_spec, make_judge, parse_spec, role_judge

log = logging.getLogger(__name__)

__all__ = [
    "Judgement", "Item", "JudgeBase", "JudgeError", "MissingAPIKey", "JudgeCache",
    "KINDS", "SCALES", "PROMPT_VERSION", "CONTEXT_KEYS", "render", "judge_id",
    "BACKENDS", "SPELLINGS", "make_judge", "parse_spec", "from_spec", "role_judge", "score_items",
    "FailureTally", "JudgeFailures", "failure_reason",
]


def _as_item(obj: Item | Mapping[str, Any]) -> Item:
    if isinstance(obj, Item):
        return obj
    ctx = {k: str(v) for k, v in obj.items() if k not in ("question", "answer") and v is not None}
    return Item(str(obj["question"]), str(obj["answer"]), ctx)


def score_items(
    judge: JudgeBase,
    kind: str,
    items: Sequence[Item | Mapping[str, Any]],
    *,
    cache: JudgeCache | None = None,
    progress: bool = True,
) -> list[Judgement]:
    """Judge every item for ``kind``, in input order, through the cache.

    Identical items are judged once. Each fresh result is written to the cache
    before the next is awaited, so an exception or a kill loses only what was
    still in flight. Items may be :class:`Item` or dicts with ``question``,
    ``answer`` and the kind's context keys.
    """
    from tqdm.auto import tqdm

    check_kind(kind)
    items = [_as_item(it) for it in items]
    for i, it in enumerate(items):
        missing = [k for k in CONTEXT_KEYS[kind] if not it.context.get(k)]
        if missing:
            raise ValueError(f"item {i}: judge kind {kind!r} needs {missing}")
    version = judge.version(kind)
    results: list[Judgement | None] = [None] * len(items)
    pending: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        ctx = {k: it.context[k] for k in CONTEXT_KEYS[kind]}
        key = cache_key(judge.backend, judge.model, version, kind, it.question, it.answer, ctx)
        hit = cache.get(key) if cache is not None and key not in pending else None
        if hit is not None:
            results[i] = hit
        else:
            pending.setdefault(key, []).append(i)
    keys = list(pending)
    todo = [items[pending[k][0]] for k in keys]
    log.info("%s: %d answers, %d from cache, %d to judge", judge.judge_id(kind), len(items),
             len(items) - sum(len(v) for v in pending.values()), len(todo))
    if todo:
        with tqdm(total=len(todo), desc=f"judge {kind}", unit="answer", disable=not progress) as bar:
            for j, judgement in judge.score_many(kind, todo):
                if cache is not None:
                    cache.put(keys[j], judgement)
                for i in pending[keys[j]]:
                    results[i] = judgement
                bar.update()
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        raise JudgeError(f"the {judge.backend} judge returned nothing for items {missing[:5]}")
    return results  # type: ignore[return-value]
