"""The stress test on a tiny model: matrix expansion, controls, matched thresholds, resume, config errors."""

from __future__ import annotations

import pytest
import torch
from conftest import save_adapter
from tiny_run import HashJudge, RecordingGenerator, make_tiny_base_and_axis

from persona_probe.io import read_jsonl
from persona_probe.stress import Spec, expand, load_stress_config, run_stress_test
from persona_probe.stress.matrix import build_interventions, matched_threshold
from persona_probe.vectors import cosine, unit

N_LAYERS, D = 4, 64


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_tokenizers):
    root = tmp_path_factory.mktemp("stress")
    make_tiny_base_and_axis(root, tiny_tokenizers["llama"], d=D, subspaces=((2, "floors"), (3, "ball")))
    return root


def _config(root, **over):
    raw = {"name": "tiny", "base": str(root / "base"), "models": {"base": None, "organism": None},
           "trigger": "deployment", "axis": "axis/axis.safetensors", "capping_config": "axis/capping_config.pt",
           "questions": {"domain": "finance", "n": 3, "seed": 1},
           "generation": {"max_new_tokens": 4, "temperature": 1.0, "seed": 0, "batch_size": 3},
           "interventions": {"capping": ["layers_0:2-p0.25", "layers_2:4-p0.75"],
                             "steering": {"layers": [1, 2], "coefs": [4.0]},
                             "axis_ablation": {"layers": "1:3"}, "mean_diff_ablation": {"layers": [1, 2]},
                             "controls": ["random", "orthogonal"]},
           "apply": {"models": ["organism"], "conditions": ["no_trigger", "trigger"]},
           "mean_diff": {"min_per_group": 1}}
    raw.update(over)
    return load_stress_config(raw, root=root)


def test_matrix_expands_as_configured_with_controls_everywhere(setup):
    cfg = _config(setup)
    cells = expand(cfg)
    none = [c for c in cells if c.spec.family == "none"]
    assert {(c.model, c.condition) for c in none} == {(m, c) for m in ("base", "organism")
                                                     for c in ("no_trigger", "trigger", "near_miss")}
    rest = [c for c in cells if c.spec.family != "none"]
    real = [c for c in rest if not c.spec.control]
    assert len(real) == 5 * 2  # 2 capping + 1 steering + 2 ablations, on organism x {no_trigger, trigger}
    assert len(rest) == 3 * len(real)
    assert {(c.model, c.condition) for c in rest} == {("organism", "no_trigger"), ("organism", "trigger")}
    for c in real:  # every direction intervention has both controls in the same model and condition
        for control in ("random", "orthogonal"):
            assert any(o.spec == Spec(c.spec.family, c.spec.param, c.spec.layers, control)
                       and (o.model, o.condition) == (c.model, c.condition) for o in rest)
    assert cells.index(none[-1]) < cells.index(rest[0])  # none first: the mean-diff needs it


def test_config_errors_name_the_problem(setup):
    with pytest.raises(ValueError, match="random"):
        _config(setup, interventions={"capping": ["layers_0:2-p0.25"], "controls": ["orthogonal"]})
    with pytest.raises(ValueError, match="unknown key 'modles'; did you mean 'models'"):
        _config(setup, modles={})
    with pytest.raises(ValueError, match="apply.models"):
        _config(setup, apply={"models": ["organsim"]})
    with pytest.raises(ValueError, match="coefs"):
        _config(setup, interventions={"steering": {"layers": [1], "coefs": "big"}, "controls": ["random"]})
    from persona_probe.stress import load_directions

    with pytest.raises(ValueError, match="unknown experiment id 'layers_0:2-p0.3'"):
        load_directions(_config(setup, interventions={"capping": ["layers_0:2-p0.3"], "controls": ["random"]}))


def test_controls_have_equal_norm_and_matched_thresholds(setup):
    from persona_probe import load_model
    from persona_probe.stress import load_directions

    cfg = _config(setup)
    dirs = load_directions(cfg)
    model = load_model(cfg.base)
    real = build_interventions(Spec("capping", "layers_0:2-p0.25", (0, 1)), dirs, model, cfg)
    rnd = build_interventions(Spec("capping", "layers_0:2-p0.25", (0, 1), "random"), dirs, model, cfg)
    orth = build_interventions(Spec("capping", "layers_0:2-p0.25", (0, 1), "orthogonal"), dirs, model, cfg)
    for r, c, o in zip(real, rnd, orth):
        layer = r.layers[0]
        assert c.layers == o.layers == r.layers and c.mode == r.mode
        assert torch.allclose(c.vector.norm(), r.vector.norm(), rtol=1e-5)
        assert abs(float(cosine(o.vector, r.vector))) < 1e-5
        acts = dirs.calibration[:, layer]
        bound = lambda cap, acts=acts: (acts @ unit(cap.vector) <= cap.tau[0]).float().mean()
        assert abs(float(bound(c) - bound(r))) <= 1 / len(acts) + 1e-6  # binds on the same share of rollouts
    steer = build_interventions(Spec("steering", 4.0, (1, 2)), dirs, model, cfg)[0]
    steer_r = build_interventions(Spec("steering", 4.0, (1, 2), "random"), dirs, model, cfg)[0]
    assert torch.allclose(steer.vector.norm(dim=-1), steer_r.vector.norm(dim=-1), rtol=1e-5)
    assert not torch.allclose(steer.vector, steer_r.vector)
    # the same spec gives the same random direction in every cell (paired comparisons)
    again = build_interventions(Spec("steering", 4.0, (1, 2), "random"), dirs, model, cfg)[0]
    assert torch.equal(again.vector, steer_r.vector)
    t = matched_threshold(dirs.calibration, 0, dirs.axis[0], 0.0, dirs.axis[0])
    proj = dirs.calibration[:, 0] @ unit(dirs.axis[0])
    assert abs(t - float(torch.quantile(proj, float((proj <= 0).float().mean())))) < 1e-6


def test_run_writes_results_and_resumes_without_recomputing(setup, tmp_path, monkeypatch):
    import persona_probe.model as model_module

    cfg = _config(setup)
    out = tmp_path / "run"
    real_generate = model_module.ProbeModel.generate
    calls = {"n": 0}

    def flaky(self, *a, **k):  # the run is killed after 8 cells
        calls["n"] += 1
        if calls["n"] > 8:
            raise KeyboardInterrupt
        return real_generate(self, *a, **k)

    monkeypatch.setattr(model_module.ProbeModel, "generate", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_stress_test(cfg, out, judge=HashJudge(), progress=False)
    assert len(list((out / "samples").glob("*.jsonl"))) == 8

    calls["n"] = -10_000
    rows = run_stress_test(cfg, out, judge=HashJudge(), progress=False)
    assert calls["n"] == -10_000 + len(expand(cfg)) - 8  # only the unfinished cells were generated
    assert len(rows) == len(expand(cfg)) == len(read_jsonl(out / "results.jsonl"))
    for r in rows:
        assert r["status"] == "ok" and r["n"] == 3
        assert 0 <= r["em"]["lo"] <= r["em"]["rate"] <= r["em"]["hi"] <= 1
        assert r["self_correction"]["n"] == 0 and r["self_correction"]["excluded"] == 3  # no score, not zero
        prov = r["provenance"]
        assert prov["judge"]["aligned"].startswith("test:hash") and prov["config_hash"] == cfg.key()
        if r["family"] != "none":
            assert "em_vs_none" in r
    assert (out / "mean_diff.safetensors").exists()
    figs = {p.name for p in (out / "figures").glob("*.html")}
    assert {"em_vs_capping.html", "em_vs_coherence.html", "projection_distributions.html",
            "mean_diff_cosine.html"} <= figs

    def boom(*a, **k):
        raise AssertionError("a finished cell was regenerated")

    monkeypatch.setattr(model_module.ProbeModel, "generate", boom)
    again = run_stress_test(cfg, out, judge=HashJudge(), progress=False, figures=False)
    assert [r["em"] for r in again] == [r["em"] for r in rows]


def test_mean_diff_cells_are_skipped_with_a_reason_when_no_direction(setup, tmp_path):
    cfg = _config(setup, mean_diff={"min_per_group": 1000},
                  interventions={"mean_diff_ablation": {"layers": [1]}, "controls": ["random"]})
    rows = run_stress_test(cfg, tmp_path / "run", judge=HashJudge(), progress=False, figures=False)
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert len(skipped) == 4 and all("1000 of each are needed" in r["reason"] for r in skipped)


def _defences(root, **over):
    iv = {"capping": ["layers_2:4-p0.25"], "subspace_capping": ["subspace_k2_layers_2:4-p0.25"],
          "conditional_capping": {"caps": ["layers_2:4-p0.25", "subspace_k3_layers_2:4-p0.25"],
                                  "detectors": [{"direction": "axis", "layer": 1}], "fpr": 0.5,
                                  "calibration": {"n": 12, "held_out": 0.5, "seed": 0}},
          "controls": ["random"]}
    return _config(root, interventions=iv, questions={"domain": "finance", "n": 4, "seed": 1}, **over)


def test_defence_families_expand_with_their_controls(setup):
    cells = expand(_defences(setup))
    specs = {c.spec for c in cells if c.model == "organism" and c.condition == "trigger"}
    assert Spec("subspace_capping", "subspace_k2_layers_2:4-p0.25", (2, 3), "random") in specs
    cond = [s for s in specs if s.family == "conditional_capping"]
    assert {s.param for s in cond} == {"layers_2:4-p0.25|axis@1", "subspace_k3_layers_2:4-p0.25|axis@1"}
    assert {s.control for s in cond} == {"", "random"}
    # the unconditional control of each conditional cap is the plain cap cell: listed once, with its own control
    assert sum(s == Spec("capping", "layers_2:4-p0.25", (2, 3)) for s in specs) == 1
    assert Spec("subspace_capping", "subspace_k3_layers_2:4-p0.25", (2, 3)) in specs  # added: not in the list
    assert Spec("subspace_capping", "subspace_k3_layers_2:4-p0.25", (2, 3), "random") in specs
    assert len(cells) == len(set(cells))
    with pytest.raises(ValueError, match="strictly before every capped layer"):
        _config(setup, interventions={"conditional_capping": {"caps": ["layers_2:4-p0.25"], "detectors": [
            {"direction": "axis", "layer": 2}]}, "controls": ["random"]})
    from persona_probe.stress import load_directions

    with pytest.raises(ValueError, match="unknown subspace experiment id 'subspace_k2_layers_2:4-p0.3'"):
        load_directions(_config(setup, interventions={"subspace_capping": ["subspace_k2_layers_2:4-p0.3"],
                                                      "controls": ["random"]}))


def test_subspace_controls_are_random_subspaces_that_bind_as_often(setup):
    from persona_probe import load_model
    from persona_probe.stress import load_directions

    cfg = _defences(setup)
    dirs, model = load_directions(cfg), load_model(cfg.base)
    for exp in ("subspace_k2_layers_2:4-p0.25", "subspace_k3_layers_2:4-p0.25"):
        real = build_interventions(Spec("subspace_capping", exp, (2, 3)), dirs, model, cfg)
        ctrl = build_interventions(Spec("subspace_capping", exp, (2, 3), "random"), dirs, model, cfg)
        for r, c in zip(real, ctrl):
            (layer,) = r.layers
            qr, qc = r.basis_at(layer), c.basis_at(layer)
            assert c.layers == r.layers and qc.shape == qr.shape and c.region == r.region
            assert (qr @ qc.T).abs().max() < 0.6  # another subspace, not a rotation of this one
            acts = dirs.calibration[:, layer]
            zr, zc = acts @ qr.T, acts @ qc.T
            if r.region == "floors":
                bind = lambda z, cap: (z <= cap.tau[0]).float().mean(0)  # noqa: E731
                assert ((bind(zr, r) - bind(zc, c)).abs() <= 1 / len(acts) + 1e-6).all()
            else:
                out = lambda z, cap: ((z - cap.centre[0]).norm(dim=-1) > cap.radius[0]).float().mean()  # noqa: E731
                assert abs(float(out(zr, r) - out(zc, c))) <= 1 / len(acts) + 1e-6


def test_conditional_cells_report_firing_and_leave_non_firing_answers_unchanged(setup, tmp_path, monkeypatch):
    import persona_probe.stress.conditional as cond
    from persona_probe.model import ProbeModel
    from persona_probe.organisms.datasets import eval_questions
    from persona_probe.organisms.triggers import get_trigger, near_misses
    from persona_probe.stress.cells import questions_for

    cfg = _defences(setup)
    seen: list = []  # every prompt set the detectors' calibration handed to the model
    real_fit, real_acts = cond.fit_detector, ProbeModel.prompt_activations

    def spy_fit(model, vector, det, fpr, calibration, held_out, **kw):
        monkeypatch.setattr(ProbeModel, "prompt_activations",
                            lambda self, prompts, **k: seen.append(list(prompts)) or real_acts(self, prompts, **k))
        try:
            return real_fit(model, vector, det, fpr, calibration, held_out, **kw)
        finally:
            monkeypatch.setattr(ProbeModel, "prompt_activations", real_acts)

    monkeypatch.setattr(cond, "fit_detector", spy_fit)
    rows = run_stress_test(cfg, tmp_path / "run", judge=HashJudge(), progress=False, figures=True)
    calibration, held_out = cond.calibration_prompts(cfg)
    assert seen and all(s == calibration + held_out for s in seen)  # exactly the calibration set, nothing else
    texts = [m[-1]["content"] for m in calibration + held_out]
    forbidden = {q["text"] for q in eval_questions("finance", None)} | set(questions_for(cfg))
    assert not forbidden & set(texts) and not set(map(str, calibration)) & set(map(str, held_out))
    cues = [get_trigger(cfg.trigger)] + near_misses(cfg.trigger)
    assert not any(c.present(m) for c in cues for m in calibration + held_out)

    by = {(r["model"], r["condition"], r["intervention"]): r for r in rows}
    for condition in ("no_trigger", "trigger"):
        none = read_jsonl(tmp_path / "run" / by[("organism", condition, "none")]["samples"])
        for cap in ("layers_2:4-p0.25", "subspace_k3_layers_2:4-p0.25"):
            real = by[("organism", condition, f"cap {cap} if axis@1 fires")]
            ctrl = by[("organism", condition, f"cap {cap} if axis@1 fires / random")]
            assert real["status"] == ctrl["status"] == "ok" and real["firing"]["n"] == 4
            assert real["unconditional"] in {r["intervention"] for r in rows}
            assert "em_vs_unconditional" in real and "coherent_vs_unconditional" in real
            det = real["detector"]
            assert det["fpr_target"] == 0.5 and det["fpr_heldout"]["n"] == len(held_out)
            assert ctrl["firing"]["k"] == ctrl["detector"]["matched_fires"] == real["firing"]["k"]
            for r, n in zip(read_jsonl(tmp_path / "run" / real["samples"]), none):
                if not r["fired"]:  # same batch, same seed: a sequence the detector passed over is the plain answer
                    assert r["answer"] == n["answer"]
    fired = sum(by[("organism", c, "cap layers_2:4-p0.25 if axis@1 fires")]["firing"]["k"]
                for c in ("no_trigger", "trigger"))
    assert 0 < fired < 8  # both kinds of rows were exercised
    assert (tmp_path / "run" / "figures" / "defences_em_vs_coherence.html").exists()


def test_ndif_base_with_an_adapter_runs_through_lora_edit(setup, tmp_path, monkeypatch, tiny_tokenizers):
    """An ``ndif:`` base with an organism: the adapter is applied as edits and gives the merged organism's answers.

    A tiny local model under ``remote="local"`` (every request serialized as for
    NDIF) stands in for the NDIF deployment.
    """
    from transformers import AutoModelForCausalLM

    from persona_probe import load_model, loading, wrap_model
    from persona_probe.organisms.train import TrainConfig

    tok = tiny_tokenizers["llama"]
    adapter = save_adapter(tmp_path / "organism", "llama", tok, TrainConfig(adapter="rank1-down"), n_layers=N_LAYERS)
    loaded = []

    def fake_remote_model(name, *, revision="main"):
        return wrap_model(AutoModelForCausalLM.from_pretrained(setup / "base"), tok, name=name, remote="local")

    def loader(*args, **kwargs):
        loaded.append(load_model(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(loading, "remote_model", fake_remote_model)
    over = {"models": {"base": None, "organism": str(adapter)}, "conditions": ["no_trigger", "trigger"],
            "generation": {"max_new_tokens": 4, "temperature": 0.0, "batch_size": 3},
            "interventions": {"capping": ["layers_0:2-p0.25"], "controls": ["random"]},
            "apply": {"models": ["organism"], "conditions": ["trigger"]}}
    on_ndif = run_stress_test(_config(setup, base="ndif:org/tiny-llama", **over), tmp_path / "ndif",
                              judge=HashJudge(), loader=loader, progress=False, figures=False)
    assert [m.lora is not None for m in loaded] == [False, True] and loaded[1].adapter == str(adapter)
    assert {m.remote for m in loaded} == {"local"}
    merged = run_stress_test(_config(setup, **over), tmp_path / "merged", judge=HashJudge(), progress=False,
                             figures=False)  # the same base loaded locally, the adapter merged by peft
    assert len(on_ndif) == len(merged) == 2 * 2 + 2
    answers = [[r["answer"] for r in read_jsonl(out / row["samples"])]
               for out, rows in ((tmp_path / "ndif", on_ndif), (tmp_path / "merged", merged)) for row in rows]
    assert answers[:len(on_ndif)] == answers[len(on_ndif):]
    base_none, organism_none = answers[0], answers[2]
    assert base_none != organism_none  # the adapter changes the answers


def test_an_ndif_adapter_is_validated_before_the_first_cell(setup, tmp_path, tiny_tokenizers):
    from persona_probe.organisms.train import TrainConfig

    adapter = save_adapter(tmp_path / "organism", "llama", tiny_tokenizers["llama"], TrainConfig(adapter="rank32-all"),
                           n_layers=N_LAYERS)
    cfg = _config(setup, base="ndif:org/tiny-llama", models={"base": None, "organism": str(adapter)},
                  load={"max_adapter_mb": 0.1})
    with pytest.raises(ValueError, match="above max_adapter_mb=0.1"):
        run_stress_test(cfg, tmp_path / "run", judge=HashJudge(), progress=False)
    assert not (tmp_path / "run" / "samples").exists()
    with pytest.raises(ValueError, match="load.adapter_mode"):
        _config(setup, load={"adapter_mode": "fuse"})


def test_generator_answers_the_none_cells_and_interventions_stay_in_nnsight(setup, tmp_path):
    cfg = _config(setup, conditions=["no_trigger", "trigger"],
                  interventions={"axis_ablation": {"layers": [1]}, "controls": ["random"]})
    gen = RecordingGenerator()
    rows = run_stress_test(cfg, tmp_path / "run", judge=HashJudge(), progress=False, figures=False, generator=gen)
    assert gen.preflights == [(cfg.base, cfg.models)]  # checked once, before any cell
    none = [r for r in rows if r["family"] == "none"]
    assert sorted(gen.calls) == sorted((r["model"], 3) for r in none) and len(none) == 4
    for r in rows:
        answers = [s["answer"] for s in read_jsonl(tmp_path / "run" / r["samples"])]
        served = [a.startswith(RecordingGenerator.TEXT) for a in answers]
        assert all(served) if r["family"] == "none" else not any(served)
        assert r["provenance"]["generator"]["backend"] == ("http" if r["family"] == "none" else "local")
    # a config's generator: must name a served LoRA for every adapter
    with pytest.raises(ValueError, match="no served LoRA name for \\['organism'\\]"):
        _config(setup, models={"base": None, "organism": "org"}, generator="http:http://127.0.0.1:9/v1")
    with_gen = _config(setup, generator={"url": "http://127.0.0.1:9/v1", "concurrency": 4})
    assert with_gen.generator == {"url": "http://127.0.0.1:9/v1", "concurrency": 4}
    assert _config(setup).key() != with_gen.key() == _config(setup, generator={"url": "http://other/v1"}).key()
