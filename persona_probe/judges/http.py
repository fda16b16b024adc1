"""Judge with any server that speaks OpenAI chat completions (OpenAI, vLLM, ...).

One request per answer asks for a single token with ``logprobs`` and
``top_logprobs=20``; :func:`~persona_probe.judges.logprobs.weighted_score`
turns those into a score. A server that gives no log-probabilities (or rejects
the parameter with HTTP 400) switches the judge to parsing a short sampled
answer instead; each judgement records which mode produced it in ``raw``.

Robustness, because a large evaluation makes thousands of calls:

- at most ``concurrency`` requests in flight (a thread pool; stdlib only);
- 429, 5xx, timeouts and dropped connections are retried with exponential
  backoff and jitter, honouring ``Retry-After``; when retries run out the
  judgement is a *transient* no-score, which the cache does not keep;
- other HTTP errors (401, 404, ...) would fail for every answer, so they stop
  the run with :class:`JudgeError` -- finished scores are already cached;
- the API key is read from an environment variable when the judge is built,
  and a missing key raises :class:`MissingAPIKey` before any request. The key
  is only ever placed in the ``Authorization`` header: it is never logged, is
  absent from ``repr``, and is scrubbed from any server text we quote.

Tokenizer caveat: the 0-100 scale assumes the judge model has single tokens
for 0..100 (true for OpenAI models and Llama 3). A vLLM server running a model
that splits numbers into digits (Qwen, Gemma, Mistral) would put all mass on
"0".."9"; use ``mode="sampled"`` for such models, or the local judge, which
handles digit-splitting exactly. We warn when a run sees no multi-digit token.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from .base import Item, JudgeBase, JudgeError, Judgement, MissingAPIKey
from .logprobs import Scored, int_token, parse_sampled, weighted_score
from .prompts import SCALES, render

log = logging.getLogger(__name__)

__all__ = ["HTTPJudge"]

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class _Transient(Exception):
    pass


@dataclass(eq=False)
class HTTPJudge(JudgeBase):
    """OpenAI-compatible chat-completions judge.

    ``api_key_env``: the environment variable holding the key; ``None`` or
    ``""`` for a server without authentication (a local vLLM). ``mode``:
    ``"logprobs"`` (default) or ``"sampled"``.
    """

    model: str = "gpt-4o-2024-08-06"
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str | None = "OPENAI_API_KEY"
    concurrency: int = 8
    max_retries: int = 6
    backoff: float = 1.0
    max_backoff: float = 60.0
    timeout: float = 60.0
    mode: str = "logprobs"
    sampled_max_tokens: int = 8
    _key: str | None = field(default=None, init=False, repr=False)

    backend = "http"

    def __post_init__(self) -> None:
        if self.mode not in ("logprobs", "sampled"):
            raise ValueError(f"mode must be 'logprobs' or 'sampled', got {self.mode!r}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.api_key_env:
            key = os.environ.get(self.api_key_env, "").strip()
            if not key:
                raise MissingAPIKey(
                    f"the http judge needs an API key in ${self.api_key_env}, which is unset or empty; "
                    f"export it, name another variable (--api-key-env), or use --no-api-key for a server "
                    f"without authentication"
                )
            self._key = key
        self.url = self.base_url.rstrip("/") + "/chat/completions"
        host = urllib.parse.urlsplit(self.url).hostname or ""
        handlers = [urllib.request.ProxyHandler({})] if host in _LOOPBACK else []
        self._opener = urllib.request.build_opener(*handlers)
        self._lock = threading.Lock()
        self._sampled = self.mode == "sampled"
        self._saw_multidigit = False
        self._n_logprob_scores = 0

    def version(self, kind: str) -> str:
        """Prompt version; ``+sampled`` when sampled parsing was asked for (a coarser, different number)."""
        return super().version(kind) + ("+sampled" if self.mode == "sampled" else "")

    # ------------------------------------------------------------ transport
    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _post(self, payload: dict) -> dict:
        """POST with retries; returns the JSON body or raises ``_Transient`` / ``JudgeError``."""
        body = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        last, retry_after = "no attempt", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random())
                if retry_after is not None:
                    delay = min(self.max_backoff, max(delay, retry_after))
                log.warning("judge request failed (%s); retry %d/%d in %.2fs", last, attempt, self.max_retries, delay)
                time.sleep(delay)
            retry_after = None
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with self._opener.open(request, timeout=self.timeout) as resp:
                    text = resp.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as exc:
                detail = self._redact(exc.read().decode("utf-8", "replace")[:300])
                if exc.code in RETRY_STATUS:
                    last = f"HTTP {exc.code}"
                    retry_after = _retry_after(exc.headers.get("Retry-After"))
                    continue
                if exc.code == 400 and "logprob" in detail.lower() and payload.get("logprobs"):
                    raise _NoLogprobs(detail) from None
                raise JudgeError(f"{self.url}: HTTP {exc.code}: {detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:  # socket.timeout is TimeoutError
                reason = getattr(exc, "reason", exc)
                last = f"{type(exc).__name__}: {self._redact(str(reason))}"
                continue
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise _Transient(f"server answered non-JSON: {self._redact(text[:120])!r}") from None
        raise _Transient(f"request failed after {self.max_retries + 1} attempts ({last})")

    # -------------------------------------------------------------- scoring
    def _messages(self, kind: str, item: Item) -> list[dict]:
        return [{"role": "user", "content": render(kind, item.question, item.answer, **item.context)}]

    def _score_one(self, kind: str, item: Item) -> Judgement:
        scale = SCALES[kind]
        messages = self._messages(kind, item)
        try:
            if not self._sampled:
                try:
                    data = self._post({"model": self.model, "messages": messages, "max_tokens": 1,
                                       "temperature": 0, "logprobs": True, "top_logprobs": 20, "seed": 0})
                    top = _top_logprobs(data)
                except _NoLogprobs as exc:
                    top, data = None, {"error": str(exc)}
                if top is not None:
                    scored = weighted_score(top, scale.lo, scale.hi, labels=scale.labels)
                    self._note_tokens(scale.hi, top)
                    return self._judgement(kind, scored, {"mode": "logprobs", "top": dict(_top_n(top, 5))})
                with self._lock:
                    if not self._sampled:
                        log.warning("%s gave no log-probabilities; falling back to parsing sampled answers "
                                    "(coarser scores, marked mode=sampled)", self.url)
                        self._sampled = True
            data = self._post({"model": self.model, "messages": messages, "max_tokens": self.sampled_max_tokens,
                               "temperature": 0, "seed": 0})
            text = _content(data)
            if text is None:
                return self.no_score(kind, f"malformed response: no choices[0].message.content in "
                                           f"{self._redact(json.dumps(data)[:120])}", transient=True)
            scored = parse_sampled(text, scale.lo, scale.hi, labels=scale.labels)
            return self._judgement(kind, scored, {"mode": "sampled", "text": text[:200]})
        except _Transient as exc:
            return self.no_score(kind, self._redact(str(exc)), transient=True)

    def _judgement(self, kind: str, scored: Scored, raw: dict) -> Judgement:
        return Judgement(scored.score, scored.reason, self.judge_id(kind), scored.label, scored.mass, raw=raw)

    def _note_tokens(self, hi: int, top: list[tuple[str, float]]) -> None:
        if hi < 10:
            return
        with self._lock:
            self._n_logprob_scores += 1
            if any((v := int_token(t)) is not None and v >= 10 for t, _ in top):
                self._saw_multidigit = True

    def score_many(self, kind: str, items: Sequence[Item]) -> Iterator[tuple[int, Judgement]]:
        """Yield ``(index, Judgement)`` as requests finish, ``concurrency`` at a time."""
        SCALES[kind]  # noqa: B018 - validates kind
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="judge-http")
        error: BaseException | None = None
        try:
            futures = {pool.submit(self._score_one, kind, item): i for i, item in enumerate(items)}
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for fut in done:
                    if fut.cancelled():
                        continue
                    if fut.exception() is not None:
                        # stop sending, but hand over what is already in flight so it gets cached
                        error = error or fut.exception()
                        for other in remaining:
                            other.cancel()
                        continue
                    yield futures[fut], fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if error is not None:
            raise error
        if self._n_logprob_scores >= 20 and not self._saw_multidigit:
            log.warning("%d scores on a 0-100 scale and not one multi-digit token among the top log-probs: "
                        "model %r may split numbers into digits, which makes logprob scores wrong; "
                        "use mode='sampled' (--sampled) for it", self._n_logprob_scores, self.model)


class _NoLogprobs(Exception):
    pass


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _top_logprobs(data: Any) -> list[tuple[str, float]] | None:
    """``choices[0].logprobs.content[0].top_logprobs`` as pairs; ``None`` when the server gave none.

    A body without ``choices`` is not "no logprobs" but a broken answer: ``_Transient``.
    """
    try:
        choice = data["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise _Transient(f"malformed response without choices: {json.dumps(data)[:120]}") from None
    try:
        entries = choice["logprobs"]["content"][0]["top_logprobs"]
        return [(str(e["token"]), float(e["logprob"])) for e in entries]
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _content(data: Any) -> str | None:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _top_n(pairs: list[tuple[str, float]], n: int) -> list[tuple[str, float]]:
    return sorted(pairs, key=lambda kv: -kv[1])[:n]
