"""``ProbeModel``: one chat model under nnsight, with the operations we need.

* :meth:`ProbeModel.response_activations` - mean residual stream over the
  assistant-content tokens, every layer, one forward pass per batch. The
  pooling happens *inside* the trace, so only ``[batch, n_layers, d]`` ever
  leaves it: memory is O(n * n_layers * d), not O(tokens), and a remote (NDIF)
  run sends back only the pooled vectors.
* :meth:`ProbeModel.generate` - batched generation with interventions applied
  at every position of every forward: the prompt pass and each new token.

Interventions are bound to per-layer ops (:mod:`persona_probe.interventions`).
A LoRA adapter read as edits (:class:`persona_probe.lora.LoraEdit`, ``lora``)
is bound once, at load. Every trace applies both with
:func:`persona_probe.edits.edit_block`, block by block in forward order: the
adapter's module edits inside the block, then the interventions on its output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from typing import Any, Iterable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from . import edits, spans
from .families import Family, target_layer
from .interventions import Intervention, bind_interventions, is_conditional
from .lora import payload_nbytes
from .sampling import sampling_kwargs
from .spans import TokenizedChat, Turns, check_conversations, check_generation, tokenize_chat, validate_conversation
from .vectors import check_layer

log = logging.getLogger(__name__)

__all__ = ["ProbeModel"]

# nnsight reports the final, never-run step of an open ``tracer.iter[:]`` loop as a
# warning; for generation that step is expected (the model stops first).
_DANGLING = r".*was never reached.*"


@dataclasses.dataclass(eq=False)
class ProbeModel:
    """A chat model wrapped in nnsight's ``TransformersModel``.

    Attributes: ``nnsight`` (the wrapper, for your own traces), ``hf`` (the
    underlying ``transformers`` model; ``None`` for a remote-only model),
    ``tokenizer``, ``family`` (per-architecture quirks), ``name``, ``adapter``,
    ``lora`` (the adapter's bound module edits per layer when it is applied as
    edits rather than merged; ``None`` otherwise).
    """

    nnsight: Any
    tokenizer: Any
    family: Family
    name: str
    n_layers: int
    d_model: int
    hf: Any = None
    adapter: str | None = None
    remote: bool | str = False
    lora: dict[int, list[tuple]] | None = None

    # ----------------------------------------------------------------- basics
    @property
    def layers(self):
        """The nnsight envoys of the decoder blocks (their ``.output`` is the residual stream)."""
        obj = self.nnsight
        for part in self.family.layers_path.split("."):
            obj = getattr(obj, part)
        return obj

    @property
    def target_layer(self) -> int:
        return target_layer(self.name, self.n_layers)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu") if self.hf is None else next(self.hf.parameters()).device

    def torch_blocks(self) -> Any:
        """The decoder blocks as torch modules (meta modules for a remote-only model)."""
        blocks = self.hf if self.hf is not None else self.nnsight._model
        for part in self.family.layers_path.split("."):
            blocks = getattr(blocks, part)
        return blocks

    def layer_devices(self) -> list[torch.device]:
        if self.hf is None:
            return [torch.device("cpu")] * self.n_layers  # a remote model: the server moves what it gets
        return [next(b.parameters()).device for b in self.torch_blocks()]

    def require_merged_weights(self, what: str) -> None:
        """Raise for code that runs the torch model directly, where an adapter applied as edits would be missed."""
        if self.lora is not None:
            raise ValueError(f"{what} runs the torch model without nnsight, so it would miss the adapter "
                             f"{self.adapter} applied as edits; load it with adapter_mode='merge'")

    def provenance(self) -> dict:
        """What produced a result: model, adapter (and how it is applied), family, dtype (for result files)."""
        dtype = str(next(self.hf.parameters()).dtype) if self.hf is not None else None
        return {"model": self.name, "adapter": self.adapter, "family": self.family.name, "dtype": dtype,
                "n_layers": self.n_layers, "d_model": self.d_model, **({"adapter_mode": "edit"} if self.lora else {})}

    def _remote_arg(self) -> bool | str:
        """``self.remote`` for nnsight, once per request; registers the edit math and logs the adapter payload."""
        if self.remote:
            from .remote import register_remote_code

            register_remote_code()
            if self.lora is not None:
                log.info("request ships the adapter's tensors: %.2f MB", payload_nbytes(self.lora) / 2**20)
        return self.remote

    def bind(self, interventions: Iterable[Intervention], *, generation: bool = False) -> dict[int, list[tuple]]:
        ops = bind_interventions(interventions, n_layers=self.n_layers, d_model=self.d_model,
                                 devices=self.layer_devices())
        if not generation and is_conditional(ops):
            raise ValueError("a ConditionalCap reads its detector on the prompt of a generation; use it with "
                             "generate(), not with activations or log-probs of given text")
        return ops

    def edit_plan(self, interventions: Iterable[Intervention], *, generation: bool = False
                  ) -> dict[int, tuple[list, list]]:
        """Per-layer ``(adapter module edits, intervention ops)`` for :func:`edits.edit_block`, layers ascending."""
        ops, lora = self.bind(interventions, generation=generation), self.lora or {}
        return {layer: (lora.get(layer, []), ops.get(layer, [])) for layer in sorted(set(ops) | set(lora))}

    def tokenize(self, conversation, *, add_generation_prompt: bool = False, index: int | None = None,
                 need_assistant: bool = False) -> TokenizedChat:
        conv = validate_conversation(conversation, index=index, need_assistant=need_assistant,
                                     for_generation=add_generation_prompt)
        return tokenize_chat(self.tokenizer, self.family, conv, add_generation_prompt=add_generation_prompt)

    def pad_id(self) -> int:
        """The padding token id (the tokenizer's pad, else its EOS, else 0)."""
        tok = self.tokenizer
        return int(next((p for p in (tok.pad_token_id, tok.eos_token_id) if p is not None), 0))

    def pad_batch(self, seqs: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """Left-padded ``input_ids`` and ``attention_mask`` ``[b, max_len]`` on the model's device."""
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id(), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}

    # ------------------------------------------------------------ activations
    def response_activations(self, conversations: Sequence[Sequence[dict]], *, batch_size: int = 8,
                             turns: Turns = "all", pooling: str = "tokens", interventions: Iterable[Intervention] = (),
                             progress: bool = True, session_batches: int = 8) -> torch.Tensor:
        """Mean residual stream after each decoder block over assistant-content tokens.

        Returns float32 ``[n_conversations, n_layers, d_model]``. ``turns`` picks
        which assistant turns are pooled: ``"all"`` (default), ``"last"``, or an
        index. ``pooling="tokens"`` (default) averages every selected assistant
        token; ``"turns"`` averages the per-turn means (the reference pipeline).
        Interventions edit the stream before it is read, so the pooled values
        are post-edit at the edited layers and downstream. With ``remote`` set,
        ``session_batches`` batches share one NDIF session.
        :meth:`iter_response_activations` gives the same rows batch by batch.
        """
        return self._collect(len(conversations), self.iter_response_activations(
            conversations, batch_size=batch_size, turns=turns, pooling=pooling, interventions=interventions,
            progress=progress, session_batches=session_batches))

    @torch.no_grad()
    def iter_response_activations(self, conversations: Sequence[Sequence[dict]], *, batch_size: int = 8,
                                  turns: Turns = "all", pooling: str = "tokens",
                                  interventions: Iterable[Intervention] = (), progress: bool = True,
                                  session_batches: int = 8) -> Iterator[tuple[list[int], torch.Tensor]]:
        """:meth:`response_activations` one batch at a time: ``(row indices, [b, n_layers, d_model])``, shortest
        rows first (less padding); a consumer that accumulates or writes them holds one batch, never ``[n, L, d]``."""
        check_conversations(conversations, "response_activations")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        chats = [self.tokenize(c, index=i, need_assistant=True) for i, c in enumerate(conversations)]
        positions = [chat.pool_groups(turns, pooling, index=i) for i, chat in enumerate(chats)]
        yield from self._iter_pooled(chats, positions, self.edit_plan(interventions), batch_size, progress,
                                     session_batches)

    @torch.no_grad()
    def prompt_activations(self, conversations: Sequence[Sequence[dict]], *, read: str = "mean", batch_size: int = 8,
                           progress: bool = True, session_batches: int = 8) -> torch.Tensor:
        """The prompt as :meth:`generate` sees it (generation prompt included), ``[n, n_layers, d]``: the mean over
        its tokens (``read="mean"``) or its last token - what a ConditionalCap's detector projects on its vector
        (an adapter applied as edits included, as in generation)."""
        if batch_size < 1 or read not in ("mean", "last"):
            raise ValueError(f"batch_size must be >= 1 and read 'mean' or 'last'; got {batch_size}, {read!r}")
        chats = [self.tokenize(c, index=i, add_generation_prompt=True) for i, c in enumerate(conversations)]
        positions = [list(range(len(chat.input_ids)))[-1:] if read == "last" else list(range(len(chat.input_ids)))
                     for chat in chats]
        return self._collect(len(chats), self._iter_pooled(chats, positions, self.edit_plan(()), batch_size,
                                                           progress, session_batches))

    def _collect(self, n: int, batches: Iterator[tuple[list[int], torch.Tensor]]) -> torch.Tensor:
        """The ``[n, n_layers, d]`` tensor the ``(rows, acts)`` batches fill."""
        out = torch.empty((n, self.n_layers, self.d_model), dtype=torch.float32)
        for rows, acts in batches:
            out[rows] = acts
        return out

    @torch.no_grad()
    def _iter_pooled(self, chats: list, positions: list, plan: dict, batch_size: int, progress: bool,
                     session_batches: int) -> Iterator[tuple[list[int], torch.Tensor]]:
        """``(rows, [b, n_layers, d])`` means over each chat's ``positions``, batched by length (sessions when
        remote), one batch at a time."""
        order = sorted(range(len(chats)), key=lambda i: len(chats[i].input_ids))  # less padding
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        # Remote: several batches go to NDIF as one session (one request, one queue wait);
        # locally a "session" is one batch.
        per = session_batches if self.remote else 1
        groups = [batches[i:i + per] for i in range(0, len(batches), per)]
        with tqdm(total=len(batches), desc="activations", unit="batch",
                  disable=not progress or len(batches) < 2) as bar:
            for group in groups:
                inputs = [self._pool_inputs([chats[i] for i in b], [positions[i] for i in b]) for b in group]
                saved: list = []  # filled in place: nnsight runs a session body elsewhere and pushes back mutations
                with self.nnsight.session(remote=self._remote_arg()) if self.remote else contextlib.nullcontext():
                    for enc, w in inputs:
                        saved.append(self._pooled_trace(enc, w, plan, remote=False))
                bar.update(len(group))
                for batch, pooled in zip(group, saved):
                    yield batch, torch.stack(list(pooled), dim=1)

    def _pool_inputs(self, chats: list, positions: list) -> tuple[dict, torch.Tensor]:
        """Left-padded ids and ``[b, T]`` pooling weights: a row's positions are ints (one mean) or groups (the mean
        of the groups' means: a position of group ``g`` of ``G`` non-empty groups weighs ``1 / (G * len(g))``)."""
        enc = self.pad_batch([c.input_ids for c in chats])
        width = enc["input_ids"].shape[1]
        weights = torch.zeros((len(chats), width), dtype=torch.float32)
        for row, (chat, pos) in enumerate(zip(chats, positions)):
            groups = [g for g in (pos if pos and isinstance(pos[0], list) else [pos]) if g]
            for group in groups:
                idx = torch.tensor(group) + width - len(chat.input_ids)
                weights[row, idx] = 1.0 / (len(groups) * len(idx)) if len(groups) > 1 else 1.0 / len(idx)
        return enc, weights.to(self.device)

    @torch.no_grad()
    def token_activations(self, conversation: Sequence[dict], *, layers: Sequence[int] | None = None,
                          interventions: Iterable[Intervention] = (), add_generation_prompt: bool = False,
                          ) -> tuple[torch.Tensor, TokenizedChat]:
        """Per-token residual stream of one conversation: ``([len(layers), T, d], chat)``.

        ``chat.positions(...)`` says which of the ``T`` tokens are assistant content.
        For per-token drift plots and for checking that edits hold at every token.
        """
        chat = self.tokenize(conversation, add_generation_prompt=add_generation_prompt)
        layers = list(range(self.n_layers)) if layers is None else [int(layer) for layer in layers]
        for layer in layers:
            check_layer(layer, self.n_layers)
        plan = self.edit_plan(interventions)
        enc = self.pad_batch([chat.input_ids])
        envoys = self.layers
        wanted = set(layers)
        with self.nnsight.trace(enc, remote=self._remote_arg()):
            saved = dict().save()
            for layer in range(max(wanted | set(plan)) + 1):
                if layer in plan:
                    edits.edit_block(envoys[layer], plan[layer])
                if layer in wanted:
                    saved[layer] = envoys[layer].output[0].float().cpu()
        return torch.stack([saved[layer] for layer in layers]), chat

    def _pooled_trace(self, enc: dict, weights: torch.Tensor, plan: dict[int, tuple[list, list]], *,
                      remote: bool | str | None = None) -> list:
        """One trace that saves the pooled ``[b, d]`` per layer (a list, filled when the trace or session ends).

        ``remote=False`` inside a session: the session carries the remote flag, its traces do not.
        """
        layers, n_layers = self.layers, self.n_layers
        # only the residual stream is read: the logits of one position instead of every one (~1/5 of the FLOPs)
        with self.nnsight.trace(enc, remote=self._remote_arg() if remote is None else remote, logits_to_keep=1):
            pooled = list().save()
            for layer in range(n_layers):
                if layer in plan:
                    edits.edit_block(layers[layer], plan[layer])
                pooled.append(edits.masked_mean(layers[layer].output, weights.to(layers[layer].output.device)).cpu())
        return pooled

    @torch.no_grad()
    def answer_logprobs(self, conversations: Sequence[Sequence[dict]], *, batch_size: int = 8,
                        interventions: Iterable[Intervention] = (), progress: bool = True) -> torch.Tensor:
        """Mean log-probability per token of each conversation's last assistant content, ``[n]`` float32.

        Teacher-forced: token ``t`` is scored by the logits at ``t - 1``. What a
        fine-tune taught, read without sampling or a judge; the reduction to one
        number per row happens inside the trace, so a remote run returns ``[b]``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        chats = [self.tokenize(c, index=i, need_assistant=True) for i, c in enumerate(conversations)]
        for i, chat in enumerate(chats):
            if not chat.positions("last") or chat.positions("last")[0] == 0:
                raise ValueError(f"conversation {i}: the last assistant turn has no content tokens to score")
        plan = self.edit_plan(interventions)
        layers, nn_model = self.layers, self.nnsight
        out = torch.empty(len(chats), dtype=torch.float32)
        order = sorted(range(len(chats)), key=lambda i: len(chats[i].input_ids))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        for batch in tqdm(batches, desc="log-probs", unit="batch", disable=not progress or len(batches) < 2):
            enc, weights = self._pool_inputs([chats[i] for i in batch], [chats[i].positions("last") for i in batch])
            # logits at p - 1 predict the token at p: drop the first column of the weights and targets
            weights, targets = weights[:, 1:], enc["input_ids"][:, 1:, None]
            with nn_model.trace(enc, remote=self._remote_arg()):
                for layer in plan:
                    edits.edit_block(layers[layer], plan[layer])
                logits = nn_model.output.logits[:, :-1].float()
                token_lp = torch.log_softmax(logits, -1).gather(-1, targets.to(logits.device))[..., 0]
                mean_lp = (token_lp * weights.to(token_lp.device)).sum(1).cpu().save()
            out[batch] = mean_lp
        return out

    # ------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(
        self,
        conversations: Sequence[Sequence[dict]],
        *,
        interventions: Iterable[Intervention] = (),
        max_new_tokens: int = 128,
        min_new_tokens: int | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        batch_size: int = 8,
        progress: bool = True,
        fired: dict | None = None,
    ) -> list[str]:
        """Continue each conversation with an assistant turn; returns the new texts.

        ``temperature == 0`` is greedy and deterministic. With sampling, ``seed``
        makes a run repeatable (for the same batch composition). Interventions
        apply at every position of every forward, prompt and generated tokens.
        ``min_new_tokens`` suppresses end-of-turn until then (for timing equal lengths).
        ``fired``, if given, is filled with each ConditionalCap's per-conversation
        gate: ``{name: [bool, ...]}`` (did its detector fire on that prompt).
        """
        check_generation(conversations, max_new_tokens=max_new_tokens, temperature=temperature, batch_size=batch_size)
        prompts = [self.tokenize(c, index=i, add_generation_prompt=True).input_ids for i, c in enumerate(conversations)]
        plan = self.edit_plan(interventions, generation=True)
        gen_kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": self.pad_id()}
        if min_new_tokens:
            gen_kwargs["min_new_tokens"] = min(min_new_tokens, max_new_tokens)
        gen_kwargs.update(sampling_kwargs(temperature, top_p, cpu=not self.remote and self.device.type == "cpu"))
        if seed is not None:
            torch.manual_seed(seed)
        texts: list[str] = [""] * len(prompts)
        batches = [list(range(i, min(i + batch_size, len(prompts)))) for i in range(0, len(prompts), batch_size)]
        stops = self.stop_ids()
        for batch in tqdm(batches, desc="generate", unit="batch", disable=not progress or len(batches) < 2):
            enc = self.pad_batch([prompts[i] for i in batch])
            ids, gates = self._generate_ids(enc, plan, gen_kwargs)
            if fired is not None:
                for name, gate in gates.items():
                    fired.setdefault(name, [False] * len(prompts))
                    fired[name][batch[0]:batch[-1] + 1] = [bool(g) for g in gate]
            for row, new in enumerate(ids[:, enc["input_ids"].shape[1]:].tolist()):
                texts[batch[row]] = self.tokenizer.decode(spans.cut_at_stop(new, stops), skip_special_tokens=True)
        return texts

    def _generate_ids(self, enc: dict, plan: dict[int, tuple[list, list]], gen_kwargs: dict
                      ) -> tuple[torch.Tensor, dict]:
        """Token ids, and the detectors' per-row gates (set on the prompt pass, kept for every later step).

        Inside the ``tracer.iter`` loop, no comment lines and no statement split over lines: with
        ``remote="local"`` nnsight 0.8 then fails to find the loop body's source (WithBlockNotFoundError).
        """
        layers, devices = self.layers, self.layer_devices()
        mask = enc["attention_mask"].to(torch.float32)
        weights = mask / mask.sum(1, keepdim=True)  # mean over each row's prompt tokens, for detectors
        weights = {layer: weights.to(devices[layer]) for layer in plan}
        conditional = is_conditional({layer: ops for layer, (_, ops) in plan.items()})
        gates: dict = {}  # only saved values leave the trace: a conditional run replaces this with a saved dict
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_DANGLING)
            with self.nnsight.generate(remote=self._remote_arg(), **gen_kwargs) as tracer:
                with tracer.invoke(enc):
                    if conditional:
                        gates = dict().save()
                    if plan:
                        for _step in tracer.iter[:]:
                            for layer, layer_edits in plan.items():
                                edits.edit_block(layers[layer], layer_edits, gates, weights[layer])
                with tracer.invoke():
                    ids = tracer.result.save()
        return ids.cpu(), {name: g.cpu() for name, g in gates.items()}

    def stop_ids(self) -> set[int]:
        """Token ids that end an answer: EOS of the generation config, the model config and the tokenizer."""
        return spans.stop_token_ids(self.hf, self.tokenizer)
