"""Rollouts without an intervention: in-process (nnsight) or through an OpenAI-compatible server.

Most of the generation in a paper-scale run needs no intervention: the axis build's role and
default rollouts, organism-eval cells, the stress test's ``none`` cells. A serving engine
(vLLM ``vllm serve --enable-lora``, SGLang, ``transformers serve``) batches those continuously
and is many times faster than HF ``generate``. :func:`rollout` sends such a generation to the
server when a generator is given; anything with an intervention (capped, steered, ablated)
stays in nnsight, locally or on NDIF. The answers then go through the same nnsight extraction.

Generator specs (:func:`from_spec`), for ``--generator`` and a stress config's ``generator:``:

- ``"local"`` (or ``None``): :meth:`ProbeModel.generate`, in-process;
- ``"http:<base URL>"``: the server at that URL (``http:http://127.0.0.1:8000/v1``);
- a mapping (or a YAML file holding one): :class:`ServedRollouts` options, e.g.
  ``{url: http://gpu1:8000/v1, model: qwen3-32b, adapters: {organism: organism-lora}, concurrency: 64}``.

Which model the server serves (checked by :meth:`ServedRollouts.preflight` before any rollout):
the request names the served id that ``/v1/models`` lists and that equals (or whose vLLM
``root`` equals) one of the names our model is known by: its configured name (``embedded``
is ``HuggingFaceTB/SmolLM2-135M-Instruct``) or the folder it was loaded from. A server that
names it otherwise needs ``model: <served id>`` in the spec; then, where the served model's
``config.json`` can be read here (a local folder, or the HF cache), its architecture must
equal ours, and where it cannot, a warning says the identity was taken on trust. Any other
served model is an error. Adapters map to served LoRA names (vLLM: ``--enable-lora
--lora-modules organism-lora=runs/org/organism``), keyed by the run's model name
(``organism``) or the adapter folder; an adapter without one is an error before any rollout.

Seeds: a sampled request ``i`` of a call with seed ``s`` carries the seed
``request_seed(s, i)``. vLLM and SGLang give every request its own generator, so the same
seed gives the same answer whatever the batching and concurrency; ``transformers serve``
seeds one global generator per request, which is reproducible only with ``concurrency: 1``.
Served samples never equal in-process samples (another random stream); greedy answers
(``temperature: 0``) do, and carry no seed. Every finished answer is stored in a sqlite
cache keyed by (served model, adapter, messages, sampling parameters, seed), so a killed run
resumes without asking again and a re-run is bit-identical whatever the server does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm.auto import tqdm

from .io import content_hash
from .model_identity import ModelIdentity, RolloutServerError, match_served_model, norm_name
from .openai_client import make_client, send_concurrently
from .spans import prepare_messages

log = logging.getLogger(__name__)

__all__ = ["ServedRollouts", "RolloutServerError", "ModelIdentity", "from_spec", "parse_spec", "rollout",
           "request_seed", "SPELLINGS"]

SPELLINGS = ("local", "http:<base URL>", "<generator.yaml>", "a mapping with url (and model, adapters, ...)")


def request_seed(seed: int, index: int) -> int:
    """The seed of request ``index`` in a call with ``seed``: stable, distinct per index, < 2**31."""
    return int(content_hash("rollout-seed", int(seed), int(index), length=8), 16) % (2 ** 31)


# ------------------------------------------------------------------ specs
def parse_spec(spec: Any) -> dict | None:
    """:class:`ServedRollouts` options for ``spec``; ``None`` for in-process generation. Builds nothing."""
    if spec is None or (isinstance(spec, str) and spec.strip() in ("", "local")):
        return None
    if isinstance(spec, str):
        name, sep, arg = spec.strip().partition(":")
        if name == "http" and sep and arg:
            return {"url": arg}
        if Path(spec).suffix in (".yaml", ".yml", ".json") and Path(spec).is_file():
            import yaml

            return parse_spec(yaml.safe_load(Path(spec).read_text()) or {})
        raise ValueError(f"unknown generator {spec!r}; use one of: {', '.join(SPELLINGS)}")
    if not isinstance(spec, Mapping):
        raise ValueError(f"a generator is one of: {', '.join(SPELLINGS)}; got {type(spec).__name__}")
    options = dict(spec)
    options.pop("backend", None)
    known = {f.name for f in dataclasses.fields(ServedRollouts) if f.init}
    unknown = set(options) - known
    if unknown or "url" not in options:
        raise ValueError(f"generator options {sorted(options)}: unknown {sorted(unknown)}, "
                         f"'url' {'given' if 'url' in options else 'missing'}; known options: {sorted(known)}")
    return options


def from_spec(spec: Any) -> ServedRollouts | None:
    options = parse_spec(spec)
    return None if options is None else ServedRollouts(**options)


def rollout(model, conversations: Sequence[Sequence[dict]], *, generator: ServedRollouts | None = None,
            adapter_label: str | None = None, interventions: Sequence = (), **gen) -> list[str]:
    """Answers to ``conversations``: through ``generator`` when given and nothing intervenes, else nnsight."""
    interventions = list(interventions)
    if generator is None or interventions:
        return model.generate(conversations, interventions=interventions, **gen)
    return generator.generate(model, conversations, adapter_label=adapter_label, **gen)


# ------------------------------------------------------------------ the cache
class _Cache:
    """Finished answers in sqlite, one row per request key; only successes are ever written."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS rollouts (key TEXT PRIMARY KEY, record TEXT NOT NULL)")
        self.db.commit()

    def get(self, key: str) -> dict | None:
        row = self.db.execute("SELECT record FROM rollouts WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, record: dict) -> None:
        self.db.execute("INSERT OR REPLACE INTO rollouts VALUES (?, ?)", (key, json.dumps(record)))
        self.db.commit()


# ------------------------------------------------------------------ the client
@dataclasses.dataclass(eq=False)
class ServedRollouts:
    """Generation through an OpenAI-compatible chat-completions server (see the module docstring).

    ``url``: the base URL (``.../v1``). ``model``: the served id, when the server names our
    model otherwise. ``adapters``: run model name or adapter folder -> served LoRA name.
    ``concurrency``: requests in flight. ``timeout`` (s per request) and ``max_retries`` go to
    the ``openai`` SDK, which retries transient failures with exponential backoff.
    ``cache``: the sqlite file; pipelines put it in their run folder when unset.
    """

    url: str
    model: str | None = None
    adapters: dict[str, str] = dataclasses.field(default_factory=dict)
    concurrency: int = 8
    timeout: float = 600.0
    max_retries: int = 6
    api_key_env: str | None = None
    cache: str | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"generator concurrency must be >= 1, got {self.concurrency}")
        if not isinstance(self.adapters, Mapping):
            raise ValueError(f"generator adapters must map a model name or adapter folder to a served LoRA name, "
                             f"got {self.adapters!r}")
        self.adapters = {str(k): str(v) for k, v in self.adapters.items()}
        self.client = make_client(self.url, api_key_env=self.api_key_env, timeout=self.timeout,
                                  max_retries=self.max_retries)
        self.requests_sent = 0  # answered requests, this process (what the resume test counts)
        self._served: dict[str, dict] | None = None
        self._base: dict[tuple, str] = {}
        self._db: _Cache | None = None

    def describe(self) -> dict:
        """Provenance of served answers (no key, no transport settings)."""
        return {"backend": "http", "url": self.url, "model": self.model, "adapters": dict(self.adapters)}

    def use_cache(self, path: str | os.PathLike) -> ServedRollouts:
        """Store answers in ``path`` unless a cache file was configured."""
        if self.cache is None:
            self.cache = str(path)
        return self

    # -------------------------------------------------------------- checks
    def served_models(self) -> dict[str, dict]:
        """``/v1/models``: served id -> its entry (vLLM adds ``root`` and, for LoRAs, ``parent``)."""
        if self._served is None:
            import openai

            try:
                page = self.client.with_options(max_retries=min(self.max_retries, 2),
                                                timeout=min(self.timeout, 30.0)).models.list()
            except openai.APIConnectionError as exc:
                raise RolloutServerError(f"cannot reach the rollout server at {self.url} ({exc}); start it (e.g. "
                                         f"`vllm serve <model>` or `transformers serve <model>`) or fix the URL, "
                                         f"or generate in-process with --generator local") from None
            except openai.APIStatusError as exc:
                raise RolloutServerError(f"{self.url}/models answered HTTP {exc.status_code}: {exc.message}") from None
            self._served = {m.id: m.model_dump() for m in page.data}
        return self._served

    def preflight(self, identity: ModelIdentity | Any, adapters: Mapping[str, str | None] | None = None) -> str:
        """Check the server before any rollout: reachable, serving our model and every adapter's LoRA.

        ``identity``: a :class:`ModelIdentity`, a ``ProbeModel`` or a ``load_model`` source.
        ``adapters``: run model name -> adapter folder (``None`` for the base model).
        Returns the served id requests will name.
        """
        ident = identity if isinstance(identity, ModelIdentity) else ModelIdentity.of(identity)
        base = self._match_base(ident)
        served = self.served_models()
        for label, path in (adapters or {}).items():
            if path is None:
                continue
            name = self.adapter_name(label, path)
            if name not in served:
                raise RolloutServerError(f"adapter {label!r} ({path}) maps to the served LoRA {name!r}, but "
                                         f"{self.url} lists {sorted(served)}; serve it (vLLM: --enable-lora "
                                         f"--lora-modules {name}={path})")
            parent = served[name].get("parent")
            if parent and parent != base:
                raise RolloutServerError(f"served LoRA {name!r} sits on {parent!r}, not on {base!r}")
        return base

    def _match_base(self, ident: ModelIdentity) -> str:
        key = (ident.names, json.dumps(ident.config, sort_keys=True))
        if key not in self._base:
            self._base[key] = match_served_model(self.served_models(), ident, self.model, self.url)
        return self._base[key]

    def adapter_name(self, label: str | None, path: str | None) -> str:
        for key in (label, path, path and norm_name(str(path))):
            if key and key in self.adapters:
                return self.adapters[key]
        raise RolloutServerError(f"adapter {label or path!r} ({path}) has no served LoRA name; add "
                                 f"`adapters: {{{label or path}: <served name>}}` to the generator spec")

    # -------------------------------------------------------------- generation
    def generate(self, model, conversations: Sequence[Sequence[dict]], *, adapter_label: str | None = None,
                 max_new_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
                 progress: bool = True, batch_size: int | None = None) -> list[str]:
        """Answers to ``conversations`` from the server (``batch_size`` is in-process only and ignored)."""
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        base = self.preflight(model, {adapter_label or "adapter": model.adapter} if model.adapter else None)
        lora = self.adapter_name(adapter_label, model.adapter) if model.adapter else None
        requests = [self._request(model, base, lora, conv, i, max_new_tokens, temperature, top_p, seed)
                    for i, conv in enumerate(conversations)]
        db = self._cache_db()
        texts: list[str | None] = [None] * len(requests)
        todo = []
        for i, (key, _) in enumerate(requests):
            hit = db.get(key) if db else None
            if hit is not None:
                texts[i] = hit["text"]
            else:
                todo.append(i)
        if len(todo) < len(requests):
            log.info("rollouts: %d of %d answers from the cache", len(requests) - len(todo), len(requests))
        for i, record in self._send([requests[i] for i in todo], todo, progress):
            texts[i] = record["text"]
            self.requests_sent += 1
            if db:
                db.put(requests[i][0], record)
        return [t or "" for t in texts]

    def _request(self, model, base: str, lora: str | None, conv, index: int, max_new_tokens: int,
                 temperature: float, top_p: float, seed: int | None) -> tuple[str, dict]:
        body: dict[str, Any] = {"model": lora or base, "messages": prepare_messages(conv, model.family),
                                "max_tokens": int(max_new_tokens), "temperature": float(temperature)}
        if temperature > 0:
            body["top_p"] = float(top_p)
            if seed is not None:
                body["seed"] = request_seed(seed, index)
        if model.family.chat_kwargs:
            body["extra_body"] = {"chat_template_kwargs": model.family.chat_kwargs}
        adapter_key = _adapter_key(model.adapter)
        return content_hash("rollout-v1", base, lora, adapter_key, body), body

    def _cache_db(self) -> _Cache | None:
        if self.cache is None:
            return None
        if self._db is None:
            self._db = _Cache(Path(self.cache))
        return self._db

    def _send(self, bodies: list[dict], indices: list[int], progress: bool):
        """Yield ``(index, record)`` as answers arrive, ``concurrency`` requests at a time."""
        if not bodies:
            return
        sent = send_concurrently(self._complete, [body for _, body in bodies], concurrency=self.concurrency,
                                 name="rollout")
        with tqdm(total=len(bodies), desc="rollouts (served)", unit="answer", disable=not progress) as bar:
            for pos, record in sent:  # answers in flight when a request fails are handed over before the error
                bar.update(1)
                yield indices[pos], record

    def _complete(self, body: dict) -> dict:
        import openai

        try:
            resp = self.client.chat.completions.create(**body)
        except openai.APIConnectionError as exc:  # the SDK has retried max_retries times
            raise RolloutServerError(f"{self.url}: no answer after {self.max_retries} retries ({exc})") from None
        except openai.APIStatusError as exc:
            raise RolloutServerError(f"{self.url} refused a rollout for {body['model']!r}: HTTP {exc.status_code} "
                                     f"{exc.message}") from None
        if not resp.choices:
            raise RolloutServerError(f"{self.url} answered without choices for {body['model']!r}")
        choice = resp.choices[0]
        usage = resp.usage
        return {"text": choice.message.content or "", "finish_reason": choice.finish_reason,
                "prompt_tokens": usage.prompt_tokens if usage else None,
                "completion_tokens": usage.completion_tokens if usage else None, "served_model": resp.model}


def _adapter_key(path: str | None) -> str | None:
    """What identifies an adapter's weights: its manifest key (organism train writes one), else its path."""
    if not path:
        return None
    manifest = Path(path) / "manifest.json"
    if manifest.is_file():
        key = json.loads(manifest.read_text()).get("key")
        if key:
            return str(key)
    return norm_name(str(path))
