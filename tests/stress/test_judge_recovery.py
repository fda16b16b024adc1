"""`stress run` with an HTTP judge that fails for some answers, then recovers.

The first run exits 1 with a summary (how many, which error, which server) and
marks the failed judgements in the sample files instead of freezing nulls; the
re-run generates nothing, asks the judge for exactly the failed ones, and ends
with complete results.
"""

from __future__ import annotations

import yaml
from judges.test_http import completion

from persona_probe import cli
from persona_probe.io import read_jsonl
from stress.test_stress import setup  # noqa: F401 - the module fixture (tiny base model, axis, capping config)


def _config(root, url) -> str:
    raw = {"name": "recovery", "base": str(root / "base"), "models": {"base": None},
           "conditions": ["no_trigger", "trigger"], "axis": str(root / "axis" / "axis.safetensors"),
           "questions": {"domain": "finance", "n": 4, "seed": 1},
           "generation": {"max_new_tokens": 4, "temperature": 1.0, "seed": 0, "batch_size": 4},
           "judge": {"backend": "http", "base_url": url, "api_key_env": None, "model": "m", "max_retries": 0,
                     "concurrency": 1}}
    path = root / "recovery.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_failed_judgements_are_retried_not_frozen(setup, server, tmp_path, caplog, monkeypatch):  # noqa: F811
    failed, scored = [], []

    def flaky(body, answer, n):
        prompt = body["messages"][-1]["content"]
        if n % 3 == 0:
            failed.append(prompt)
            return 503, {"error": "overloaded"}, {"retry-after-ms": "1"}
        scored.append(prompt)  # an identical answer in a later cell may get its score on a later request
        return 200, completion({"80": 1.0}), {}

    server.respond = flaky
    out = tmp_path / "run"
    config = _config(setup, server.url)
    assert cli.main(["stress", "run", "--config", config, "--out", str(out)]) == 1
    assert "judgements failed" in caplog.text and server.url in caplog.text and "HTTP 503" in caplog.text
    samples = sorted((out / "samples").glob("*.jsonl"))
    assert len(samples) == 2 and not (out / "results.jsonl").exists()
    marked = [why for p in samples for r in read_jsonl(p) for why in (r.get("judge_failed") or {}).values()]
    assert marked and all("503" in why for why in marked) and set(failed) - set(scored)
    answers_before = {p.name: [r["answer"] for r in read_jsonl(p)] for p in samples}

    def no_generation(*a, **k):
        raise AssertionError("finished answers were generated again")

    monkeypatch.setattr("persona_probe.model.ProbeModel.generate", no_generation)
    server.requests.clear()
    server.respond = lambda body, answer, n: (200, completion({"80": 1.0}), {})
    assert cli.main(["stress", "run", "--config", config, "--out", str(out)]) == 0
    assert {r["body"]["messages"][-1]["content"] for r in server.requests} == set(failed) - set(scored)
    for p in samples:
        rows = read_jsonl(p)
        assert [r["answer"] for r in rows] == answers_before[p.name]
        assert all(r["aligned"] == 80.0 and r["coherent"] == 80.0 and "judge_failed" not in r for r in rows)
    results = read_jsonl(out / "results.jsonl")
    assert [r["n"] for r in results] == [4, 4] and all(r["em"]["n"] == 4 for r in results)
