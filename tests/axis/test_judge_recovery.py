"""Axis build with an HTTP role judge that fails, then recovers: failures are recorded, never frozen as nulls.

Before the fix, failed judgements were written into the judge step files as
``null`` scores, a re-run made no judge calls, and the build ended with "no
role vectors left ... lower min_count", blaming the wrong thing.
"""

from __future__ import annotations

import pytest
import torch
from judges.test_http import completion

from axis.test_pipeline import DEFAULTS, KW, QUESTIONS, ROLES, llama  # noqa: F401 - the module fixture
from persona_probe.axis import load_axis
from persona_probe.axis.pipeline import build_axis
from persona_probe.io import read_jsonl
from persona_probe.judges import JudgeFailures, role_judge
from persona_probe.judges.http import HTTPJudge


def test_failed_role_judgements_are_retried_and_the_rerun_fills_exactly_them(llama, server, tmp_path):  # noqa: F811
    failed: list[str] = []

    def flaky(body, answer, n):
        if n % 2 == 0:  # every other request fails
            failed.append(body["messages"][-1]["content"])
            return 503, {"error": "overloaded"}, {"retry-after-ms": "1"}
        return 200, completion({"3": 1.0}), {}

    server.respond = flaky
    judge = role_judge(HTTPJudge(model="m", base_url=server.url, api_key_env=None, max_retries=0, concurrency=1))
    out = tmp_path / "axis"
    with pytest.raises(JudgeFailures) as exc:
        build_axis(llama, out, ROLES, QUESTIONS, DEFAULTS, judge=judge, figures=False, **KW)
    total = len(ROLES) * 2 * len(QUESTIONS)
    assert f"{len(failed)} of {total} judgements failed" in str(exc.value) and server.url in str(exc.value)
    assert "HTTP 503" in str(exc.value) and "min_count" not in str(exc.value)
    steps = sorted((out / "steps").glob("judge-*.jsonl"))
    rows = [r for p in steps for r in read_jsonl(p)]
    assert sum(bool(r.get("failed")) for r in rows) == len(failed) > 0
    assert all(r["score"] == 3.0 for r in rows if not r.get("failed")), "finished scores are kept"
    assert not (out / "axis.safetensors").exists()

    prompts_failed = set(failed)
    server.requests.clear()
    server.respond = lambda body, answer, n: (200, completion({"3": 1.0}), {})
    res = build_axis(llama, out, ROLES, QUESTIONS, DEFAULTS, judge=judge, figures=False, **KW)
    asked = {r["body"]["messages"][-1]["content"] for r in server.requests}
    assert asked == prompts_failed and len(server.requests) == len(prompts_failed)
    assert res.manifest["kept_per_role"] == {r.name: 2 * len(QUESTIONS) for r in ROLES}
    rows = [r for p in sorted((out / "steps").glob("judge-*.jsonl")) for r in read_jsonl(p)]
    assert all(r["score"] == 3.0 and not r.get("failed") for r in rows)
    assert torch.isfinite(load_axis(out / "axis.safetensors")).all()
