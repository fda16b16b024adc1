"""Start and stop ``transformers serve`` on loopback: for the server tests, the rollout benchmark and a laptop run.

``transformers serve`` (``pip install 'transformers[serving]'``) is an OpenAI-compatible server
in the transformers package; pinned to one model folder it lists that folder as the served id.
:func:`transformers_server` starts it on a free port of ``127.0.0.1``, waits until ``/health``
answers, yields the base URL, and stops the process when the block ends, also on an error.
On a GPU machine use vLLM or SGLang instead; they speak the same API.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

__all__ = ["free_port", "transformers_server"]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def transformers_server(model_dir: str | os.PathLike, *, port: int | None = None, continuous_batching: bool = False,
                        dtype: str = "auto", startup_timeout: float = 180.0,
                        extra_args: tuple[str, ...] = ()) -> Iterator[str]:
    """``transformers serve <model_dir>`` on ``127.0.0.1``; yields ``http://127.0.0.1:<port>/v1``.

    The server's output goes to a temporary log, quoted in the error when it does not come up.
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model_dir), "--host", "127.0.0.1",
           "--port", str(port), "--dtype", dtype, "--log-level", "warning", *extra_args]
    if continuous_batching:
        cmd.append("--continuous-batching")
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "NO_PROXY": "127.0.0.1,localhost"}
    with tempfile.NamedTemporaryFile("w+", prefix="transformers-serve-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + startup_timeout
        while not _healthy(f"http://127.0.0.1:{port}/health"):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"`transformers serve` did not come up on port {port} "
                                   f"({'exited ' + str(proc.returncode) if proc.poll() is not None else 'timeout'}):"
                                   f"\n{tail}")
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_path.unlink(missing_ok=True)
