"""The judge interface: what every backend returns and the little they share.

A judge turns ``(kind, question, answer, context)`` into a :class:`Judgement`:
a score, or ``score=None`` with a reason. "No score" is never silently a zero:
a refusal to judge, an unparsable answer or a failed request are all kept
apart from real low scores, because an EM rate computed over zeros that were
really failures would be wrong in the direction that matters.

Every judgement names its judge (``backend:model:kind@version``) so a result
file always says what produced each number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from .prompts import PROMPT_VERSION, SCALES

__all__ = ["Judgement", "Item", "JudgeBase", "JudgeError", "MissingAPIKey", "judge_id"]


class JudgeError(RuntimeError):
    """A judge cannot work at all (bad URL, rejected key, unknown model): stop, don't guess."""


class MissingAPIKey(JudgeError):
    """Raised when a judge is built, before any request is made."""


@dataclass(frozen=True)
class Judgement:
    """One judge verdict.

    ``score`` is ``None`` exactly when there is no score; ``reason`` then says why.
    ``label`` holds a special verdict (``CODE``, ``REFUSAL``). ``mass`` is the
    probability the judge put on valid integers (logprob judges only).
    ``transient`` marks failures a retry may fix (network, 5xx after all
    retries); those are never cached, so a re-run asks again.
    """

    score: float | None
    reason: str | None = None
    judge: str = ""
    label: str | None = None
    mass: float | None = None
    transient: bool = False
    cached: bool = False
    raw: dict | None = None

    def __post_init__(self) -> None:
        if self.score is None and not self.reason:
            raise ValueError("a Judgement without a score needs a reason")


@dataclass(frozen=True)
class Item:
    """What is judged: one answer to one question, plus kind-specific context."""

    question: str
    answer: str
    context: Mapping[str, str] = field(default_factory=dict)


def judge_id(backend: str, model: str, kind: str, version: str) -> str:
    return f"{backend}:{model}:{kind}@{version}"


class JudgeBase:
    """Shared plumbing. Backends set ``backend`` and ``model`` and implement ``score_many``.

    ``score_many(kind, items)`` yields ``(index, Judgement)`` as results finish,
    in any order, so the caller can cache each one the moment it exists.
    """

    backend: str = "?"
    model: str = "?"

    def version(self, kind: str) -> str:
        """What, besides backend and model, decides the score: the prompt version by default."""
        check_kind(kind)
        return PROMPT_VERSION[kind]

    def judge_id(self, kind: str) -> str:
        return judge_id(self.backend, self.model, kind, self.version(kind))

    @property
    def where(self) -> str:
        """Where judgements come from, for failure summaries (a server URL for the http judge)."""
        return f"{self.backend}:{self.model}"

    def score_many(self, kind: str, items: Sequence[Item]) -> Iterator[tuple[int, Judgement]]:
        raise NotImplementedError

    def score(self, kind: str, question: str, answer: str, **ctx: Any) -> Judgement:
        """Score one answer (no cache; use :func:`persona_probe.judges.score_items` for that)."""
        [(_, result)] = list(self.score_many(kind, [Item(question, answer, ctx)]))
        return result

    def no_score(self, kind: str, reason: str, **kw: Any) -> Judgement:
        return Judgement(None, reason, self.judge_id(kind), **kw)


def check_kind(kind: str) -> None:
    if kind not in SCALES:
        raise ValueError(f"unknown judge kind {kind!r}; choose from {list(SCALES)}")
