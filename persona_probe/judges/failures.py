"""Failed judgements: counted, summarised, and never mistaken for scores.

A judgement that failed for a reason a retry may fix (a dead or overloaded
server, a body that was not a chat completion) comes back with
``transient=True`` and its reason. The sqlite cache never keeps it, every
result file marks it as failed rather than as a score, and every command
retries it on its next run. When more than ``max_share`` of a run's
judgements failed, the run ends non-zero with :class:`JudgeFailures`, whose
message says how many failed, the commonest error and which server.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Iterable

from .base import Judgement

__all__ = ["JudgeFailures", "FailureTally", "failure_reason"]


class JudgeFailures(RuntimeError):
    """More judgements failed than a run tolerates; re-running retries only those."""


def failure_reason(judgement: Judgement) -> str | None:
    """The reason of a failed (transient) judgement, ``None`` for a score or a real no-score verdict."""
    return judgement.reason if judgement.transient else None


@dataclasses.dataclass
class FailureTally:
    """Failed judgements of one run, by reason, against everything judged."""

    where: str
    total: int = 0
    reasons: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def add(self, judgements: Iterable[Judgement]) -> None:
        for j in judgements:
            self.total += 1
            if j.transient:
                self.reasons[_short(j.reason or "unknown error")] += 1

    def add_reasons(self, total: int, reasons: Iterable[str | None]) -> None:
        """Count ``total`` judgements of which the non-``None`` ``reasons`` failed (rows read back from files)."""
        self.total += total
        for r in reasons:
            if r is not None:
                self.reasons[_short(r)] += 1

    @property
    def failed(self) -> int:
        return sum(self.reasons.values())

    def share(self) -> float:
        return self.failed / self.total if self.total else 0.0

    def summary(self) -> str:
        if not self.failed:
            return f"all {self.total} judgements from {self.where} succeeded"
        reason, count = self.reasons.most_common(1)[0]
        return (f"{self.failed} of {self.total} judgements failed ({self.share():.1%}) at {self.where}; "
                f"most common error ({count}x): {reason}")

    def as_dict(self) -> dict:
        return {"where": self.where, "total": self.total, "failed": self.failed,
                "reasons": dict(self.reasons.most_common(5))}

    def check(self, max_share: float, rerun: str = "re-run the same command") -> None:
        """Raise :class:`JudgeFailures` when more than ``max_share`` of the judgements failed."""
        if self.failed and self.share() > max_share:
            raise JudgeFailures(f"{self.summary()}. Failed judgements are recorded as failures, not scores; "
                                f"{rerun} to retry only those once the server is back (finished scores are kept), "
                                f"or allow a share with --max-judge-failures / max_judge_failures "
                                f"(now {max_share:g})")


def _short(reason: str) -> str:
    return reason if len(reason) <= 200 else reason[:197] + "..."
