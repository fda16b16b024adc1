"""Chat rendering and assistant-content token spans.

The Assistant Axis averages activations over the tokens of what the assistant
*said*: template tokens (``<|im_start|>assistant``, ``<end_of_turn>``, ...),
system and user turns, and Qwen ``<think>`` blocks are excluded.

How: render the conversation with the tokenizer's own chat template, tokenize
with character offsets, find each message's content in the rendered text in
order, and keep the tokens whose character span overlaps an assistant content.
This works for any template that writes contents verbatim (modulo surrounding
whitespace, which templates often trim), so a new family needs no code here;
a template that rewrites contents raises an error that says so.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Sequence

from .families import THINK_RE, Family

__all__ = [
    "Conversation",
    "validate_conversation",
    "check_conversations",
    "check_generation",
    "read_conversations",
    "prepare_messages",
    "render",
    "TokenizedChat",
    "tokenize_chat",
    "stop_token_ids",
    "cut_at_stop",
]

Conversation = Sequence[dict]
Turns = Literal["all", "last"] | int


def validate_conversation(conv: Any, *, index: int | None = None, need_assistant: bool = False,
                          for_generation: bool = False) -> list[dict]:
    """Check a conversation's shape; errors say which conversation and message to fix.

    ``for_generation``: the conversation must end with a user turn (generation appends the assistant's).
    """
    where = f"conversation {index}" if index is not None else "conversation"
    if isinstance(conv, str):
        raise ValueError(f"{where} is a string, not a conversation; pass a list of conversations, each a list of "
                         f"messages, e.g. [[{{'role': 'user', 'content': {conv[:40]!r}}}]]")
    if isinstance(conv, dict):
        raise ValueError(f"{where} is a single message; pass a list of conversations, each a list of messages, "
                         f"e.g. [[{{'role': 'user', 'content': '...'}}]]")
    if not isinstance(conv, (list, tuple)) or not conv:
        raise ValueError(f"{where} is empty; pass a list of {{'role', 'content'}} messages")
    for j, msg in enumerate(conv):
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            raise ValueError(f"{where}, message {j}: expected a dict with 'role' and 'content', got {msg!r:.80}")
        if msg["role"] not in ("system", "user", "assistant"):
            raise ValueError(f"{where}, message {j}: role {msg['role']!r} is not one of system/user/assistant")
        if not isinstance(msg["content"], str):
            raise ValueError(f"{where}, message {j}: content must be a string")
    if need_assistant and not any(m["role"] == "assistant" for m in conv):
        raise ValueError(f"{where} has no assistant turn; response activations need at least one assistant message")
    if for_generation and conv[-1]["role"] == "assistant":
        raise ValueError(f"{where} already ends with an assistant turn; generation appends the assistant's answer "
                         f"to a conversation that ends with the user's message (drop the last answer to regenerate it)")
    return list(conv)


def check_conversations(conversations: Any, what: str) -> None:
    """Fail clearly when ``conversations`` is one text or one conversation rather than a list of conversations."""
    example = "[[{'role': 'user', 'content': 'Hello'}]]"
    if isinstance(conversations, str):
        raise ValueError(f"{what} takes a list of conversations, not a string; wrap the text: "
                         f"[[{{'role': 'user', 'content': {conversations[:40]!r}}}]]")
    if isinstance(conversations, (list, tuple)) and conversations and isinstance(conversations[0], dict):
        raise ValueError(f"{what} takes a list of conversations and got one conversation (a list of messages); "
                         f"wrap it in a list, e.g. {example}")
    if not isinstance(conversations, (list, tuple)):
        raise ValueError(f"{what} takes a list of conversations, e.g. {example}; got {type(conversations).__name__}")


def check_generation(conversations: Any, *, max_new_tokens: Any, temperature: float, batch_size: int) -> None:
    """The arguments of ``generate``, checked before any tokenization, with the fix in each message."""
    check_conversations(conversations, "generate")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")


def read_conversations(path, *, for_generation: bool = False) -> list[list[dict]]:
    """The ``messages`` of every line of a JSONL file, each validated; errors name the file and record."""
    from .io import read_jsonl

    records = read_jsonl(path, required=["messages"])
    for i, rec in enumerate(records):
        try:
            validate_conversation(rec["messages"], for_generation=for_generation)
        except ValueError as exc:
            raise ValueError(f"{path}: record {i + 1}: {exc}") from None
    return [rec["messages"] for rec in records]


def prepare_messages(messages: Conversation, family: Family) -> list[dict]:
    """Adapt messages to what the family's template accepts.

    Families without system turns get the system text prepended to the first
    user turn (separated by a blank line); Qwen3 think blocks are removed from
    assistant turns so they are neither rendered nor pooled.
    """
    msgs = [dict(m) for m in messages]
    if family.thinking:
        for m in msgs:
            if m["role"] == "assistant":
                m["content"] = THINK_RE.sub("", m["content"])
    if not family.supports_system and msgs and msgs[0]["role"] == "system":
        system = msgs.pop(0)["content"]
        if system.strip():
            if msgs and msgs[0]["role"] == "user":
                msgs[0]["content"] = f"{system}\n\n{msgs[0]['content']}"
            else:
                msgs.insert(0, {"role": "user", "content": system})
    return msgs


def render(tokenizer, family: Family, messages: Conversation, *, add_generation_prompt: bool = False) -> str:
    """The chat-template text of ``messages`` (after :func:`prepare_messages`)."""
    msgs = prepare_messages(messages, family)
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            "the tokenizer has no chat template; persona-probe needs a chat model "
            "(set tokenizer.chat_template or load an instruct checkpoint)"
        )
    return tokenizer.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=add_generation_prompt, **family.chat_kwargs
    )


@dataclasses.dataclass
class TokenizedChat:
    """Token ids of a rendered conversation and, per assistant turn, its content positions."""

    input_ids: list[int]
    assistant_positions: list[list[int]]  # one list per assistant turn, in order
    text: str

    def positions(self, turns: Turns = "all") -> list[int]:
        if not self.assistant_positions:
            return []
        if turns == "all":
            return sorted(p for turn in self.assistant_positions for p in turn)
        if turns == "last":
            return list(self.assistant_positions[-1])
        if isinstance(turns, int):
            try:
                return list(self.assistant_positions[turns])
            except IndexError:
                raise ValueError(
                    f"turns={turns} but the conversation has {len(self.assistant_positions)} assistant turn(s)"
                ) from None
        raise ValueError(f"turns must be 'all', 'last' or an int, got {turns!r}")

    def pool_groups(self, turns: Turns = "all", pooling: str = "tokens", index: int | None = None) -> list[list[int]]:
        """Positions to pool, grouped: one group (``"tokens"``: every token) or one per turn (``"turns"``)."""
        if pooling not in ("tokens", "turns"):
            raise ValueError(f"pooling must be 'tokens' (every assistant token) or 'turns' (mean of per-turn means), "
                             f"got {pooling!r}")
        groups = [self.positions(turns)] if pooling == "tokens" else self.turn_positions(turns)
        if not any(groups):
            raise ValueError(f"conversation {index}: the selected assistant turn(s) have no content tokens "
                             f"(an empty answer cannot be pooled; drop it or regenerate it)")
        return groups

    def turn_positions(self, turns: Turns = "all") -> list[list[int]]:
        """The selected assistant turns' positions, one list per turn (for averaging per-turn means)."""
        if turns == "all":
            return [list(t) for t in self.assistant_positions]
        return [self.positions(turns)]


def tokenize_chat(tokenizer, family: Family, messages: Conversation, *,
                  add_generation_prompt: bool = False) -> TokenizedChat:
    """Render and tokenize ``messages``; locate every assistant content's tokens."""
    msgs = prepare_messages(messages, family)
    text = render(tokenizer, family, msgs, add_generation_prompt=add_generation_prompt)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    spans: list[list[int]] = []
    cursor = 0
    for j, msg in enumerate(msgs):
        content = msg["content"].strip()
        if not content:
            if msg["role"] == "assistant":
                spans.append([])
            continue
        start = text.find(content, cursor)
        if start < 0:
            raise ValueError(
                f"message {j} ({msg['role']}) was not found verbatim in the rendered chat template; "
                "this template rewrites message contents, so response spans cannot be located - "
                "file an issue with the model name"
            )
        end = start + len(content)
        cursor = end
        if msg["role"] == "assistant":
            spans.append([i for i, (s, e) in enumerate(offsets) if e > s and s < end and e > start])
    return TokenizedChat(list(enc["input_ids"]), spans, text)


def stop_token_ids(hf: Any, tokenizer: Any) -> set[int]:
    """Token ids that end an answer: EOS of the generation config, the model config and the tokenizer."""
    stops = set()
    for src in (getattr(hf, "generation_config", None), getattr(hf, "config", None)):
        eos = getattr(src, "eos_token_id", None) if src is not None else None
        if isinstance(eos, int):
            stops.add(eos)
        elif eos:
            stops.update(int(e) for e in eos)
    if tokenizer.eos_token_id is not None:
        stops.add(int(tokenizer.eos_token_id))
    return stops


def cut_at_stop(ids: Sequence[int], stops: set[int]) -> list[int]:
    """``ids`` up to (not including) the first stop token."""
    out = []
    for t in ids:
        if t in stops:
            break
        out.append(t)
    return out
