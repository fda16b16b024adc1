"""Role data for the Assistant Axis pipeline: roles, extraction questions, default prompts.

Why this module exists: the axis is ``mean(default) - mean(roles)``, so it is only
as good as the spread of roles it averages over. We ship our own set (written
for this project; see ``persona_probe/data/``) spanning helpful professionals,
everyday people, fantasy characters, enigmatic, dramatic and subversive/dark
roles, and let users point the pipeline at their own files (e.g. the reference
275 roles x 240 questions) instead. Every loader validates its input and names
``file:line`` in its errors, because a bad line in a 275-role file is otherwise
found hours into a GPU run.

File formats (ours)
-------------------
``roles.jsonl`` - one role per line::

    {"name": "pirate", "description": "<one line, shown to the role judge>",
     "category": "helpful|neutral|fantasy|enigmatic|dramatic|subversive|<any>",
     "prompts": ["<system prompt 1>", ..., "<system prompt 5>"]}

``name`` must be unique and not ``default`` (the pipeline's label for the
default prompts); ``category`` is optional in user files (``uncategorized``).
The shipped set has exactly 5 prompts per role (the reference protocol); user
files may have any number >= 1 (a warning is logged when it is not 5).

``questions.jsonl`` - ``{"id": "q000", "text": "..."}`` per line; ids unique.
A line ``{"question": "..."}`` (the reference format) is accepted too, and a
missing id becomes ``q<index>``.

``default_prompts.json`` - ``{"prompts": [...]}`` or a bare JSON list; the
placeholder ``{model_name}`` is filled at load time when ``model_name`` is given.

Reference format (accepted when cheap)
--------------------------------------
The reference repo keeps one JSON file per role, ``<name>.json`` with
``{"instruction": [{"pos": "<system prompt>"}, ...], "eval_prompt": "...", ...}``.
Pass the *folder* to :func:`load_roles`; the file stem is the role name, the
``pos`` strings are its prompts, and the judge description is the first line of
``eval_prompt`` (or the name). ``default.json`` in that folder is not a role: it
is read by :func:`load_default_prompts` when given the folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence, TypeVar

from ..io import data_path, read_json, read_jsonl

log = logging.getLogger(__name__)

__all__ = [
    "Role", "Question", "load_roles", "load_questions", "load_default_prompts",
    "select", "select_roles", "select_questions", "describe", "dumps_role", "PROMPTS_PER_ROLE", "RESERVED_NAMES",
]

PROMPTS_PER_ROLE = 5
RESERVED_NAMES = frozenset({"default"})
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Role:
    name: str
    description: str
    category: str
    prompts: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Question:
    id: str
    text: str


def _line_numbers(path: Path) -> list[int]:
    """Line numbers of the non-blank lines, in the order read_jsonl returns records."""
    with path.open(encoding="utf-8") as fh:
        return [i for i, line in enumerate(fh, 1) if line.strip()]


def _nonempty_str(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: {what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{where}: {what} is empty")
    return value


def _check_prompts(prompts: Any, where: str, name: str, expected: int | None) -> tuple[str, ...]:
    if not isinstance(prompts, list):
        raise ValueError(f"{where}: role {name!r}: 'prompts' must be a list of strings, got {type(prompts).__name__}")
    if len(prompts) < 1:
        raise ValueError(f"{where}: role {name!r} has no prompts; need at least 1 "
                         f"(the shipped set has {PROMPTS_PER_ROLE} per role)")
    if expected is not None and len(prompts) != expected:
        raise ValueError(f"{where}: role {name!r} has {len(prompts)} prompts; expected {expected}")
    for j, p in enumerate(prompts):
        _nonempty_str(p, where, f"role {name!r} prompt {j}")
    if len(set(prompts)) != len(prompts):
        raise ValueError(f"{where}: role {name!r} repeats a prompt")
    return tuple(prompts)


def load_roles(path: str | Path | None = None, *, expected_prompts: int | None = None) -> list[Role]:
    """Load and validate roles (our JSONL, or a reference-format folder).

    ``expected_prompts`` demands an exact prompt count per role (the shipped file
    is checked with 5); ``None`` accepts any count >= 1 and warns when it is not 5.
    """
    if path is None:
        path, expected_prompts = data_path("roles.jsonl"), expected_prompts or PROMPTS_PER_ROLE
    path = Path(path)
    if path.is_dir():
        roles = _load_reference_roles(path, expected_prompts)
    else:
        roles = _load_jsonl_roles(path, expected_prompts)
    if not roles:
        raise ValueError(f"{path}: no roles found")
    odd = [r.name for r in roles if len(r.prompts) != PROMPTS_PER_ROLE]
    if odd:
        log.warning("%s: %d role(s) do not have %d prompts (e.g. %s); the axis weights roles equally, so this is "
                    "allowed, but results are less comparable with the reference protocol",
                    path, len(odd), PROMPTS_PER_ROLE, odd[:3])
    return roles


def _load_jsonl_roles(path: Path, expected: int | None) -> list[Role]:
    records = read_jsonl(path, required=["name", "description", "prompts"])
    roles, seen = [], {}
    for rec, lineno in zip(records, _line_numbers(path)):
        where = f"{path}:{lineno}"
        name = _nonempty_str(rec["name"], where, "'name'")
        if name != name.strip():
            raise ValueError(f"{where}: role name {name!r} has leading or trailing spaces")
        if name in RESERVED_NAMES:
            raise ValueError(f"{where}: role name {name!r} is reserved for the default prompts; rename it")
        if name in seen:
            raise ValueError(f"{where}: duplicate role name {name!r} (first at line {seen[name]})")
        seen[name] = lineno
        desc = _nonempty_str(rec["description"], where, f"role {name!r} 'description'")
        category = _nonempty_str(rec.get("category", "uncategorized"), where, f"role {name!r} 'category'")
        prompts = _check_prompts(rec["prompts"], where, name, expected)
        roles.append(Role(name, desc.strip(), category.strip(), prompts))
    return roles


def _load_reference_roles(folder: Path, expected: int | None) -> list[Role]:
    roles = []
    for file in sorted(folder.glob("*.json")):
        if file.stem in RESERVED_NAMES:
            continue
        data = read_json(file)
        where = f"{file}:1"
        if not isinstance(data, dict) or "instruction" not in data:
            raise ValueError(f"{where}: expected a reference role object with an 'instruction' list")
        inst = data["instruction"]
        if not isinstance(inst, list) or not all(isinstance(i, dict) and "pos" in i for i in inst):
            raise ValueError(f"{where}: 'instruction' must be a list of {{\"pos\": \"...\"}} objects")
        prompts = _check_prompts([i["pos"] for i in inst], where, file.stem, expected)
        eval_prompt = data.get("eval_prompt") or ""
        first = next((ln.strip() for ln in str(eval_prompt).splitlines() if ln.strip()), "")
        roles.append(Role(file.stem, first or f"the role '{file.stem}'", str(data.get("category", "uncategorized")),
                          prompts))
    return roles


def load_questions(path: str | Path | None = None) -> list[Question]:
    """Load and validate extraction questions (``{"id", "text"}`` or reference ``{"question"}`` lines)."""
    path = Path(path) if path is not None else data_path("questions.jsonl")
    records = read_jsonl(path)
    questions, seen = [], {}
    for idx, (rec, lineno) in enumerate(zip(records, _line_numbers(path))):
        where = f"{path}:{lineno}"
        if "text" in rec:
            text = rec["text"]
        elif "question" in rec:
            text = rec["question"]
        else:
            raise ValueError(f"{where}: missing key 'text' (or reference-format 'question'); "
                             f"each line needs {{\"id\": ..., \"text\": ...}}")
        text = _nonempty_str(text, where, "question text").strip()
        qid = rec.get("id", f"q{idx:03d}")
        qid = _nonempty_str(str(qid) if isinstance(qid, int) else qid, where, "'id'")
        if qid in seen:
            raise ValueError(f"{where}: duplicate question id {qid!r} (first at line {seen[qid]})")
        seen[qid] = lineno
        questions.append(Question(qid, text))
    if not questions:
        raise ValueError(f"{path}: no questions found")
    texts: dict[str, str] = {}
    for q in questions:
        if q.text in texts:
            log.warning("%s: questions %s and %s have the same text", path, texts[q.text], q.id)
        texts.setdefault(q.text, q.id)
    return questions


def load_default_prompts(path: str | Path | None = None, model_name: str | None = None) -> list[str]:
    """The default-Assistant system prompts ("" = no system turn), ``{model_name}`` filled if given.

    ``path`` may be our JSON file, a bare JSON list, or a reference roles folder
    (its ``default.json`` in the reference role format).
    """
    path = Path(path) if path is not None else data_path("default_prompts.json")
    if path.is_dir():
        path = path / "default.json"
    data = read_json(path)
    if isinstance(data, dict) and "prompts" in data:
        prompts = data["prompts"]
    elif isinstance(data, dict) and "instruction" in data:
        prompts = [i.get("pos") if isinstance(i, dict) else i for i in data["instruction"]]
    else:
        prompts = data
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"{path}:1: expected a non-empty list of strings (or {{\"prompts\": [...]}})")
    if len(set(prompts)) != len(prompts):
        raise ValueError(f"{path}:1: default prompts repeat")
    if model_name is not None:
        prompts = [p.replace("{model_name}", model_name) for p in prompts]
    return list(prompts)


def select(items: Sequence[T], n: int | None, seed: int = 0) -> list[T]:
    """A deterministic subset of ``n`` items for reduced runs, in the original order.

    Items with a ``category`` (roles) are stratified: categories are visited
    round-robin, each shuffled with ``seed``, so any ``n`` >= the number of
    categories includes far-from-Assistant roles (subversive, enigmatic...), not
    just the first lines of the file. Other items are a seeded random sample.
    ``n=None`` or ``n >= len(items)`` returns everything.
    """
    items = list(items)
    if n is None or n >= len(items):
        return items
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    if not all(hasattr(it, "category") for it in items):
        keep = set(rng.sample(range(len(items)), n))
        return [it for i, it in enumerate(items) if i in keep]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        groups[it.category].append(i)
    order = sorted(groups)
    for cat in order:
        rng.shuffle(groups[cat])
    rng.shuffle(order)
    keep, depth = set(), 0
    while len(keep) < n:
        for cat in order:
            if depth < len(groups[cat]) and len(keep) < n:
                keep.add(groups[cat][depth])
        depth += 1
    return [it for i, it in enumerate(items) if i in keep]


def select_roles(roles: Sequence[Role], n: int | None, seed: int = 0) -> list[Role]:
    """Stratified-by-category subset of roles (see :func:`select`)."""
    return select(roles, n, seed)


def select_questions(questions: Sequence[Question], n: int | None, seed: int = 0) -> list[Question]:
    """Seeded random subset of questions, in file order (see :func:`select`)."""
    return select(questions, n, seed)


def describe(roles: Sequence[Role]) -> dict[str, int]:
    """Role count per category, for logs and manifests."""
    counts: dict[str, int] = defaultdict(int)
    for r in roles:
        counts[r.category] += 1
    return dict(sorted(counts.items()))


def dumps_role(role: Role) -> str:
    """One JSONL line in our format (for users converting their own sets)."""
    return json.dumps({"name": role.name, "description": role.description, "category": role.category,
                       "prompts": list(role.prompts)}, ensure_ascii=False)
