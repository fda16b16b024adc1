"""Role data: the shipped set's size and spread, reduced-run selection, and file:line validation."""

from __future__ import annotations

import json
import logging
from collections import Counter

import pytest

from persona_probe.axis.roledata import (
    PROMPTS_PER_ROLE,
    Question,
    Role,
    describe,
    dumps_role,
    load_default_prompts,
    load_questions,
    load_roles,
    select,
    select_questions,
    select_roles,
)

FAR_FROM_ASSISTANT = {"enigmatic", "dramatic", "subversive", "fantasy"}


@pytest.fixture(scope="module")
def roles():
    return load_roles()


@pytest.fixture(scope="module")
def questions():
    return load_questions()


def test_shipped_roles_size_and_spread(roles):
    assert len(roles) >= 100
    assert all(isinstance(r, Role) and len(r.prompts) == PROMPTS_PER_ROLE for r in roles)
    counts = Counter(r.category for r in roles)
    assert set(counts) >= {"helpful", "neutral", "enigmatic", "dramatic", "subversive"}
    assert min(counts.values()) >= 10
    assert sum(counts[c] for c in FAR_FROM_ASSISTANT) >= 50
    assert len({r.name for r in roles}) == len(roles)
    for r in roles:
        assert r.description.strip() and "\n" not in r.description and len(r.description) < 200
    all_prompts = [p for r in roles for p in r.prompts]
    assert len(set(all_prompts)) == len(all_prompts)
    # the five prompts per role use different framings, not one sentence repeated
    assert all(len({p.split()[0] for p in r.prompts}) >= 3 for r in roles)
    for name in ("teacher", "nurse", "librarian", "pirate", "oracle", "ghost", "riddler", "tragic_poet",
                 "drama_queen", "con_artist", "nihilist", "trickster", "cult_leader", "rogue_ai", "demon"):
        assert name in {r.name for r in roles}


def test_shipped_questions(questions):
    assert len(questions) >= 60
    assert all(isinstance(q, Question) for q in questions)
    assert len({q.id for q in questions}) == len(questions)
    assert len({q.text for q in questions}) == len(questions)
    assert questions[0].id == "q000" and all(q.text.endswith(("?", ".")) for q in questions)


def test_default_prompts():
    raw = load_default_prompts()
    assert raw == ["", "You are an AI assistant.", "You are a large language model.", "You are {model_name}.",
                   "Respond as yourself."]
    assert load_default_prompts(model_name="SmolLM2")[3] == "You are SmolLM2."


def test_select_is_deterministic_stratified_and_ordered(roles):
    a, b = select(roles, 20, seed=0), select(roles, 20, seed=0)
    assert a == b and len(a) == 20
    assert select(roles, 20, seed=1) != a
    cats = Counter(r.category for r in a)
    assert set(cats) == set(describe(roles))            # every category is represented
    assert max(cats.values()) - min(cats.values()) <= 1  # and evenly
    index = {r.name: i for i, r in enumerate(roles)}
    assert [index[r.name] for r in a] == sorted(index[r.name] for r in a)  # file order kept
    picked = select_roles(roles, 6, seed=3)
    assert picked and {r.category for r in picked} == set(describe(roles))
    assert select(roles, None) == list(roles) and select(roles, 10_000) == list(roles)


def test_select_questions(questions):
    sub = select_questions(questions, 10, seed=2)
    assert len(sub) == 10 and sub == select_questions(questions, 10, seed=2)
    assert len({q.id for q in sub}) == 10


def _write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _role(name="pirate", n=5, **kw):
    rec = {"name": name, "description": "A pirate.", "category": "fantasy",
           "prompts": [f"You are a pirate, take {i}." for i in range(n)]}
    rec.update(kw)
    return json.dumps(rec)


def test_user_roles_any_prompt_count_with_warning(tmp_path, caplog):
    path = _write(tmp_path, "r.jsonl", [_role("a", 2), "", _role("b", 5)])
    with caplog.at_level(logging.WARNING):
        roles = load_roles(path)
    assert [len(r.prompts) for r in roles] == [2, 5]
    assert "do not have 5 prompts" in caplog.text
    with pytest.raises(ValueError, match=r"r\.jsonl:1: role 'a' has 2 prompts; expected 5"):
        load_roles(path, expected_prompts=5)


@pytest.mark.parametrize("lines, pattern", [
    ([_role("a"), _role("b"), '{"name": "c", oops'], r":3: malformed JSON"),
    ([_role("a"), '{"name": "b", "prompts": ["x"]}'], r":2: missing key\(s\) \['description'\]"),
    ([_role("a", 0)], r":1: role 'a' has no prompts; need at least 1 \(the shipped set has 5 per role\)"),
    ([_role("a"), "", _role("b"), _role("a")], r":4: duplicate role name 'a' \(first at line 1\)"),
    ([_role("a", description="  ")], r":1: role 'a' 'description' is empty"),
    ([_role("a", prompts=["fine", ""])], r":1: role 'a' prompt 1 is empty"),
    ([_role("")], r":1: 'name' is empty"),
    ([_role("default")], r":1: role name 'default' is reserved"),
    ([_role("a", prompts="You are a pirate.")], r":1: role 'a': 'prompts' must be a list"),
])
def test_role_file_errors_name_file_and_line(tmp_path, lines, pattern):
    path = _write(tmp_path, "roles.jsonl", lines)
    with pytest.raises(ValueError, match=pattern) as exc:
        load_roles(path)
    assert str(path) in str(exc.value)


def test_question_files(tmp_path):
    ref = _write(tmp_path, "ref.jsonl", ['{"question": "Who are you?"}', "", '{"question": "Why?"}'])
    assert load_questions(ref) == [Question("q000", "Who are you?"), Question("q001", "Why?")]
    dup = _write(tmp_path, "dup.jsonl", ['{"id": "a", "text": "x?"}', "", '{"id": "a", "text": "y?"}'])
    with pytest.raises(ValueError, match=r"dup\.jsonl:3: duplicate question id 'a' \(first at line 1\)"):
        load_questions(dup)
    empty = _write(tmp_path, "empty.jsonl", ['{"id": "a", "text": "x?"}', '{"id": "b", "text": ""}'])
    with pytest.raises(ValueError, match=r"empty\.jsonl:2: question text is empty"):
        load_questions(empty)
    nokey = _write(tmp_path, "nokey.jsonl", ['{"id": "a", "body": "x?"}'])
    with pytest.raises(ValueError, match=r"nokey\.jsonl:1: missing key 'text'"):
        load_questions(nokey)


def test_reference_folder_format(tmp_path):
    (tmp_path / "pirate.json").write_text(json.dumps({
        "instruction": [{"pos": f"Be a pirate {i}."} for i in range(5)],
        "eval_prompt": "Judge whether the answer sounds like a pirate.\nQuestion: {question}\nAnswer: {answer}",
        "questions": ["unused"]}))
    (tmp_path / "default.json").write_text(json.dumps({"instruction": [{"pos": ""}, {"pos": "You are {model_name}."}]}))
    roles = load_roles(tmp_path)
    assert [r.name for r in roles] == ["pirate"]
    assert roles[0].description == "Judge whether the answer sounds like a pirate."
    assert roles[0].prompts[0] == "Be a pirate 0."
    assert load_default_prompts(tmp_path, model_name="Qwen") == ["", "You are Qwen."]
    (tmp_path / "bad.json").write_text('{"instruction": [{"neg": "x"}]}')
    with pytest.raises(ValueError, match=r"bad\.json:1: 'instruction' must be a list"):
        load_roles(tmp_path)


def test_dumps_role_round_trips(tmp_path, roles):
    path = _write(tmp_path, "copy.jsonl", [dumps_role(r) for r in roles[:7]])
    assert load_roles(path, expected_prompts=5) == roles[:7]


def test_roles_fit_the_axis_pipeline_protocol(roles, questions):
    # build_axis reads role.name / .description / .prompts and question.text / .id
    r, q = roles[0], questions[0]
    assert isinstance(r.name, str) and isinstance(r.description, str) and list(r.prompts)
    assert isinstance(q.text, str) and isinstance(q.id, str)
