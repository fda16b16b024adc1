"""Which model a rollout server serves, matched against the model we extract activations from.

The served id that ``/v1/models`` lists must equal one of the names our model is known by
(its configured name, or the folder it was loaded from), or vLLM's ``root`` for it must.
A server that names the model otherwise is accepted only when the generator spec names the
served id explicitly (``model:``), and then, where the served model's ``config.json`` can be
read here (a local folder, or the HF cache), its architecture must equal ours; where it
cannot, a warning says the identity was taken on trust. Anything else is an error.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["ModelIdentity", "RolloutServerError", "match_served_model", "norm_name"]

_ARCH_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size", "intermediate_size",
              "num_attention_heads", "num_key_value_heads")


class RolloutServerError(RuntimeError):
    """The rollout server is unreachable, serves another model, or refused a request."""


def norm_name(name: str) -> str:
    """A local path resolved (symlinks, trailing slash), anything else as it is."""
    return os.path.realpath(name) if os.path.exists(name) else name.rstrip("/")


def _arch(config: Any) -> dict | None:
    """The architecture fields of a config (an HF config, a dict, or a folder's config.json)."""
    if config is None:
        return None
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    d = d.get("text_config") or d
    return {k: d[k] for k in _ARCH_KEYS if d.get(k) is not None}


def _config_of(name: str) -> dict | None:
    """``config.json`` of a local folder, or of an HF id in the local cache; ``None`` when neither."""
    path = Path(name) / "config.json"
    if path.is_file():
        return _arch(json.loads(path.read_text()))
    try:
        from transformers import AutoConfig

        return _arch(AutoConfig.from_pretrained(name, local_files_only=True))
    except Exception:  # not cached, not an id: nothing to compare with
        return None


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """The names a model is known by and its architecture, to match a served model against."""

    names: tuple[str, ...]
    config: dict | None = None

    @classmethod
    def of(cls, model_or_source: Any) -> ModelIdentity:
        """From a ``ProbeModel`` or a ``load_model`` source (reads no weights)."""
        if isinstance(model_or_source, str):
            return cls._of_source(model_or_source)
        model = model_or_source
        cfg = getattr(model.hf, "config", None) or getattr(getattr(model.nnsight, "_model", None), "config", None)
        names = [model.name, getattr(cfg, "_name_or_path", None)]
        return cls(tuple(dict.fromkeys(norm_name(n) for n in names if n)), _arch(cfg))

    @classmethod
    def _of_source(cls, source: str) -> ModelIdentity:
        from .embedded import EMBEDDED_NAME, embedded_dir
        from .loading import NDIF_PREFIX

        if source == "embedded":
            folder = str(embedded_dir())
            return cls((EMBEDDED_NAME, norm_name(folder)), _config_of(folder))
        name = source[len(NDIF_PREFIX):] if source.startswith(NDIF_PREFIX) else source
        return cls(tuple(dict.fromkeys([norm_name(name), name])), _config_of(name))


def match_served_model(served: dict[str, dict], ident: ModelIdentity, model: str | None, url: str) -> str:
    """The served id to request for ``ident``, from ``served`` (``/v1/models``: id -> entry); else an error.

    ``model``: the served id the generator spec names explicitly (``None``: match by name).
    """
    ours = set(ident.names)
    by_name = [sid for sid, e in served.items()
               if norm_name(sid) in ours or (e.get("root") and norm_name(str(e["root"])) in ours)]
    if model is None:
        if not by_name:
            raise RolloutServerError(f"{url} serves {sorted(served)}, not the model we extract from "
                                     f"({', '.join(ident.names)}); serve that model, or give the served id "
                                     f"as `model:` in the generator spec if the server names it otherwise")
        base = by_name[0]
    else:
        if model not in served:
            raise RolloutServerError(f"{url} serves {sorted(served)}; the generator spec names "
                                     f"model {model!r}, which it does not list")
        base = model
        if base not in by_name:
            _compare_configs(url, base, served[base], ident)
    return base


def _compare_configs(url: str, base: str, entry: dict, ident: ModelIdentity) -> None:
    theirs = _config_of(str(entry.get("root") or base))
    if theirs is None or ident.config is None:
        log.warning("cannot read the config of served model %r here; trusting the generator spec that it is "
                    "%s", base, ident.names[0])
        return
    shared = set(theirs) & set(ident.config)
    diff = {k: (theirs[k], ident.config[k]) for k in sorted(shared) if theirs[k] != ident.config[k]}
    if diff or not shared:
        raise RolloutServerError(f"{url} serves {base!r}, whose architecture differs from the model we "
                                 f"extract from ({ident.names[0]}): {diff or 'no common fields'} "
                                 f"(served, ours); serve the same weights")
