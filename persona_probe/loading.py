"""``load_model``: the embedded default, an HF id or local path, a model you built, or ``ndif:<hf id>``.

Offline machines cannot reach a model hub, so an HF id must already be in the
local HF cache; the error says how to fix it when it is not. A LoRA adapter
(an organism) is merged into the weights after loading (``adapter_mode="merge"``,
the default for local weights), or applied as graph edits in every trace
(``adapter_mode="edit"``, :class:`persona_probe.lora.LoraEdit`; the only way on
NDIF, which serves base weights). Either way module paths stay the base model's,
so the same layer indices and interventions apply to base and organism alike.
``ndif:<hf id>`` builds a weightless model whose traces run on NDIF
(:func:`remote_model`); local and remote models go through the same
:func:`_wrap`, so they differ only in where the weights are.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import torch

from .embedded import EMBEDDED_NAME, embedded_cache_path, embedded_dir
from .families import KNOWN_DIMS, family_for, probe_system_support
from .lora import DEFAULT_MAX_ADAPTER_MB, LoraEdit, check_payload, payload_nbytes
from .model import ProbeModel
from .remote import check_remote_model, ndif_api_key, register_remote_code

log = logging.getLogger(__name__)

__all__ = ["load_model", "wrap_model", "remote_model", "model_dims", "with_lora_edit", "NDIF_PREFIX"]


def _default_device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _default_dtype(dtype, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        try:
            return getattr(torch, dtype)
        except AttributeError:
            raise ValueError(f"unknown dtype {dtype!r}; use e.g. 'float32' or 'bfloat16'") from None
    return dtype


NDIF_PREFIX = "ndif:"
ADAPTER_MODES = ("merge", "edit")


def load_model(
    source: Any = "embedded",
    *,
    adapter: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    device_map: str | dict | None = None,
    revision: str | None = None,
    remote: bool | str = False,
    adapter_mode: str = "merge",
    max_adapter_mb: float | None = DEFAULT_MAX_ADAPTER_MB,
) -> ProbeModel:
    """Load a chat model for tracing.

    ``source``: ``"embedded"`` (SmolLM2-135M-Instruct, offline), an HF repo id
    or local path, or a ``(hf_model, tokenizer)`` pair. ``adapter``: a peft
    LoRA folder, merged into the weights (``adapter_mode="merge"``) or applied
    as edits in every trace (``"edit"``; always for ``ndif:``). A remote model
    ships the edits with each request, so an adapter above ``max_adapter_mb``
    (in the model's dtype; ``None``: no limit) fails here. ``device_map="auto"`` spreads a large model over
    several GPUs (weights in ``dtype``, intervention math stays float32).
    ``remote``: passed to every nnsight trace (``True`` for NDIF, ``"local"``
    to run the serialized request in-process). ``"ndif:<hf id>"`` as the source
    is a model run on NDIF (no local weights; see :func:`remote_model`).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if adapter_mode not in ADAPTER_MODES:
        raise ValueError(f"adapter_mode must be one of {ADAPTER_MODES}, got {adapter_mode!r}")
    edit = LoraEdit.from_folder(adapter) if adapter is not None and (
        adapter_mode == "edit" or (isinstance(source, str) and source.startswith(NDIF_PREFIX))) else None
    if isinstance(source, str) and source.startswith(NDIF_PREFIX):
        model = remote_model(source[len(NDIF_PREFIX):], revision=revision or "main")
        return model if edit is None else with_lora_edit(model, edit, max_adapter_mb=max_adapter_mb)

    if isinstance(source, tuple):
        if len(source) != 2:
            raise ValueError("pass (hf_model, tokenizer) as a pair")
        hf, tok = source
        name = getattr(hf.config, "name_or_path", None) or type(hf).__name__
    else:
        if not isinstance(source, (str, os.PathLike)):
            raise ValueError("source must be 'embedded', an HF id, a local path or (model, tokenizer); "
                             f"got {type(source).__name__}")
        path = embedded_dir() if source == "embedded" else source
        name = EMBEDDED_NAME if source == "embedded" else str(source)
        dev = _default_device(device)
        kwargs: dict[str, Any] = {"dtype": _default_dtype(dtype, dev), "revision": revision}
        if device_map is not None:
            kwargs["device_map"] = device_map
        try:
            tok = AutoTokenizer.from_pretrained(path, revision=revision)
            hf = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        except OSError as exc:
            local = Path(path).exists()
            hint = ("the folder does not hold a transformers checkpoint (config.json + weights)" if local else
                    "it is not a local folder and not in the local HF cache; download it on a machine with network "
                    "(`huggingface-cli download ID`) or pass a local path")
            raise ValueError(f"cannot load model {name!r}: {hint} ({exc})") from exc
        if device_map is None:
            hf = hf.to(dev)
    if adapter is not None and edit is None:
        hf = _merge_adapter(hf, adapter)
    model = wrap_model(hf, tok, name=name, adapter=str(adapter) if edit is None and adapter is not None else None,
                       remote=remote)
    return model if edit is None else with_lora_edit(model, edit, max_adapter_mb=max_adapter_mb)


def with_lora_edit(model: ProbeModel, edit: LoraEdit, *, max_adapter_mb: float | None = DEFAULT_MAX_ADAPTER_MB
                   ) -> ProbeModel:
    """``model`` with ``edit`` applied in every trace (bound to its blocks, in its dtype, on its layers' devices).

    A remote model ships the edit with each request: above ``max_adapter_mb`` this fails before any request.
    """
    if model.lora is not None:
        raise ValueError(f"{model.name} already carries the adapter {model.adapter}; load the base model")
    blocks = model.torch_blocks()
    dtype = next(blocks.parameters()).dtype
    bound = edit.bind(blocks, blocks_path=model.family.layers_path, dtype=dtype, devices=model.layer_devices())
    nbytes = payload_nbytes(bound)
    if model.remote:
        check_payload(nbytes, max_adapter_mb, edit.source, dtype)
    log.info("adapter %s applied as edits: rank %d, %d modules on layers %s, %.2f MB in %s%s", edit.source,
             edit.rank, len(edit.modules), edit.layers, nbytes / 2**20, dtype,
             " (shipped with every request)" if model.remote else "")
    return dataclasses.replace(model, lora=bound, adapter=edit.source)


def model_dims(source: str, *, revision: str | None = None) -> tuple[int, int] | None:
    """``(n_layers, d_model)`` of a model from its config alone (no weights), to check a config before loading.

    ``"embedded"``: the cached checkpoint's config (the known SmolLM2 sizes before the first build); a local
    folder: its ``config.json``; an HF id or ``ndif:<id>``: the local HF cache, else the sizes of the paper's
    models (:data:`~persona_probe.families.KNOWN_DIMS`). ``None`` (with a warning) when nothing says.
    """
    from transformers import AutoConfig

    name = source[len(NDIF_PREFIX):] if source.startswith(NDIF_PREFIX) else source
    if name == "embedded":
        folder = embedded_cache_path()
        path, name = (folder if (folder / "config.json").exists() else None), EMBEDDED_NAME
    else:
        path = name
        if name.startswith(("/", ".", "~")) and not Path(name).expanduser().exists():
            raise ValueError(f"model {source!r}: no such folder; give a local checkpoint folder, an HF id in the "
                             f"local cache, 'embedded' or ndif:<hf id>")
    config = None
    if path is not None:
        try:
            config = AutoConfig.from_pretrained(path, revision=revision, local_files_only=True)
        except (OSError, ValueError) as exc:
            if Path(str(path)).exists():
                raise ValueError(f"model {source!r}: {path} holds no readable config.json ({exc})") from None
    if config is not None:
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        return int(config.num_hidden_layers), int(config.hidden_size)
    if name in KNOWN_DIMS:
        return KNOWN_DIMS[name]
    log.warning("model %r: no config.json on this machine and not one of %s; layer ranges are checked when the "
                "model loads, not now", source, sorted(KNOWN_DIMS))
    return None


def _merge_adapter(hf, adapter) -> Any:
    from peft import PeftModel

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").exists():
        raise ValueError(f"{adapter} is not a peft adapter folder (no adapter_config.json)")
    log.info("merging adapter %s", adapter)
    return PeftModel.from_pretrained(hf, str(adapter)).merge_and_unload()


def wrap_model(hf, tokenizer, *, name: str | None = None, adapter: str | None = None,
               remote: bool | str = False) -> ProbeModel:
    """Wrap an already-loaded HF causal LM and its tokenizer."""
    from nnsight import TransformersModel

    hf.eval()
    return _wrap(TransformersModel(hf, tokenizer=tokenizer), tokenizer, hf.config, name=name, hf=hf,
                 adapter=adapter, remote=remote)


def remote_model(name: str, *, revision: str = "main", check: bool = True, tokenizer: Any = None) -> ProbeModel:
    """A ``ProbeModel`` whose traces run on NDIF: no local weights (meta device); ``load_model("ndif:<name>")``.

    Needs the network (hub config + tokenizer, NDIF status) and ``NDIF_API_KEY``.
    Not exercised offline; the same trace code is tested with ``remote="local"``.
    """
    from nnsight import TransformersModel
    from transformers import AutoTokenizer

    ndif_api_key()
    if check:
        check_remote_model(name, revision=revision)
    register_remote_code()
    tok = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(name, revision=revision)
    nn_model = TransformersModel(name, tokenizer=tok, revision=revision)  # meta weights; not dispatched
    return _wrap(nn_model, tok, nn_model._model.config, name=name, hf=None, adapter=None, remote=True)


def _wrap(nn_model, tokenizer, config, *, name: str | None, hf, adapter: str | None,
          remote: bool | str) -> ProbeModel:
    """The one place a ``ProbeModel`` is built: left padding, the family's quirks, sizes from the config."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    family = probe_system_support(tokenizer, family_for(getattr(config, "model_type", "")))
    return ProbeModel(
        nnsight=nn_model,
        tokenizer=tokenizer,
        family=family,
        name=name or getattr(config, "name_or_path", "") or type(hf).__name__,
        n_layers=int(config.num_hidden_layers),
        d_model=int(config.hidden_size),
        hf=hf,
        adapter=adapter,
        remote=remote,
    )
