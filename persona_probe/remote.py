"""Running the core path on NDIF (remote nnsight).

Every ``ProbeModel`` trace passes ``model.remote`` to nnsight: ``False`` runs
locally, ``True`` ships the request to NDIF, ``"local"`` serializes the request
exactly as for NDIF and runs it in-process (what CI uses; see
``tests/test_remote_local.py``). What runs inside a trace uses only torch (the
math lives in :mod:`persona_probe.edits`, which imports nothing else) and only
reduced results come back: pooled ``[b, n_layers, d]`` activations, the
requested layers of one conversation, or generated token ids.

Helpers here:

* :func:`ndif_api_key` - the key from ``NDIF_API_KEY`` (clear error when unset;
  the key is never logged).
* :func:`check_remote_model` - a clear ``ValueError`` when NDIF does not run a model.
* :func:`register_remote_code` - ship :mod:`persona_probe.edits` by value with
  every request (NDIF has no ``persona_probe`` installed).

A weightless ``ProbeModel`` for a model NDIF hosts is ``load_model("ndif:<hf id>")``
(:func:`persona_probe.loading.remote_model`). This module imports only
:mod:`persona_probe.edits`, so loading and the model may import it.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

__all__ = ["ENV_KEY", "ndif_api_key", "check_remote_model", "register_remote_code"]

ENV_KEY = "NDIF_API_KEY"
_REGISTERED = False


def ndif_api_key(*, configure: bool = True) -> str:
    """The NDIF API key from ``$NDIF_API_KEY``; also hands it to nnsight's config.

    Raises ``RuntimeError`` naming the variable when it is unset or blank. The key
    itself never appears in messages or logs.
    """
    key = (os.environ.get(ENV_KEY) or "").strip()
    if not key:
        raise RuntimeError(
            f"remote (NDIF) runs need an API key: set the {ENV_KEY} environment variable "
            "(get a key at https://login.ndif.us). For a dry run without NDIF use remote='local'."
        )
    if configure:
        from nnsight import CONFIG

        CONFIG.API.APIKEY = key  # in memory only; nothing is written to disk
    log.info("using the NDIF API key from $%s (%d characters)", ENV_KEY, len(key))
    return key


def check_remote_model(name: str, *, revision: str = "main", is_running=None) -> None:
    """Raise ``ValueError`` unless NDIF is running ``name`` now.

    Uses ``nnsight.is_model_running`` (network: NDIF status + the HF hub to
    canonicalize the id). ``is_running`` replaces it in tests.
    """
    if is_running is None:
        from nnsight import is_model_running as is_running
    try:
        running = bool(is_running(name, revision=revision))
    except Exception as exc:  # hub lookup of an unknown id raises
        raise ValueError(f"cannot check whether NDIF hosts {name!r}: {type(exc).__name__}: {exc}") from exc
    if not running:
        raise ValueError(
            f"NDIF is not running {name!r} (revision {revision!r}), or the service is unreachable. "
            "See the hosted models with `python -c 'import nnsight; print(nnsight.status())'`; "
            "NDIF hosts e.g. meta-llama/Llama-3.3-70B-Instruct. Run other models locally "
            "(load_model(..., device_map='auto'))."
        )


def register_remote_code() -> None:
    """Ship :mod:`persona_probe.edits` (the intervention math) by value with remote requests. Idempotent."""
    global _REGISTERED
    if _REGISTERED:
        return
    import nnsight

    from . import edits

    nnsight.register(edits)
    _REGISTERED = True
