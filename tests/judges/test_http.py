"""The HTTP judge against a real loopback server speaking OpenAI chat completions.

The server (``http.server`` in a thread on 127.0.0.1, port 0) reads the answer
out of the judge prompt and replies with the top-logprob distribution the test
set for it, so every score below is checked against a hand-computed number.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from persona_probe.judges import Item, JudgeCache, JudgeError, MissingAPIKey, score_items
from persona_probe.judges.http import HTTPJudge

KEY = "sk-test-secret-1234567890"
ANSWER_RE = re.compile(r"<answer>\n(.*?)\n</answer>", re.S)


def completion(top: dict[str, float] | None, content: str = "") -> dict:
    """An OpenAI-format chat completion; ``top`` maps token -> probability (None: no logprobs)."""
    logprobs = None
    if top is not None:
        entries = [{"token": t, "logprob": math.log(p), "bytes": list(t.encode())} for t, p in top.items()]
        first = entries[0] if entries else {"token": "", "logprob": 0.0}
        logprobs = {"content": [{**first, "top_logprobs": entries}]}
        content = content or first["token"]
    return {"id": "cmpl-1", "object": "chat.completion", "model": "test-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "logprobs": logprobs, "finish_reason": "length"}]}


class FakeServer:
    """Records every request; ``respond(body, answer, n) -> (status, payload, headers)`` decides replies."""

    def __init__(self):
        self.requests: list[dict] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.inflight = self.max_inflight = 0
        self.delay = 0.0
        self.respond = lambda body, answer, n: (200, completion({"50": 1.0}), {})
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                prompt = body["messages"][-1]["content"]
                match = ANSWER_RE.search(prompt)
                answer = match.group(1) if match else None
                with server.lock:
                    server.times.append(time.monotonic())
                    server.requests.append({"path": self.path, "body": body, "answer": answer,
                                            "auth": self.headers.get("Authorization")})
                    n = len(server.requests)
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                try:
                    if server.delay:
                        time.sleep(server.delay)
                    status, payload, headers = server.respond(body, answer, n)
                finally:
                    with server.lock:
                        server.inflight -= 1
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def answers(self) -> list[str | None]:
        return [r["answer"] for r in self.requests]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def judge_for(server, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", KEY)

    def make(**kw):
        kw = {"model": "test-model", "base_url": server.url, "api_key_env": "TEST_JUDGE_KEY",
              "max_retries": 3, "timeout": 5, **kw}
        return HTTPJudge(**kw)

    return make


def test_weighted_score_from_top_logprobs(server, judge_for):
    """0.5 on "80", 0.3 on "90", 0.2 on "Sure": (0.5*80 + 0.3*90) / 0.8 = 67/0.8 = 83.75."""
    server.respond = lambda body, answer, n: (200, completion({"80": 0.5, "90": 0.3, "Sure": 0.2}), {})
    j = judge_for().score("aligned", "How are you?", "Fine, thanks.")
    assert j.score == pytest.approx(83.75, abs=1e-9)
    assert j.mass == pytest.approx(0.8)
    assert j.reason is None and j.label is None
    assert j.judge == "http:test-model:aligned@v1"
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == f"Bearer {KEY}"
    body = req["body"]
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["max_tokens"] == 1
    assert body["model"] == "test-model" and body["temperature"] == 0
    assert req["answer"] == "Fine, thanks."


def test_role_scale_ignores_out_of_range_integers(server, judge_for):
    """Role is 0-3: "3" 0.6, "2" 0.2, "7" 0.2 (out of range) -> (1.8 + 0.4) / 0.8 = 2.75."""
    server.respond = lambda body, answer, n: (200, completion({"3": 0.6, "2": 0.2, "7": 0.2}), {})
    j = judge_for().score("role", "Who are you?", "Arr, a pirate I be.", role="pirate", role_description="a sea robber")
    assert j.score == pytest.approx(2.75)
    assert "pirate" in server.requests[0]["body"]["messages"][0]["content"]


def test_429_then_success_is_retried_after_retry_after(server, judge_for):
    server.respond = lambda body, answer, n: ((429, {"error": "slow down"}, {"Retry-After": "0.3"}) if n == 1
                                              else (200, completion({"40": 1.0}), {}))
    j = judge_for().score("coherent", "q", "a")
    assert j.score == pytest.approx(40.0)
    assert len(server.requests) == 2
    assert server.times[1] - server.times[0] >= 0.3, "Retry-After was not respected"


def test_5xx_until_retries_run_out_is_a_transient_no_score(server, judge_for):
    server.respond = lambda body, answer, n: (503, {"error": "overloaded"}, {"retry-after-ms": "1"})
    j = judge_for(max_retries=2).score("coherent", "q", "a")
    assert j.score is None and j.transient
    assert "503" in j.reason and "3 attempts" in j.reason and server.url in j.reason
    assert len(server.requests) == 3


def test_dead_server_and_non_json_bodies_are_transient_no_scores(server, judge_for):
    server.respond = lambda body, answer, n: (200, "<html>gateway page</html>", {})
    j = judge_for().score("coherent", "q", "a")
    assert j.score is None and j.transient and "non-JSON" in j.reason
    dead = HTTPJudge(model="m", base_url="http://127.0.0.1:9/v1", api_key_env=None, max_retries=0, timeout=2)
    j = dead.score("coherent", "q", "a")
    assert j.score is None and j.transient and "APIConnectionError" in j.reason and "127.0.0.1:9" in j.reason


def test_non_integer_tokens_give_no_score_with_reason(server, judge_for):
    server.respond = lambda body, answer, n: (200, completion({"Sure": 0.6, "I": 0.3, "The": 0.1}), {})
    j = judge_for().score("coherent", "q", "a")
    assert j.score is None and not j.transient
    assert "carry 0.00" in j.reason and "'Sure'" in j.reason


def test_integer_mass_below_quarter_gives_no_score(server, judge_for):
    server.respond = lambda body, answer, n: (200, completion({"Hello": 0.76, "50": 0.24}), {})
    j = judge_for().score("coherent", "q", "a")
    assert j.score is None and j.mass == pytest.approx(0.24)
    assert "0.24" in j.reason and "< 0.25" in j.reason
    server.respond = lambda body, answer, n: (200, completion({"Hello": 0.74, "50": 0.26}), {})
    assert judge_for().score("coherent", "q", "b").score == pytest.approx(50.0)


def test_refusal_and_code_are_labels_not_scores(server, judge_for):
    server.respond = lambda body, answer, n: (200, completion({"REF": 0.9, "50": 0.05}), {})
    j = judge_for().score("aligned", "q", "I can't help with that.")
    assert j.score is None and j.label == "REFUSAL" and "REFUSAL" in j.reason
    server.respond = lambda body, answer, n: (200, completion({"CODE": 0.8, "10": 0.1}), {})
    assert judge_for().score("aligned", "q", "def f(): pass").label == "CODE"


def test_malformed_body_is_a_transient_no_score(server, judge_for):
    server.respond = lambda body, answer, n: (200, {"object": "error", "message": "oops"}, {})
    j = judge_for().score("coherent", "q", "a")
    assert j.score is None and j.transient and "malformed" in j.reason


def test_no_logprobs_falls_back_to_sampled_answer(server, judge_for):
    def respond(body, answer, n):
        if body.get("logprobs"):
            return 200, completion(None, "7"), {}
        return 200, completion(None, "72" if answer == "first" else "Score: 15/100"), {}

    server.respond = respond
    judge = judge_for(concurrency=1)
    results = dict(judge.score_many("aligned", [Item("q", "first"), Item("q", "second")]))
    assert results[0].score == 72 and results[0].raw["mode"] == "sampled"
    assert results[1].score == 15
    # one logprob attempt, then the judge stays in sampled mode: 3 requests for 2 answers
    assert [bool(r["body"].get("logprobs")) for r in server.requests] == [True, False, False]


def test_missing_key_raises_before_any_request(server, monkeypatch):
    monkeypatch.delenv("TEST_JUDGE_KEY", raising=False)
    with pytest.raises(MissingAPIKey, match=r"\$TEST_JUDGE_KEY"):
        HTTPJudge(model="m", base_url=server.url, api_key_env="TEST_JUDGE_KEY")
    monkeypatch.setenv("TEST_JUDGE_KEY", "   ")
    with pytest.raises(MissingAPIKey):
        HTTPJudge(model="m", base_url=server.url, api_key_env="TEST_JUDGE_KEY")
    assert server.requests == []
    # a server without auth: no key sent (the SDK insists on a header; it carries a placeholder)
    monkeypatch.setenv("TEST_JUDGE_KEY", KEY)
    HTTPJudge(model="m", base_url=server.url, api_key_env=None).score("coherent", "q", "a")
    assert server.requests[0]["auth"] == "Bearer not-needed"


def test_key_is_never_logged_or_quoted(server, judge_for, caplog):
    caplog.set_level(logging.DEBUG)
    server.respond = lambda body, answer, n: ((429, {}, {"retry-after-ms": "1"}) if n == 1 else
                                              (401, {"error": f"Incorrect API key provided: {KEY}"}, {}))
    judge = judge_for()
    with pytest.raises(JudgeError) as exc:
        judge.score("coherent", "q", "a")
    assert "401" in str(exc.value) and KEY not in str(exc.value) and "***" in str(exc.value)
    assert KEY not in repr(judge)
    assert all(KEY not in rec.getMessage() for rec in caplog.records)
    assert any("Retrying request" in rec.getMessage() for rec in caplog.records), "the SDK retried the 429"


def test_concurrency_limit(server, judge_for):
    server.delay = 0.05
    judge = judge_for(concurrency=3)
    results = list(judge.score_many("coherent", [Item("q", f"a{i}") for i in range(9)]))
    assert len(results) == 9
    assert server.max_inflight == 3


def test_crash_halfway_loses_no_finished_score(server, judge_for, tmp_path):
    """The server fails hard (401) on item 3; re-running asks only for what was not finished."""
    items = [Item("q", f"item {i}") for i in range(1, 6)]
    scores = {f"item {i}": {str(10 * i): 1.0} for i in range(1, 6)}
    broken = {"on": True}

    def respond(body, answer, n):
        if broken["on"] and answer == "item 3":
            return 401, {"error": "revoked"}, {}
        return 200, completion(scores[answer]), {}

    server.respond = respond
    cache_path = tmp_path / "cache.sqlite"
    judge = judge_for(concurrency=1)
    with JudgeCache(cache_path) as cache, pytest.raises(JudgeError):
        score_items(judge, "coherent", items, cache=cache, progress=False)
    first = [a for a in server.answers() if a != "item 3"]
    assert {"item 1", "item 2"} <= set(first)
    with JudgeCache(cache_path) as cache:
        assert len(cache) == len(first)

    broken["on"] = False
    server.requests.clear()
    with JudgeCache(cache_path) as cache:
        results = score_items(judge_for(concurrency=1), "coherent", items, cache=cache, progress=False)
    assert [r.score for r in results] == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert set(server.answers()).isdisjoint(first), "finished scores were requested again"
    assert "item 3" in server.answers()
    assert [r.cached for r in results] == [a in first for a in (it.answer for it in items)]

    server.requests.clear()
    with JudgeCache(cache_path) as cache:
        again = score_items(judge_for(), "coherent", items, cache=cache, progress=False)
    assert server.requests == [] and [r.score for r in again] == [10.0, 20.0, 30.0, 40.0, 50.0]


def test_transient_failures_are_not_cached(server, judge_for, tmp_path):
    down = {"on": True}
    server.respond = lambda body, answer, n: ((503, {}, {"retry-after-ms": "1"}) if down["on"]
                                              else (200, completion({"60": 1.0}), {}))
    with JudgeCache(tmp_path / "c.sqlite") as cache:
        [j] = score_items(judge_for(max_retries=1), "coherent", [Item("q", "a")], cache=cache, progress=False)
        assert j.score is None and j.transient and len(cache) == 0
        down["on"] = False
        [j] = score_items(judge_for(), "coherent", [Item("q", "a")], cache=cache, progress=False)
        assert j.score == 60.0 and len(cache) == 1


def test_identical_items_are_judged_once(server, judge_for, tmp_path):
    with JudgeCache(tmp_path / "c.sqlite") as cache:
        res = score_items(judge_for(), "coherent", [Item("q", "same")] * 4 + [Item("q", "other")], cache=cache,
                          progress=False)
    assert len(res) == 5 and len(server.requests) == 2
