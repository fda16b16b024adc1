"""Files never half-written, errors that name file and line, stable hashes, safe tensor loading."""

import os
from pathlib import Path

import pytest
import torch

from persona_probe import io


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    io.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_write(target) as fh:
            fh.write('{"a": 2')
            raise RuntimeError("killed mid-write")
    assert io.read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind
    assert oct(os.stat(target).st_mode & 0o777) != oct(0o600)


def test_read_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"question": "q", "answer": "a"}\n\n{"question": "q2", "answer": \n')
    with pytest.raises(ValueError, match=r"answers\.jsonl:3: malformed JSON"):
        io.read_jsonl(path)
    path.write_text('{"question": "q"}\n')
    with pytest.raises(ValueError, match=r"answers\.jsonl:1: missing key\(s\) \['answer'\]"):
        io.read_jsonl(path, required=["question", "answer"])
    path.write_text('[1, 2]\n')
    with pytest.raises(ValueError, match=r":1: expected a JSON object"):
        io.read_jsonl(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        io.read_jsonl(tmp_path / "missing.jsonl")


def test_jsonl_round_trip_and_append(tmp_path):
    path = tmp_path / "log.jsonl"
    io.write_jsonl(path, [{"x": 1}, {"x": torch.tensor([1.5])}])
    io.append_jsonl(path, {"x": 3})
    assert io.read_jsonl(path) == [{"x": 1}, {"x": [1.5]}, {"x": 3}]


def test_content_hash_is_stable_and_sensitive(tmp_path):
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert io.content_hash({"b": 1, "a": [t]}) == io.content_hash({"a": [t.clone()], "b": 1})
    assert io.content_hash(t) != io.content_hash(t.to(torch.float64))
    assert io.content_hash(t) != io.content_hash(t + 1e-6)
    f = tmp_path / "f.txt"
    f.write_text("one")
    h1 = io.content_hash(Path(f))
    f.write_text("two")
    assert io.content_hash(Path(f)) != h1


def test_safetensors_round_trip_with_metadata(tmp_path):
    path = tmp_path / "axis.safetensors"
    io.save_tensors(path, {"axis": torch.randn(3, 4)}, {"model": "m", "layers": [1, 2]})
    tensors, meta = io.load_tensors(path)
    assert tensors["axis"].shape == (3, 4)
    assert meta["model"] == "m" and meta["layers"] == "[1, 2]"


class _NotATensor:
    pass


def test_load_pt_is_weights_only(tmp_path):
    ok = tmp_path / "ok.pt"
    torch.save({"axis": torch.ones(2, 3)}, ok)
    assert torch.equal(io.load_pt(ok)["axis"], torch.ones(2, 3))
    bad = tmp_path / "bad.pt"
    torch.save({"obj": _NotATensor()}, bad)
    with pytest.raises(ValueError, match="never unpickles arbitrary objects") as exc:
        io.load_pt(bad)
    assert "test_io._NotATensor" in str(exc.value) and "weights_only=False" not in str(exc.value)


def test_cached_computes_once_then_loads(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return [{"a": len(calls)}]

    path = tmp_path / "step-abc.jsonl"
    first = io.cached(path, None, compute, load=io.read_jsonl, save=io.write_jsonl)
    again = io.cached(path, None, compute, load=io.read_jsonl, save=io.write_jsonl)
    assert first == again == [{"a": 1}] and calls == [1]  # the key is in the name: an existing file is the result


def test_cached_with_a_stored_key_recomputes_when_it_differs(tmp_path):
    path = tmp_path / "manifest.json"
    calls = []

    def make(key):
        def compute():
            calls.append(key)
            return {"key": key, "n": len(calls)}
        return compute

    def run(key):
        return io.cached(path, key, make(key), load=io.read_json, save=io.write_json,
                         key_of=lambda p: io.read_json(p)["key"])

    assert run("k1")["n"] == 1
    assert run("k1")["n"] == 1 and calls == ["k1"]  # same key: reused
    assert run("k2") == {"key": "k2", "n": 2}  # another key: recomputed and overwritten
    with pytest.raises(ValueError, match="key_of"):
        io.cached(path, "k3", make("k3"), load=io.read_json)


def test_cached_stores_nothing_when_compute_fails(tmp_path):
    def boom():
        raise RuntimeError("judge timed out")

    path = tmp_path / "step.jsonl"
    with pytest.raises(RuntimeError, match="timed out"):
        io.cached(path, None, boom, load=io.read_jsonl, save=io.write_jsonl)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_cached_tensor_round_trips_with_metadata(tmp_path):
    t = torch.arange(6.0).reshape(2, 3)
    path = tmp_path / "acts-k.safetensors"
    assert torch.equal(io.cached_tensor(path, lambda: t, metadata={"cell": "x"}), t)
    assert torch.equal(io.cached_tensor(path, lambda: t + 1), t)  # loaded, not recomputed
    tensors, meta = io.load_tensors(path)
    assert list(tensors) == ["acts"] and meta == {"cell": "x"}
