"""Safetensors files written row by row and read a block at a time: tensors larger than memory.

The default-prompt rollouts' per-response activations of a paper-scale axis build are
``[n, n_layers, d]`` (1,200 x 64 x 5120 float32, 1.6 GB for Qwen3-32B); the build writes
them one row at a time (:class:`TensorFileWriter`) and readers take a block of rows at a
time (:func:`iter_tensor_rows`). The files are ordinary safetensors: :func:`persona_probe.io.load_tensors`
reads them whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from .io import FILE_MODE, replacing, st_metadata

__all__ = ["TensorFileWriter", "iter_tensor_rows", "link_or_copy"]

_ST_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.float16: "F16",
              torch.bfloat16: "BF16", torch.int32: "I32"}


class TensorFileWriter:
    """A safetensors file written row by row, for tensors too large to hold: ``[n, ...]`` known up front.

    The header (names, shapes, dtypes, metadata) is written first and each ``write(name, row,
    value)`` puts one row at its offset, so memory is one row, not the tensor. The file is a
    temporary beside ``path`` until :meth:`close` checks that every row was written, and is
    then renamed into place (atomic, like every step file); an exception removes it. Read it
    with :func:`load_tensors` or, a block of rows at a time, :func:`iter_tensor_rows`.
    """

    def __init__(self, path: str | os.PathLike, shapes: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
                 metadata: Mapping[str, Any] | None = None):
        self.path = Path(path)
        header: dict[str, Any] = {}
        self._layout: dict[str, tuple[int, int, tuple[int, ...], torch.dtype]] = {}
        offset = 0
        for name, (shape, dtype) in shapes.items():
            if dtype not in _ST_DTYPES or not shape:
                raise ValueError(f"{name}: need a shape [n, ...] and one of {list(_ST_DTYPES)}, got {shape}, {dtype}")
            row = dtype.itemsize * int(torch.Size(shape[1:]).numel())
            header[name] = {"dtype": _ST_DTYPES[dtype], "shape": list(shape), "data_offsets": [offset,
                                                                                              offset + row * shape[0]]}
            self._layout[name] = (offset, row, tuple(shape), dtype)
            offset += row * shape[0]
        meta = st_metadata(metadata)
        if meta:
            header["__metadata__"] = meta
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)
        self._data_start = 8 + len(blob)
        self._done = {name: torch.zeros(shape[0], dtype=torch.bool) for name, (shape, _) in shapes.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._fh = os.fdopen(fd, "wb")
        self._fh.write(len(blob).to_bytes(8, "little") + blob)
        self._fh.truncate(self._data_start + offset)

    def write(self, name: str, row: int, value: torch.Tensor) -> None:
        start, size, shape, dtype = self._layout[name]
        t = value.detach().to("cpu", dtype).contiguous()
        if tuple(t.shape) != shape[1:]:
            raise ValueError(f"{name}: row of shape {tuple(t.shape)}, expected {shape[1:]}")
        self._fh.seek(self._data_start + start + row * size)
        self._fh.write(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        self._done[name][row] = True

    def close(self) -> Path:
        missing = {name: int((~done).sum()) for name, done in self._done.items() if not done.all()}
        if missing:
            self.abort()
            raise RuntimeError(f"{self.path}: rows never written {missing}; the file was not kept")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.chmod(self._tmp, FILE_MODE)
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

    def __enter__(self) -> TensorFileWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def iter_tensor_rows(path: str | os.PathLike, name: str, block: int = 256) -> Iterator[torch.Tensor]:
    """``[block, ...]`` slices of tensor ``name`` along its first dimension, read lazily (one block in memory)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        sl = fh.get_slice(name)
        n = sl.get_shape()[0]
        for start in range(0, n, block):
            yield sl[start:min(start + block, n)]


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Put ``src``'s content at ``dst`` atomically: a hard link where the file system allows, else a copy."""
    import shutil

    src, dst = Path(src), Path(dst)
    with replacing(dst) as (fd, tmp):
        os.close(fd)
        os.unlink(tmp)  # os.link will not overwrite: free the name
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    return dst
