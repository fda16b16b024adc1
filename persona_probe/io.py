"""Files: atomic writes, content hashes, JSONL with file:line errors, tensors.

Every pipeline step in persona-probe writes through these helpers so that a
killed run never leaves a half-written file behind: data goes to a temporary
file in the same folder and is renamed over the target (``os.replace`` is
atomic on POSIX and Windows). Steps are keyed by :func:`content_hash` of their
inputs, so a re-run finds finished work by name and skips it: :func:`cached` is
that pattern, written once.

Our own tensors are stored as safetensors; foreign ``.pt`` files are read with
``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar

import torch

T = TypeVar("T")

__all__ = ["atomic_write", "write_text", "write_json", "read_json", "read_jsonl", "write_jsonl",
           "write_step_jsonl", "read_step_jsonl", "IncompleteStep", "append_jsonl", "content_hash", "save_tensors",
           "load_tensors", "load_pt", "st_metadata", "replacing", "cache_dir", "data_path", "cached", "cached_tensor",
           "load_step_tensors"]


def cache_dir(*parts: str) -> Path:
    """The user cache folder for persona-probe (``$PERSONA_PROBE_CACHE`` overrides)."""
    root = os.environ.get("PERSONA_PROBE_CACHE")
    if root:
        base = Path(root)
    else:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("persona-probe"))
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_path(name: str) -> Path:
    """A file shipped in ``persona_probe/data/`` (roles, questions, labelled answers, prompt sets)."""
    from importlib import resources

    return Path(str(resources.files("persona_probe") / "data" / name))


def _default_mode() -> int:
    # mkstemp creates 0600 files; give results the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _default_mode()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file beside ``path``; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    with replacing(Path(path)) as (fd, tmp):
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[tuple[int, str]]:
    """A temporary file beside ``path`` (its fd and name), renamed over ``path`` when the block succeeds and
    removed when it fails; an OS error names ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _named(exc, path) from None
    try:
        yield fd, tmp
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            raise _named(exc, path) from None
        raise


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``path`` as its file name (a full disk's ENOSPC names no file by itself)."""
    hint = "free some space" if exc.errno == errno.ENOSPC else "check the folder's permissions"
    return OSError(exc.errno, f"{exc.strerror or exc} ({hint}; finished steps are kept)", str(path))


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path) as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=_json_default)
        fh.write("\n")
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); fix or delete the file") from exc


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def read_jsonl(path: str | os.PathLike, *, required: Iterable[str] = ()) -> list[dict]:
    """Read a JSONL file of objects; a bad line raises ``ValueError('file:line: ...')``.

    Blank lines are skipped. ``required`` names keys every record must have.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    records, mark = _read_records(path, tuple(required))
    if mark is not None and mark != len(records):
        raise ValueError(f"{path}: truncated: {len(records)} records, but its completion line says {mark}; "
                         f"delete it and re-run the step that wrote it")
    return records


def _read_records(path: Path, required: tuple = ()) -> tuple[list[dict], int | None]:
    """Every record of a JSONL file and the count of its completion line (``None`` when it has none)."""
    records, mark = [], None
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            if _is_mark(rec):
                mark = rec[STEP_MARK]
                continue
            missing = [k for k in required if k not in rec]
            if missing:
                raise ValueError(f"{path}:{lineno}: missing key(s) {missing}; each line needs {list(required)}")
            records.append(rec)
    return records, mark


class IncompleteStep(ValueError):
    """A step file that is not a finished result (truncated, or without its completion line): redo the step."""


STEP_MARK = "_complete_records"  # the last line of a step file: {"_complete_records": <number of records>}


def _is_mark(rec: dict) -> bool:
    return len(rec) == 1 and STEP_MARK in rec


def write_step_jsonl(path: str | os.PathLike, records: Iterable[Mapping]) -> Path:
    """:func:`write_jsonl` plus a last line counting the records, so a truncated copy is detected and redone."""
    records = list(records)
    with atomic_write(path) as fh:
        for rec in records:
            fh.write(json.dumps(rec, default=_json_default, ensure_ascii=False) + "\n")
        fh.write(json.dumps({STEP_MARK: len(records)}) + "\n")
    return Path(path)


def read_step_jsonl(path: str | os.PathLike, *, expected: int | None = None) -> list[dict]:
    """The records of a step file written by :func:`write_step_jsonl`; :class:`IncompleteStep` if it is not whole.

    A file without the completion line (written before step files had one) is accepted when ``expected``
    is given and its record count matches; otherwise it is incomplete and the step is redone.
    """
    path = Path(path)
    try:
        records, mark = _read_records(path)
    except ValueError as exc:
        raise IncompleteStep(str(exc)) from None
    if mark is None:
        if expected is not None and len(records) == expected:
            return records
        raise IncompleteStep(f"{path}: no completion line and {len(records)} records"
                             + (f" (expected {expected})" if expected is not None else ""))
    if mark != len(records) or (expected is not None and mark != expected):
        raise IncompleteStep(f"{path}: {len(records)} records, but the completion line says {mark}"
                             + (f" and the step expects {expected}" if expected is not None else ""))
    return records


def write_jsonl(path: str | os.PathLike, records: Iterable[Mapping]) -> Path:
    with atomic_write(path) as fh:
        for rec in records:
            fh.write(json.dumps(rec, default=_json_default, ensure_ascii=False) + "\n")
    return Path(path)


def append_jsonl(path: str | os.PathLike, record: Mapping) -> None:
    """Append one line and fsync, for logs that must survive a crash line by line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=_json_default, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def content_hash(*objs: Any, length: int = 16) -> str:
    """A stable hex digest of JSON-able objects, tensors and file contents.

    Tensors hash by dtype, shape and bytes; ``Path`` objects by file contents.
    """
    h = hashlib.sha256()
    for obj in objs:
        _update_hash(h, obj)
    return h.hexdigest()[:length]


def _update_hash(h: hashlib._Hash, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"tensor:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, Path):
        h.update(b"file:")
        with obj.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for item in obj:
            _update_hash(h, item)
        h.update(b"]")
    elif isinstance(obj, Mapping):
        h.update(b"{")
        for key in sorted(obj, key=str):
            h.update(str(key).encode() + b":")
            _update_hash(h, obj[key])
        h.update(b"}")
    else:
        h.update(json.dumps(obj, sort_keys=True, default=_json_default).encode())


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor],
                 metadata: Mapping[str, Any] | None = None) -> Path:
    """Write tensors as safetensors, atomically. Metadata values are JSON-encoded strings."""
    from safetensors.torch import save

    meta = st_metadata(metadata)
    blob = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=meta or None)
    with atomic_write(path, "wb") as fh:
        fh.write(blob)
    return Path(path)


def st_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """safetensors metadata is str -> str: other values are stored as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v, default=_json_default) for k, v in (metadata or {}).items()}


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file: ``(tensors, metadata)``."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with safe_open(str(path), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    return tensors, meta


def numpy_safe_globals() -> list:
    """Exactly numpy's scalar and dtype constructors, for ``torch.serialization.safe_globals``.

    A published capping config may hold numpy scalars (``numpy.float64`` caps, ``numpy.int64`` layers); unpickling
    one calls ``numpy._core.multiarray.scalar(dtype, bytes)`` (``numpy.core...`` in files written by numpy 1.x)
    and ``numpy.dtype``. Nothing else is allowed: no arrays, no other callables.
    """
    import numpy as np

    try:
        scalar = np._core.multiarray.scalar
    except AttributeError:  # numpy 1.x
        scalar = np.core.multiarray.scalar
    allowed = [scalar, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype]
    dtypes = getattr(np, "dtypes", None)  # the per-type dtype classes (numpy >= 1.25)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType")
                    and name[:-5].rstrip("0123456789") in ("Bool", "Int", "UInt", "Float", "Complex")]
    return allowed


def load_pt(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` (numpy scalars allowed) with an error that says what to do."""
    import pickle
    import re

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with torch.serialization.safe_globals(numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, TypeError) as exc:
        found = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", str(exc))
        why = (f"it would call {found.group(1)}, which is not a tensor, number, string, list, dict or numpy scalar"
               if found else "it is not a torch file of tensors, numbers, strings, lists and dicts "
                             f"({type(exc).__name__})")
        raise ValueError(f"{path}: could not be read safely: {why}. persona-probe never unpickles arbitrary "
                         f"objects; re-save the file with plain tensors, numbers, dicts and lists") from None


def cached(path: str | os.PathLike, key: Any, compute: Callable[[], T], load: Callable[[Path], T],
           save: Callable[[Path, T], Any] | None = None, *, key_of: Callable[[Path], Any] | None = None) -> T:
    """``load(path)`` when ``path`` holds the result for ``key``; else compute it, ``save`` it and return it.

    ``key=None``: the key is part of ``path``'s name (``step-<content_hash>.ext``), so an existing
    file is the finished result. Otherwise ``key_of(path)`` reads the key the file was made for
    (e.g. a manifest's ``"key"``) and a different one means recompute. ``save(path, value)`` must
    write atomically (the helpers above do); ``save=None`` when ``compute`` writes ``path`` itself
    (a folder renamed into place, several files). A failure raises before anything is saved, so
    it is never stored as a result. A ``load`` that raises :class:`IncompleteStep` (a truncated step file)
    makes the step run again.
    """
    path = Path(path)
    if key is not None and key_of is None:
        raise ValueError(f"{path}: a key that is not part of the file name needs key_of to read the stored key")
    if path.exists() and (key is None or key_of(path) == key):
        try:
            return load(path)
        except IncompleteStep as exc:  # a truncated or unfinished step file is redone, never used
            logging.getLogger(__name__).warning("%s; redoing this step", exc)
    value = compute()
    if save is not None:
        save(path, value)
    return value


def load_step_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """:func:`load_tensors` of a step file; a truncated or corrupt one raises :class:`IncompleteStep` (redo it)."""
    try:
        return load_tensors(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # safetensors raises its own error type on a short or garbled file
        raise IncompleteStep(f"{path}: unreadable safetensors step file ({type(exc).__name__}: {exc})") from None


def cached_tensor(path: str | os.PathLike, compute: Callable[[], torch.Tensor], *, name: str = "acts",
                  metadata: Mapping[str, Any] | None = None) -> torch.Tensor:
    """:func:`cached` for one tensor in a safetensors file (key in the name): ``{name: tensor}`` + ``metadata``."""
    return cached(path, None, compute, load=lambda p: load_step_tensors(p)[0][name],
                  save=lambda p, t: save_tensors(p, {name: t}, metadata))
