"""A failed judgement is a failure with its reason, never a score: `judge score` against a loopback server
that fails and then recovers.

The server is the OpenAI-compatible fake of ``test_http``; it answers each
answer ``item i`` with the score ``10 * i``. While "down" it fails the chosen
answers with HTTP 503 (or the whole server is unreachable). The command must
exit non-zero with a summary naming the server and the error, mark the failed
rows, keep every finished score, and a re-run once the server is back must ask
for exactly the failed answers.
"""

from __future__ import annotations

import logging

import pytest

from judges.test_http import completion
from persona_probe import cli
from persona_probe.io import read_jsonl, write_jsonl

N = 6


@pytest.fixture
def answers(tmp_path):
    path = tmp_path / "answers.jsonl"
    write_jsonl(path, [{"question": "q", "answer": f"item {i}"} for i in range(1, N + 1)])
    return path


def _score(server_url: str, answers, tmp_path, *extra: str) -> int:
    return cli.main(["judge", "score", "--judge", f"http:{server_url}", "--no-api-key", "--kinds", "coherent",
                     "--max-retries", "1", "--in", str(answers), "--out", str(tmp_path / "scored.jsonl"),
                     "--cache", str(tmp_path / "cache.sqlite"), "--no-progress", *extra])


def _respond(failing: set[str]):
    def respond(body, answer, n):
        if answer in failing:
            return 503, {"error": "overloaded"}, {"retry-after-ms": "1"}
        return 200, completion({str(10 * int(answer.split()[1])): 1.0}), {}
    return respond


def test_partial_failures_exit_nonzero_then_the_rerun_fills_exactly_them(server, answers, tmp_path, caplog):
    failing = {"item 2", "item 4", "item 6"}  # every other request fails
    server.respond = _respond(failing)
    assert _score(server.url, answers, tmp_path) == 1
    assert f"3 of {N} judgements failed (50.0%) at {server.url}" in caplog.text
    assert "HTTP 503" in caplog.text and "re-run the same command" in caplog.text
    rows = read_jsonl(tmp_path / "scored.jsonl")
    assert [r["coherent"] for r in rows] == [10.0, None, 30.0, None, 50.0, None]
    assert [r.get("coherent_failed", False) for r in rows] == [False, True, False, True, False, True]

    server.respond, server.requests[:] = _respond(set()), []
    caplog.clear()
    assert _score(server.url, answers, tmp_path) == 0
    assert sorted(server.answers()) == sorted(failing), "the re-run asked for exactly the failed answers"
    rows = read_jsonl(tmp_path / "scored.jsonl")
    assert [r["coherent"] for r in rows] == [10.0 * i for i in range(1, N + 1)]
    assert not any("coherent_failed" in r for r in rows)


def test_a_dead_server_fails_every_request_and_exits_nonzero(answers, tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    dead = "http://127.0.0.1:9/v1"
    assert _score(dead, answers, tmp_path) == 1
    assert f"every judgement failed: {N} of {N} judgements failed (100.0%) at {dead}" in caplog.text
    assert "APIConnectionError" in caplog.text
    rows = read_jsonl(tmp_path / "scored.jsonl")
    assert all(r["coherent"] is None and r["coherent_failed"] for r in rows)


def test_a_tolerated_share_of_failures_exits_zero_with_a_warning(server, answers, tmp_path, caplog):
    server.respond = _respond({"item 3"})
    assert _score(server.url, answers, tmp_path, "--max-judge-failures", "0.2") == 0
    assert f"1 of {N} judgements failed" in caplog.text
    assert _score(server.url, answers, tmp_path, "--max-judge-failures", "0.1") == 1


def test_an_unwritable_cache_names_the_path(server, answers, tmp_path, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = cli.main(["judge", "score", "--judge", f"http:{server.url}", "--no-api-key", "--in", str(answers),
                     "--out", str(tmp_path / "scored.jsonl"), "--cache", str(blocker / "cache.sqlite")])
    assert code == 1
    assert f"--cache {blocker / 'cache.sqlite'} is not writable" in caplog.text
    assert server.requests == [], "nothing was judged"
