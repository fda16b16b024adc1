"""One spelling of "which judge" for every command line and config file.

``from_spec`` takes:

- ``"none"``: no judge (``None``; where a judge is optional, e.g. ``axis build``);
- ``"offline"``: the MiniLM classifier (:mod:`.offline`);
- ``"local"`` or ``"local:<HF id or path>"``: a local chat model (:mod:`.local`; the embedded SmolLM2 by default);
- ``"http:<base URL>"``: an OpenAI-compatible server (:mod:`.http`), key from ``$OPENAI_API_KEY``
  (``"http"`` alone: the OpenAI API);
- a mapping ``{"backend": ..., **options}``: the backend's constructor options (the stress config's
  ``judge:`` block, e.g. ``{backend: http, base_url: ..., model: ..., concurrency: 4}``).

An unknown spelling fails at once, listing the known ones.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ..schema import did_you_mean
from .base import JudgeBase

__all__ = ["BACKENDS", "SPELLINGS", "backend_class", "backend_options", "make_judge", "parse_spec", "from_spec",
           "role_judge"]

BACKENDS = ("offline", "http", "local")
SPELLINGS = ("none", "offline", "local[:model]", "http[:<url>]")


def backend_class(backend: str) -> type[JudgeBase]:
    """The judge class of a backend name (imports only that backend's module)."""
    if backend == "http":
        from .http import HTTPJudge

        return HTTPJudge
    if backend == "local":
        from .local import LocalJudge

        return LocalJudge
    if backend == "offline":
        from .offline import OfflineJudge

        return OfflineJudge
    raise ValueError(f"unknown judge backend {backend!r}{did_you_mean(backend, BACKENDS)}")


def backend_options(backend: str) -> list[str]:
    """The constructor options a backend accepts (its dataclass fields)."""
    return [f.name for f in dataclasses.fields(backend_class(backend)) if f.init]


def make_judge(backend: str = "offline", **kwargs: Any) -> JudgeBase:
    """Build a judge by backend name; keyword arguments go to the backend's constructor."""
    return backend_class(backend)(**kwargs)


def _unknown(spec: Any) -> ValueError:
    name = spec.get("backend") if isinstance(spec, Mapping) else str(spec).partition(":")[0]
    close = did_you_mean(name, ("none",) + BACKENDS) if name else ""
    hint = f" ({close[2:]})" if close.startswith("; did you mean") else ""
    return ValueError(f"unknown judge {spec!r}{hint}; use one of {', '.join(SPELLINGS)}, "
                      f"or a mapping with 'backend' (one of {list(BACKENDS)}) and its options")


def parse_spec(spec: str | Mapping[str, Any]) -> dict | None:
    """``make_judge`` keyword arguments for ``spec`` (``{"backend": ..., ...}``); ``None`` for ``"none"``.

    Builds nothing, so configs are checked before any model or key is needed.
    """
    if isinstance(spec, Mapping):
        options = dict(spec)
        if options.get("backend") == "none" and len(options) == 1:
            return None
        if options.get("backend") not in BACKENDS:
            raise _unknown(spec)
        known = backend_options(options["backend"])
        for key in options:
            if key != "backend" and key not in known:
                raise ValueError(f"the {options['backend']} judge has no option {key!r}{did_you_mean(key, known)}")
        return options
    if not isinstance(spec, str):
        raise _unknown(spec)
    name, sep, arg = spec.strip().partition(":")
    if name in ("none", "offline") and not sep:
        return None if name == "none" else {"backend": "offline"}
    if name == "local":
        return {"backend": "local", "source": arg} if arg else {"backend": "local"}
    if name == "http":
        return {"backend": "http", "base_url": arg} if arg else {"backend": "http"}
    raise _unknown(spec)


def from_spec(spec: str | Mapping[str, Any]) -> JudgeBase | None:
    """The judge ``spec`` names (see the module docstring), or ``None`` for ``"none"``."""
    options = parse_spec(spec)
    return None if options is None else make_judge(**options)


def role_judge(judge: JudgeBase):
    """``judge`` as the axis build's role judge: ``(role, description, question, answer) -> Judgement``.

    The build reads ``.score``, and ``.transient``/``.reason`` of a failed request, which it records as a
    failure to retry rather than as an unscored answer.
    """

    def judge_role(role, description, question, answer):
        return judge.score("role", question, answer, role=role, role_description=description)

    judge_role.judge_id = judge.judge_id("role")
    judge_role.where = judge.where
    return judge_role
