"""One judge spec for every command line and config: ``from_spec`` / ``parse_spec``."""

from __future__ import annotations

import pytest

from persona_probe.judges import SPELLINGS, JudgeBase, Judgement, MissingAPIKey, from_spec, parse_spec, role_judge


@pytest.mark.parametrize("spec, options", [
    ("none", None),
    ("offline", {"backend": "offline"}),
    ("local", {"backend": "local"}),
    ("local:Qwen/Qwen3-8B", {"backend": "local", "source": "Qwen/Qwen3-8B"}),
    ("local:/models/judge", {"backend": "local", "source": "/models/judge"}),
    ("http", {"backend": "http"}),
    ("http:http://127.0.0.1:8000/v1", {"backend": "http", "base_url": "http://127.0.0.1:8000/v1"}),
    ({"backend": "offline"}, {"backend": "offline"}),
    ({"backend": "http", "model": "gpt-4o", "concurrency": 2},
     {"backend": "http", "model": "gpt-4o", "concurrency": 2}),
    ({"backend": "none"}, None),
])
def test_every_spelling_parses(spec, options):
    assert parse_spec(spec) == options


@pytest.mark.parametrize("spec", ["gpt-4o", "offline:x", "none:x", "", "HTTP:x", {"backend": "openai"}, {}, 3])
def test_unknown_spellings_fail_listing_the_known_ones(spec):
    with pytest.raises(ValueError, match="unknown judge") as exc:
        parse_spec(spec)
    for spelling in SPELLINGS:
        assert spelling in str(exc.value)


def test_from_spec_builds_the_backend(monkeypatch):
    assert from_spec("none") is None
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingAPIKey):  # built, so the key is checked before any request
        from_spec("http:http://127.0.0.1:9/v1")
    judge = from_spec({"backend": "http", "base_url": "http://127.0.0.1:9/v1", "api_key_env": None, "model": "m"})
    assert judge.judge_id("aligned") == "http:m:aligned@v1" and judge.base_url == "http://127.0.0.1:9/v1"


class _Fixed(JudgeBase):
    backend, model = "test", "fixed"

    def score_many(self, kind, items):
        for i, it in enumerate(items):
            yield i, Judgement(float(len(it.context["role"])), judge=self.judge_id(kind))


def test_role_judge_is_the_axis_builds_protocol():
    judge_role = role_judge(_Fixed())
    assert judge_role("pirate", "talks like a pirate", "Hi?", "Arr").score == 6.0
    assert judge_role.judge_id == "test:fixed:role@v1"  # the axis build keys its judge steps by this
