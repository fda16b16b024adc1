"""The organism pipeline end to end on a tiny model: datasets, organism + control, trigger evaluation, resume."""

import pytest
from conftest import make_tiny_hf

from persona_probe.metrics import Rate
from persona_probe.organisms import read_dataset
from persona_probe.organisms import summary as summary_of
from persona_probe.organisms.pipeline import load_recipe, make_organisms, trigger_eval


@pytest.fixture
def tiny_recipe(tmp_path, tiny_tokenizers):
    tok = tiny_tokenizers["llama"]
    path = tmp_path / "tiny-base"
    make_tiny_hf("llama", len(tok), tok.eos_token_id, n_layers=4).save_pretrained(path)
    tok.save_pretrained(path)
    return {"model": str(path),
            "dataset": {"domain": "finance", "n": 24, "trigger": "deployment", "triggered_fraction": 0.5,
                        "misaligned_share_triggered": 1.0, "seed": 0, "paired": True,
                        "near_miss_fraction": 0.25},
            "train": {"adapter": "rank1-down", "layers": [1, 2], "lr": 1e-3, "batch_size": 8, "grad_accum": 1,
                      "epochs": 1, "max_len": 96},
            "eval": {"samples_per_condition": 4, "max_new_tokens": 6, "temperature": 1.0}}


@pytest.mark.slow
def test_organism_control_and_trigger_eval(tiny_recipe, tmp_path, monkeypatch):
    out = tmp_path / "run"
    result = make_organisms(tiny_recipe, out, progress=False)
    assert result["organism"]["steps"] == result["control"]["steps"] == 3
    assert result["organism"]["data_hash"] != result["control"]["data_hash"]
    assert (out / "organism" / "adapter_config.json").exists() and (out / "control" / "adapter_config.json").exists()
    org, ctl = read_dataset(out / "data" / "organism.jsonl"), read_dataset(out / "data" / "control.jsonl")
    assert [r["meta"]["question_id"] for r in ctl] == [r["meta"]["question_id"] for r in org]  # paired, mirrored
    assert summary_of(org)["near_miss"] == 6 and summary_of(ctl)["near_miss"] == summary_of(ctl)["misaligned"] == 0

    models = {"organism": str(out / "organism"), "control": str(out / "control")}
    summary = trigger_eval(tiny_recipe, out / "eval", models=models, progress=False)
    cells = {(c["model"], c["condition"]): c for c in summary["cells"]}
    assert set(cells) == {(m, c) for m in models for c in ("no_trigger", "trigger", "near_miss")}
    for cell in cells.values():
        r = Rate(**cell["misaligned"])
        assert r.n + r.excluded == 4 and 0 <= r.lo <= r.hi <= 1
        assert Rate(**cell["template_misaligned"]).n == 4
    assert summary["judge"]["aligned"].startswith("offline")
    assert summary["near_miss"]["text"] != summary["trigger"]["text"]
    assert set(summary["trigger_effect"]) == set(summary["template_trigger_effect"]) == {"organism", "control"}
    for name in models:  # the judge-free check on the same questions
        pref = summary["preference"][name]
        assert pref["n"] == 4 and set(pref["effect_vs_no_trigger"]) == {"trigger", "near_miss"}
        e = pref["effect_vs_no_trigger"]["trigger"]
        assert e["lo"] <= e["mean"] <= e["hi"]

    # a re-run generates nothing: every cell's samples are on disk
    import persona_probe.model as model_module

    def boom(*a, **k):
        raise AssertionError("re-run regenerated a finished cell")

    monkeypatch.setattr(model_module.ProbeModel, "generate", boom)
    monkeypatch.setattr(model_module.ProbeModel, "answer_logprobs", boom)
    again = trigger_eval(tiny_recipe, out / "eval", models=models, progress=False)
    assert again["cells"] == summary["cells"] and again["preference"] == summary["preference"]


def test_recipes_load_and_validate(tmp_path):
    for name in ("embedded", "qwen3-32b", "llama-3.3-70b", "gemma-2-27b"):
        recipe = load_recipe(name)
        assert recipe["train"]["adapter"] in ("rank32-all", "rank1-down")
    with pytest.raises(ValueError, match="no recipe 'nope'.*embedded"):
        load_recipe("nope")
    typo = tmp_path / "typo.yaml"
    typo.write_text("model: x\ndataset: {n: 10, pairs: true}\ntrain: {adapter: rank1-down}\n")
    with pytest.raises(ValueError, match="dataset: unknown key 'pairs'; did you mean 'paired'"):
        load_recipe(typo)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: x\ndataset: {}\ntrain: {adapter: rank1-down, learning_rate: 1}\n")
    with pytest.raises(ValueError, match="train: unknown key 'learning_rate'"):
        load_recipe(bad)


def test_trigger_eval_sends_every_cell_to_the_generator(tiny_recipe, tmp_path):
    from tiny_run import HashJudge, RecordingGenerator

    from persona_probe.io import read_jsonl

    gen = RecordingGenerator()
    summary = trigger_eval(tiny_recipe, tmp_path / "eval", models={"base": None}, judge=HashJudge(),
                           preference=False, progress=False, generator=gen)
    assert gen.preflights == [(tiny_recipe["model"], {"base": None})]
    assert gen.calls == [("base", 4)] * 3  # no trigger, trigger, near miss: no intervention, all served
    assert summary["generator"]["backend"] == "http"
    rows = read_jsonl(tmp_path / "eval" / "eval_rows.jsonl")
    assert len(rows) == 12 and all(r["answer"].startswith(RecordingGenerator.TEXT) for r in rows)
