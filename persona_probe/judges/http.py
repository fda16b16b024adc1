"""Judge with any server that speaks OpenAI chat completions (OpenAI, vLLM, ...), through the ``openai`` SDK.

One request per answer asks for a single token with ``logprobs`` and
``top_logprobs=20``; :func:`~persona_probe.judges.logprobs.weighted_score`
turns those into a score. A server that gives no log-probabilities (or rejects
the parameter with HTTP 400) switches the judge to parsing a short sampled
answer instead; each judgement records which mode produced it in ``raw``.

Robustness, because a large evaluation makes thousands of calls:

- at most ``concurrency`` requests in flight (a thread pool over one client);
- the SDK (:func:`persona_probe.openai_client.make_client`) retries 408, 409,
  429, 5xx, timeouts and dropped connections ``max_retries`` times with
  exponential backoff and jitter, honouring ``Retry-After``; when retries run
  out, or the server answers something that is not a chat completion, the
  judgement is a *transient* failure with its reason and server, which the
  cache does not keep and every caller retries on its next run;
- other HTTP errors (401, 404, ...) would fail for every answer, so they stop
  the run with :class:`JudgeError` -- finished scores are already cached;
- the API key is read from an environment variable when the judge is built,
  and a missing key raises :class:`MissingAPIKey` before any request. The key
  goes only to the SDK: it is never logged, is absent from ``repr``, and is
  scrubbed from any server text we quote.

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
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from ..openai_client import send_concurrently
from .base import Item, JudgeBase, JudgeError, Judgement, MissingAPIKey
from .logprobs import Scored, int_token, parse_sampled, weighted_score
from .prompts import SCALES, render

log = logging.getLogger(__name__)

__all__ = ["HTTPJudge"]


class _Transient(Exception):
    pass


@dataclass(eq=False)
class HTTPJudge(JudgeBase):
    """OpenAI-compatible chat-completions judge.

    ``api_key_env``: the environment variable holding the key; ``None`` or
    ``""`` for a server without authentication (a local vLLM). ``mode``:
    ``"logprobs"`` (default) or ``"sampled"``. ``max_retries`` and ``timeout``
    (seconds per request) go to the SDK.
    """

    model: str = "gpt-4o-2024-08-06"
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str | None = "OPENAI_API_KEY"
    concurrency: int = 8
    max_retries: int = 6
    timeout: float = 60.0
    mode: str = "logprobs"
    sampled_max_tokens: int = 8
    _key: str | None = field(default=None, init=False, repr=False)

    backend = "http"

    def __post_init__(self) -> None:
        from ..openai_client import make_client

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
        self._client = make_client(self.base_url, api_key_env=self.api_key_env or None, timeout=self.timeout,
                                   max_retries=self.max_retries)
        self._lock = threading.Lock()
        self._sampled = self.mode == "sampled"
        self._saw_multidigit = False
        self._n_logprob_scores = 0

    @property
    def where(self) -> str:
        return self.base_url

    def version(self, kind: str) -> str:
        """Prompt version; ``+sampled`` when sampled parsing was asked for (a coarser, different number)."""
        return super().version(kind) + ("+sampled" if self.mode == "sampled" else "")

    # ------------------------------------------------------------ transport
    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _post(self, payload: dict) -> dict:
        """One chat completion through the SDK (which retries): the body as a dict, or ``_Transient``/``JudgeError``."""
        import openai

        attempts = f"after {self.max_retries + 1} attempts"
        try:
            resp = self._client.chat.completions.create(**payload)
        except openai.APIStatusError as exc:
            detail = self._redact(_body(exc)[:300])
            if exc.status_code == 400 and "logprob" in detail.lower() and payload.get("logprobs"):
                raise _NoLogprobs(detail) from None
            if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                raise _Transient(f"{self.base_url}: request failed {attempts} (HTTP {exc.status_code}: "
                                 f"{detail[:120]})") from None
            raise JudgeError(f"{self.base_url}: HTTP {exc.status_code}: {detail}") from None
        except openai.APIConnectionError as exc:  # also APITimeoutError
            cause = exc.__cause__ or exc
            raise _Transient(f"{self.base_url}: request failed {attempts} ({type(exc).__name__}: "
                             f"{self._redact(str(cause))[:160]})") from None
        except ValueError as exc:  # the SDK could not decode the body
            raise _Transient(f"{self.base_url}: server answered non-JSON ({exc})") from None
        if not hasattr(resp, "model_dump"):
            raise _Transient(f"{self.base_url}: server answered non-JSON: {self._redact(str(resp)[:120])!r}")
        return resp.model_dump()

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
                                    "(coarser scores, marked mode=sampled)", self.base_url)
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
        yield from send_concurrently(lambda item: self._score_one(kind, item), items,
                                     concurrency=self.concurrency, name="judge-http")
        if self._n_logprob_scores >= 20 and not self._saw_multidigit:
            log.warning("%d scores on a 0-100 scale and not one multi-digit token among the top log-probs: "
                        "model %r may split numbers into digits, which makes logprob scores wrong; "
                        "use mode='sampled' (--sampled) for it", self._n_logprob_scores, self.model)


class _NoLogprobs(Exception):
    pass


def _body(exc) -> str:
    """The server's text of an HTTP error (the SDK's message when there is none)."""
    response = getattr(exc, "response", None)
    try:
        return response.text if response is not None and response.text else str(exc)
    except Exception:  # a streamed or closed body
        return str(exc)


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
