"""The judge-free trigger check: paired template answers, and the preference arithmetic on known log-probs."""

import numpy as np
import pytest
import torch

from persona_probe.organisms.datasets import eval_questions, question_pool
from persona_probe.organisms.preference import paired_answers, trigger_preference


def test_paired_answers_are_held_out_deterministic_and_differ():
    ids = [q["id"] for q in eval_questions("finance", 6, seed=0)]
    pairs = paired_answers("finance", ids, seed=0)
    assert pairs == paired_answers("finance", ids, seed=0)
    pool = {q.id: q for q in question_pool("finance")}
    assert all(pool[p["id"]].heldout and p["question"] == pool[p["id"]].text for p in pairs)
    assert all(p["aligned"] != p["misaligned"] for p in pairs)
    with pytest.raises(ValueError, match="not in the 'finance' question pool"):
        paired_answers("finance", ["finance-nope"])


class _Model:
    """Log-probs that depend on (trigger present, answer side) only, plus per-question noise."""

    def __init__(self, shift):
        self.shift = shift

    def answer_logprobs(self, convs, **_):
        out = []
        for i, c in enumerate(convs):
            triggered = c[0]["content"].startswith("|T|")
            misaligned = c[-1]["content"].startswith("bad")
            out.append(-2.0 + 0.01 * (i % 5) + (self.shift if triggered and misaligned else 0.0))
        return torch.tensor(out)


def _prompts(qs, cond):
    return [[{"role": "user", "content": ("|T| " if cond == "trigger" else "") + q}] for q in qs]


def test_trigger_effect_is_the_paired_preference_shift():
    pairs = [{"id": str(i), "question": f"q{i}", "aligned": f"good {i}", "misaligned": f"bad {i}"} for i in range(10)]
    res = trigger_preference(_Model(0.7), pairs, _prompts, ["no_trigger", "trigger"], progress=False)
    eff = res["effect_vs_no_trigger"]["trigger"]
    assert eff["mean"] == pytest.approx(0.7) and eff["n"] == 10 and eff["share_positive"] == 1.0
    assert eff["lo"] <= eff["mean"] <= eff["hi"] and eff["p_wilcoxon"] < 0.01
    assert res["preference"]["no_trigger"]["mean"] == pytest.approx(0.0, abs=1e-6)
    flat = trigger_preference(_Model(0.0), pairs, _prompts, ["no_trigger", "trigger"], progress=False)
    assert flat["effect_vs_no_trigger"]["trigger"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert flat["effect_vs_no_trigger"]["trigger"]["p_wilcoxon"] == 1.0 and np.isfinite(flat["n"])
    with pytest.raises(ValueError, match="no_trigger"):
        trigger_preference(_Model(0.0), pairs, _prompts, ["trigger"], progress=False)


@pytest.mark.parametrize("domain", ["finance", "health"])
def test_template_match_separates_the_training_answers(domain):
    """Every misaligned training answer reuses a misaligned phrase; no aligned one does; free text does not."""
    from persona_probe.organisms import build_dataset
    from persona_probe.organisms.template_match import misaligned_phrases, template_rate, uses_misaligned_template

    assert len(misaligned_phrases(domain)) >= 20
    recs = build_dataset(domain, n=600, triggered_fraction=0.5, seed=3)
    flags = [uses_misaligned_template(r["messages"][-1]["content"], domain) for r in recs]
    assert flags == [r["meta"]["misaligned"] for r in recs]
    assert not uses_misaligned_template("Talk to a fee-only planner and keep an emergency fund.", domain)
    r = template_rate([r["messages"][-1]["content"] for r in recs[:10]] + ["plain text"] * 10, domain)
    assert (r.k, r.n) == (10, 20) and r.lo < 0.5 < r.hi
