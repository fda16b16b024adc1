"""Long commands: outputs checked before compute, progress saved as it is made, and what finished.

* :func:`check_writable` - every command checks its output and cache locations
  (folder can be created, a file written there, some disk space left) before it
  loads a model, so a read-only or full folder fails in a second with the path
  named, not after an hour of compute with a raw ``OSError``.
* :func:`read_partial_jsonl` - commands that write an answer file at the end
  (``generate``) append each finished batch to a progress file first (with
  :func:`persona_probe.io.append_jsonl`), and a re-run reads it back.
* :func:`note_progress` / :func:`progress_notes` - what a command has finished,
  for the one-line message printed on Ctrl-C with the command that resumes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["check_writable", "read_partial_jsonl", "note_progress", "progress_notes", "clear_progress", "MIN_FREE_MB"]

MIN_FREE_MB = 64
_PROGRESS: dict[str, str] = {}


def note_progress(step: str, message: str) -> None:
    """Record what a long command has finished (``"stress": "12 of 60 cells"``), for the Ctrl-C message."""
    _PROGRESS[step] = message


def clear_progress() -> None:
    """Forget the notes (a command starts with none)."""
    _PROGRESS.clear()


def progress_notes() -> list[str]:
    """Everything :func:`note_progress` recorded in this process, oldest first."""
    return [f"{step}: {msg}" for step, msg in _PROGRESS.items()]


def check_writable(path: str | os.PathLike, *, what: str = "output", folder: bool = False,
                   min_free_mb: float = MIN_FREE_MB) -> Path:
    """Fail before any compute when ``path`` (a file, or a folder with ``folder=True``) cannot be written.

    Creates the folder, writes and removes a probe file there, and checks that its disk has at least
    ``min_free_mb`` free. The ``ValueError`` names ``what`` (e.g. ``--out``), the path and the fix.
    """
    path = Path(path)
    target = path if folder else path.parent
    if not folder and path.is_dir():
        raise ValueError(f"{what} {path} is a folder; give a file name")
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=target)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{what} {path} is not writable ({exc.strerror or exc}); choose another location or "
                         f"fix the folder's permissions") from None
    free = shutil.disk_usage(target).free / 2**20
    if free < min_free_mb:
        raise ValueError(f"{what} {path}: only {free:.0f} MiB free on its disk (< {min_free_mb:g} MiB); free some "
                         f"space or choose another location")
    return path


def read_partial_jsonl(path: str | os.PathLike) -> list[dict]:
    """The complete lines of an append-only progress file (:func:`append_jsonl`); ``[]`` when there is none.

    A kill mid-append can leave a torn last line: it is dropped (its work is redone), never parsed as data.
    """
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records
