"""A sqlite cache of judgements, so re-running an evaluation costs nothing.

Keyed by ``(backend, model, version, kind, question, answer, context)`` --
``version`` is the prompt version for LLM judges and the classifier's training
hash for the offline judge -- hashed into one primary key. Each result is
committed the moment it arrives (WAL journal), so a run killed halfway keeps
every score it finished; ``synchronous=NORMAL`` is durable against a crashed
process, which is the failure that matters here (a power cut may lose the last
few). Transient failures are never stored.

Only the hash of the texts is stored, not the texts: the cache holds no answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Mapping

from .base import Judgement

__all__ = ["JudgeCache", "cache_key", "default_cache_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS judgements (
    key TEXT PRIMARY KEY,
    judge TEXT NOT NULL,
    score REAL,
    reason TEXT,
    label TEXT,
    mass REAL,
    raw TEXT,
    created REAL NOT NULL
)
"""


def default_cache_path() -> Path:
    from persona_probe.io import cache_dir

    return cache_dir("judges") / "judgements.sqlite"


def cache_key(backend: str, model: str, version: str, kind: str, question: str, answer: str,
              context: Mapping[str, str] | None = None) -> str:
    blob = json.dumps([backend, model, version, kind, question, answer, dict(sorted((context or {}).items()))],
                      ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeCache:
    """``get``/``put`` judgements by key. Use from one thread (the batch runner does)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_cache_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except (sqlite3.Error, OSError) as exc:
            raise ValueError(f"judge cache {self.path}: cannot open it ({exc}); give a writable --cache file, "
                             f"or point PERSONA_PROBE_CACHE at a writable folder") from None

    def get(self, key: str) -> Judgement | None:
        row = self._db.execute("SELECT judge, score, reason, label, mass, raw FROM judgements WHERE key = ?",
                               (key,)).fetchone()
        if row is None:
            return None
        judge, score, reason, label, mass, raw = row
        return Judgement(score, reason, judge, label, mass, cached=True, raw=json.loads(raw) if raw else None)

    def put(self, key: str, judgement: Judgement) -> None:
        if judgement.transient:
            return
        self._db.execute(
            "INSERT OR REPLACE INTO judgements VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, judgement.judge, judgement.score, judgement.reason, judgement.label, judgement.mass,
             json.dumps(judgement.raw) if judgement.raw else None, time.time()),
        )
        self._db.commit()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> JudgeCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
