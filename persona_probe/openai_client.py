"""One way to build an ``openai.OpenAI`` client for any OpenAI-compatible server.

Used by the rollout client (:mod:`persona_probe.rollouts`) and the HTTP judge. The SDK does
the transport: connection pooling, timeouts, and retries with exponential backoff and jitter
on connection errors, 408/409/429 and 5xx (honouring ``Retry-After``). This module adds
two things the SDK leaves to the caller:

- the key comes from a named environment variable, and a missing key fails here, before any
  request, naming the variable; ``api_key_env=None`` is a server without authentication
  (a local vLLM, ``transformers serve``);
- a loopback server (``localhost``, ``127.0.0.1``, ``::1``) is reached directly, never
  through an ``HTTP(S)_PROXY`` from the environment, which would not know the local host.
"""

from __future__ import annotations

import os
import urllib.parse
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, Callable, Iterator, Sequence

__all__ = ["make_client", "LOOPBACK_HOSTS", "is_loopback", "send_concurrently"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_NO_KEY = "not-needed"  # the SDK insists on a key; servers without authentication ignore it


def is_loopback(base_url: str) -> bool:
    return (urllib.parse.urlsplit(base_url).hostname or "") in LOOPBACK_HOSTS


def make_client(base_url: str, *, api_key_env: str | None, timeout: float, max_retries: int):
    """An ``openai.OpenAI`` for ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``).

    ``timeout`` is seconds per request; ``max_retries`` how often the SDK retries a
    transient failure before raising.
    """
    import openai

    if not base_url or urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
        raise ValueError(f"base URL {base_url!r} must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1)")
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    key = _NO_KEY
    if api_key_env:
        key = os.environ.get(api_key_env, "").strip()
        if not key:
            raise ValueError(f"${api_key_env} is unset or empty; export the server's API key there, or set "
                             f"api_key_env to null for a server without authentication")
    http_client = openai.DefaultHttpxClient(trust_env=False) if is_loopback(base_url) else None
    return openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=max_retries,
                         http_client=http_client)


def send_concurrently(fn: Callable[[Any], Any], items: Sequence[Any], *, concurrency: int,
                      name: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(position in items, fn(item))`` as requests finish, ``concurrency`` at a time.

    On the first failure nothing new is sent, but what is already in flight is still handed over (so
    the caller can cache it) before the error is raised.
    """
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name)
    error: BaseException | None = None
    try:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        remaining = set(futures)
        while remaining:
            done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
            for fut in done:
                if fut.cancelled():
                    continue
                if fut.exception() is not None:
                    error = error or fut.exception()
                    for other in remaining:
                        other.cancel()
                    continue
                yield futures[fut], fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if error is not None:
        raise error
