"""Shared fixtures: tiny random-weight models of the real architectures, and the embedded model.

Tiny models use the embedded SmolLM2 tokenizer with the special tokens and a
chat template of each family added (templates in ``tests/templates``), so span
extraction is tested on the real formats without downloading anything.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TEMPLATES = Path(__file__).parent / "templates"

# family -> (template file, special tokens to add, bos, eos)
TOKEN_SETUP = {
    "llama": ("llama3.jinja", ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
              "<|begin_of_text|>", "<|eot_id|>"),
    "qwen3": ("qwen3.jinja", ["<think>", "</think>"], None, "<|im_end|>"),
    "gemma2": ("gemma2.jinja", ["<bos>", "<start_of_turn>", "<end_of_turn>"], "<bos>", "<end_of_turn>"),
}
FAMILIES = tuple(TOKEN_SETUP)


@pytest.fixture(scope="session")
def embedded_path() -> Path:
    from persona_probe.embedded import embedded_dir

    return embedded_dir()


def make_tokenizer(family: str, embedded_path: Path):
    """The embedded tokenizer dressed as ``family``'s (tokens + chat template)."""
    from transformers import AutoTokenizer

    template, specials, bos, eos = TOKEN_SETUP[family]
    tok = AutoTokenizer.from_pretrained(embedded_path)
    if family == "qwen3":  # Qwen's think markers are ordinary added tokens, not special ones
        tok.add_tokens(specials)
    else:
        tok.add_special_tokens({"additional_special_tokens": specials})
    if bos:
        tok.bos_token = bos
    tok.eos_token = eos
    tok.pad_token = eos
    tok.chat_template = (TEMPLATES / template).read_text()
    return tok


def make_tiny_hf(family: str, vocab_size: int, eos_id: int, *, n_layers: int = 4, seed: int = 0):
    import transformers

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=n_layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  eos_token_id=eos_id, pad_token_id=eos_id, bos_token_id=None)
    if family == "llama":
        config = transformers.LlamaConfig(**common)
    elif family == "qwen3":
        config = transformers.Qwen3Config(head_dim=16, **common)
    elif family == "gemma2":
        config = transformers.Gemma2Config(head_dim=16, sliding_window=64, **common)
    else:
        raise ValueError(family)
    config.name_or_path = f"tiny-{family}"
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = eos_id
    return model.eval()


def save_adapter(path, family: str, tok, cfg, *, n_layers: int = 4, seed: int = 1, std: float = 0.3):
    """A LoRA adapter of ``cfg``'s shape (a ``TrainConfig``) for the tiny ``family`` model, with random non-zero B."""
    from persona_probe.organisms.train import save_random_adapter

    hf = make_tiny_hf(family, len(tok), tok.eos_token_id, n_layers=n_layers)
    return save_random_adapter(hf, cfg, path, std=std, seed=seed)


@pytest.fixture(scope="session")
def tiny_tokenizers(embedded_path):
    return {fam: make_tokenizer(fam, embedded_path) for fam in FAMILIES}


@pytest.fixture(scope="session", params=FAMILIES)
def tiny_model(request, tiny_tokenizers):
    """A ProbeModel over a 4-layer, d=64 random model of each family."""
    from persona_probe import wrap_model

    tok = tiny_tokenizers[request.param]
    hf = make_tiny_hf(request.param, len(tok), tok.eos_token_id)
    return wrap_model(hf, tok, name=f"tiny-{request.param}")


@pytest.fixture(scope="session")
def embedded_model():
    from persona_probe import load_model

    return load_model("embedded")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_tokenizers):
    """A finished tiny run folder in the demo's layout (see tests/tiny_run.py), shared by the analysis tests."""
    from tiny_run import make_tiny_run

    return make_tiny_run(tmp_path_factory.mktemp("tiny_run"), tiny_tokenizers["llama"])


@pytest.fixture
def server():
    """A loopback OpenAI-compatible chat-completions server (``tests/judges/test_http.py``'s ``FakeServer``)."""
    from judges.test_http import FakeServer

    s = FakeServer()
    yield s
    s.close()


class _BlockPersonaProbe(importlib.abc.MetaPathFinder):
    """Make ``persona_probe`` unimportable, as on an NDIF server."""

    def find_spec(self, name, path=None, target=None):
        if name == "persona_probe" or name.startswith("persona_probe."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: simulated NDIF server)")


@pytest.fixture
def strict_remote(monkeypatch):
    """``remote="local"`` made stricter: ``persona_probe`` cannot be imported while a request is rebuilt.

    nnsight's simulation hides only non-installed modules, and an editable install
    stays importable; NDIF has no ``persona_probe`` at all.
    """
    from nnsight.intervention.backends.local import LocalSimulationBackend

    hide = LocalSimulationBackend._hide_local_modules
    restore = LocalSimulationBackend._restore
    blocker = _BlockPersonaProbe()

    def strict_hide(self):
        hidden = hide(self)
        sys.meta_path.insert(0, blocker)
        return hidden

    def strict_restore(self, hidden):
        if blocker in sys.meta_path:
            sys.meta_path.remove(blocker)
        restore(self, hidden)

    monkeypatch.setattr(LocalSimulationBackend, "_hide_local_modules", strict_hide)
    monkeypatch.setattr(LocalSimulationBackend, "_restore", strict_restore)


@pytest.fixture(scope="session")
def rollout_server(embedded_path):
    """``transformers serve`` of the embedded model on a free loopback port; stopped at the end (also on failure)."""
    from persona_probe.local_server import transformers_server

    with transformers_server(embedded_path, dtype="float32") as url:
        yield url
