"""SAE analysis on the tiny run: sae_lens training beats an untrained SAE, the saved SAE reloads with its layer,
the listed features and cosines are what they claim, the metrics are right on a hand-built SAE, and a second
run (through the script) trains nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from persona_probe.analysis import sae as sae_mod
from persona_probe.analysis.rundir import RunFolder
from persona_probe.io import load_tensors, read_jsonl

SIZES = dict(d_sae=32, k=4, steps=100, lr=1e-2, batch_size=32, n_top=3, seed=0)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def numbers(tiny_run):
    return sae_mod.run(tiny_run, n_baseline=20, progress=False, **SIZES)


def _tokens(tiny_run, numbers):
    out = RunFolder(tiny_run).out_dir("sae")
    [path] = list(out.glob("tokens-*.safetensors"))
    t = load_tensors(path)[0]
    return sae_mod.TokenActs(t["acts"], t["doc"], t["pos"], read_jsonl(path.with_suffix(".jsonl")))


def test_metrics_on_a_hand_built_sae():
    from sae_lens import StandardSAE, StandardSAEConfig

    d = 8
    sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=2 * d))
    with torch.no_grad():  # x = relu(x) - relu(-x): a perfect reconstruction
        eye = torch.eye(d)
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    x = torch.randn(50, d, generator=torch.Generator().manual_seed(0))
    x[:, 0] = 0.0  # never non-zero: both of its features are dead
    m = sae_mod.evaluate_sae(sae, x)
    assert m["explained_variance"] == pytest.approx(1.0, abs=1e-6)
    assert m["l0"] == pytest.approx(d - 1)  # each non-zero coordinate fires exactly one of its two features
    assert m["dead_fraction"] == pytest.approx(2 / (2 * d))
    cos = sae_mod.decoder_cosines(sae, torch.eye(d)[3] * 7.0)
    assert cos[3] == pytest.approx(1.0) and cos[3 + d] == pytest.approx(-1.0) and cos.abs().sum() == pytest.approx(2.0)
    assert set(sae_mod.top_features({"a": cos}, 2)) == {3, 3 + d}


def test_trained_sae_reconstructs_and_beats_an_untrained_one(numbers, tiny_run):
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig

    rec = numbers["reconstruction"]
    # a few hundred tokens of a random model: the held-out answers are few and unlike the rest, so the bar is low
    assert rec["train"]["explained_variance"] > 0.5 and rec["heldout"]["explained_variance"] > 0.1
    assert 0 < rec["heldout"]["l0"] <= SIZES["k"]
    tokens = _tokens(tiny_run, numbers)
    n_tok = rec["train"]["n_tokens"] + rec["heldout"]["n_tokens"]
    assert numbers["tokens"]["n_tokens"] == tokens.acts.shape[0] == n_tok
    torch.manual_seed(0)
    fresh = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=64, d_sae=SIZES["d_sae"], k=SIZES["k"]))
    untrained = sae_mod.evaluate_sae(fresh, tokens.acts)
    assert untrained["explained_variance"] < rec["train"]["explained_variance"] - 0.3
    sources = set(numbers["tokens"]["sources"])
    assert {"organism|trigger", "organism|no_trigger", "axis|default"} <= sources  # answers and axis rollouts


def test_saved_sae_reloads_with_its_layer(numbers, tiny_run):
    path = RunFolder(tiny_run).out_dir("sae") / "sae"
    assert (path / "sae_weights.safetensors").exists() and (path / "cfg.json").exists()
    sae, layer = sae_mod.load_sae(path, 64)
    assert layer == numbers["layer"] == 2 and sae.W_dec.shape == (SIZES["d_sae"], 64)
    tokens = _tokens(tiny_run, numbers)
    # the reloaded weights give the reported reconstruction on all tokens (train + held-out, token-weighted)
    rec = numbers["reconstruction"]
    assert sae_mod.evaluate_sae(sae, tokens.acts)["l0"] == pytest.approx(
        (rec["train"]["l0"] * rec["train"]["n_tokens"] + rec["heldout"]["l0"] * rec["heldout"]["n_tokens"])
        / tokens.acts.shape[0], rel=1e-4)
    with pytest.raises(ValueError, match="trained at layer 2"):
        sae_mod.load_sae(path, 64, layer=1)
    with pytest.raises(ValueError, match="residual stream is 128"):
        sae_mod.load_sae(path, 128)
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        sae_mod.load_sae(path.parent, 64)


def test_listed_features_and_cosines_are_what_they_claim(numbers, tiny_run):
    run = RunFolder(tiny_run)
    sae, layer = sae_mod.load_sae(run.out_dir("sae") / "sae", 64)
    cos_axis = sae_mod.decoder_cosines(sae, run.axis()[layer])
    cos_md = sae_mod.decoder_cosines(sae, run.mean_diff()[layer])
    al = numbers["alignment"]
    assert al["axis"]["max_abs_cos"] == pytest.approx(float(cos_axis.abs().max()), abs=1e-5)
    assert al["axis"]["best_feature"] == int(cos_axis.abs().argmax())
    assert al["mean_diff"]["best_feature"] == int(cos_md.abs().argmax())
    listed = [f["feature"] for f in numbers["features"]]
    assert set(cos_axis.abs().argsort(descending=True)[:3].tolist()) <= set(listed)
    for f in numbers["features"]:
        assert f["cos_axis"] == pytest.approx(float(cos_axis[f["feature"]]), abs=1e-5)
        assert f["cos_mean_diff"] == pytest.approx(float(cos_md[f["feature"]]), abs=1e-5)
        acts = [s["activation"] for s in f["top"]]
        assert acts == sorted(acts, reverse=True) and all(a > 0 for a in acts)
        assert all("[[" in s["text"] and s["source"] in numbers["tokens"]["sources"] for s in f["top"])
        assert 0 <= f["firing_rate"] <= 1
        for r in f["firing_rate_by_source"].values():
            a = r["answers"]
            assert a["lo"] <= a["rate"] <= a["hi"] and a["n"] >= 1 and r["n_tokens"] >= a["n"]
            assert (r["token_rate"] > 0) == (a["k"] > 0)  # fires on some token <=> fires in some answer
    for name in ("axis", "mean_diff"):
        for b in al[name]["baselines"].values():
            assert 1 / 21 <= b["p_baseline_ge_real"] <= 1 and b["n"] == 20
    assert {"decoder_cosines", "top_features"} <= {Path(f).stem for f in numbers["figures"]}


def test_second_run_through_the_script_trains_nothing(numbers, tiny_run, monkeypatch):
    from sae_lens.training.sae_trainer import SAETrainer

    from persona_probe.model import ProbeModel

    def boom(*a, **k):
        raise AssertionError("should have come from the cache")

    monkeypatch.setattr(SAETrainer, "fit", boom)
    monkeypatch.setattr(sae_mod, "collect_token_activations", boom)
    monkeypatch.setattr(ProbeModel, "token_activations", boom)
    spec = importlib.util.spec_from_file_location("sae_script", ROOT / "analyses" / "sae.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["--run", str(tiny_run), "--d-sae", "32", "--k", "4", "--steps", "100", "--lr", "0.01", "--batch-size", "32",
            "--n-top", "3", "--quiet"]
    assert script.main(argv) == 0
    again = RunFolder(tiny_run).numbers("sae")
    assert again["reconstruction"] == numbers["reconstruction"]
    assert again["features"] == numbers["features"]


def test_bad_input_fails_early(tiny_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such SAE folder"):
        sae_mod.run(tiny_run, sae_path=tmp_path / "missing", progress=False)
    with pytest.raises(ValueError, match="heldout_fraction"):
        sae_mod.run(tiny_run, heldout_fraction=0.0, progress=False)
    acts = torch.randn(64, 8)
    with pytest.raises(ValueError, match="architecture"):
        sae_mod.train_sae(acts, tmp_path / "s", architecture="gated")
    with pytest.raises(ValueError, match="k must be"):
        sae_mod.train_sae(acts, tmp_path / "s", d_sae=16, k=32, batch_size=8)
    with pytest.raises(ValueError, match="batch_size"):
        sae_mod.train_sae(acts, tmp_path / "s", batch_size=256)


def test_batched_token_activations_match_one_conversation_at_a_time(tiny_run):
    run = RunFolder(tiny_run)
    model = run.load_model("organism")
    convs = sae_mod.run_conversations(run, prefer="organism")[:5]
    lengths = {len(model.tokenize(c, need_assistant=True).input_ids) for _, c in convs}
    assert len(lengths) > 1  # the batch really needs padding
    tokens = sae_mod.collect_token_activations(model, convs, 2, batch_size=5, progress=False)
    for j, d in enumerate(tokens.docs):
        conv = next(c for s, c in convs if model.tokenize(c, need_assistant=True).input_ids == d["input_ids"])
        single, chat = model.token_activations(conv, layers=[2])
        mine = tokens.doc == j
        assert tokens.pos[mine].tolist() == chat.positions("all")
        torch.testing.assert_close(tokens.acts[mine], single[0, chat.positions("all")], atol=1e-4, rtol=1e-4)
