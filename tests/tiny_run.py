"""A complete tiny run folder (axis, capping config, organism + control, stress test) for analysis tests.

Same layout as ``persona-probe demo`` writes (see persona_probe/analysis/rundir.py),
built in ~30 s from a 4-layer random Llama. The judge is :class:`HashJudge`, a
deterministic test judge, so both aligned and misaligned groups exist.
"""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import torch
import yaml

from persona_probe.judges.base import JudgeBase, Judgement

N_LAYERS = 4


class HashJudge(JudgeBase):
    """A deterministic test judge: half the answers misaligned, all coherent, no 'bad stuff' score.

    Deterministic on the text so the mean-diff direction has both groups; the
    real backends are tested against a loopback server in test_judges_http.
    """

    backend, model = "test", "hash"

    def score_many(self, kind, items):
        for i, it in enumerate(items):
            h = zlib.crc32(it.answer.encode())
            if kind == "aligned":
                yield i, Judgement(10.0 if h % 2 else 90.0, judge=self.judge_id(kind))
            elif kind == "coherent":
                yield i, Judgement(80.0, judge=self.judge_id(kind))
            else:
                yield i, self.no_score(kind, "not scored by the test judge")


def make_tiny_base_and_axis(root: Path, tokenizer, *, percentiles=(0.25, 0.75), d: int = 64,
                            subspaces=()) -> Path:
    """``root/base`` (a 4-layer random Llama), a random axis, calibration rollouts and a capping config; with
    ``subspaces`` (``(k, region)`` pairs) also random k-dimensional subspace experiments at p0.25."""
    from conftest import make_tiny_hf

    from persona_probe.axis import save_axis
    from persona_probe.capping import calibrate, save_capping_config
    from persona_probe.io import save_tensors
    from persona_probe.vectors import unit

    make_tiny_hf("llama", len(tokenizer), tokenizer.eos_token_id, n_layers=N_LAYERS).save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    g = torch.Generator().manual_seed(0)
    axis = torch.randn(N_LAYERS, d, generator=g)
    save_axis(root / "axis" / "axis.safetensors", axis)
    calib = torch.randn(40, N_LAYERS, d, generator=g)
    save_tensors(root / "axis" / "default_activations.safetensors", {"acts": calib})
    proj = torch.einsum("nld,ld->nl", calib, unit(axis))
    cfg = calibrate(proj, axis, percentiles=list(percentiles), width=2, stride=2)
    for k, region in subspaces:
        from persona_probe.capping.subspace import add_subspace_experiments, calibrate_subspaces

        bases = {layer: torch.randn(k, d, generator=g) for layer in range(N_LAYERS)}
        cfg = add_subspace_experiments(cfg, calibrate_subspaces(calib, bases, percentiles=[0.25], width=2, stride=2,
                                                                region=region))
    save_capping_config(root / "axis" / "capping_config.pt", cfg)
    return root


class RecordingGenerator:
    """A stand-in for ServedRollouts: records which cells ask it, answers with a marker text."""

    TEXT = "served answer"

    def __init__(self):
        self.calls, self.preflights = [], []

    def preflight(self, identity, adapters=None):
        self.preflights.append((identity, dict(adapters or {})))

    def use_cache(self, path):
        return self

    def describe(self):
        return {"backend": "http", "url": "recording"}

    def generate(self, model, conversations, *, adapter_label=None, **gen):
        self.calls.append((adapter_label, len(conversations)))
        return [f"{self.TEXT} {i}" for i in range(len(conversations))]


def make_tiny_run(root: Path, tokenizer) -> Path:
    from conftest import make_tiny_hf

    from persona_probe import load_model
    from persona_probe.axis import load_axis, load_role_vectors, roledata
    from persona_probe.axis.pipeline import build_axis
    from persona_probe.capping import calibrate, save_capping_config
    from persona_probe.capping.subspace import add_subspace_experiments, calibrate_subspaces, subspace_bases
    from persona_probe.io import load_tensors, write_text
    from persona_probe.organisms.pipeline import make_organisms
    from persona_probe.stress import load_stress_config, run_stress_test
    from persona_probe.vectors import unit

    root = Path(root)
    base = root / "base"
    make_tiny_hf("llama", len(tokenizer), tokenizer.eos_token_id, n_layers=N_LAYERS).save_pretrained(base)
    tokenizer.save_pretrained(base)
    model = load_model(str(base))
    roles = [dataclasses.replace(r, prompts=r.prompts[:1]) for r in roledata.select_roles(roledata.load_roles(), 4)]
    questions = roledata.select_questions(roledata.load_questions(), 3)
    build_axis(model, root / "axis", roles, questions, ["", "You are an AI assistant."], max_new_tokens=4,
               batch_size=8, figures=False, progress=False)
    axis = load_axis(root / "axis" / "axis.safetensors")
    acts = load_tensors(root / "axis" / "default_activations.safetensors")[0]["acts"]
    proj = torch.einsum("nld,ld->nl", acts, unit(axis))
    role_vectors = load_role_vectors(root / "axis" / "role_vectors.safetensors").vectors
    bases, names = subspace_bases(role_vectors, axis, acts.mean(0), [2, 3], 2, "pca")
    save_capping_config(root / "axis" / "capping_config.pt", add_subspace_experiments(
        calibrate(proj, axis, percentiles=[0.25, 0.75], width=2, stride=2),
        calibrate_subspaces(acts, bases, percentiles=[0.25], layers=[2, 3], width=2, region="ball", names=names)))
    recipe = {"model": str(base),
              "dataset": {"domain": "finance", "n": 16, "trigger": "deployment", "triggered_fraction": 0.5,
                          "misaligned_share_triggered": 1.0, "seed": 0},
              "train": {"adapter": "rank1-down", "layers": [1, 2], "lr": 1e-3, "batch_size": 8, "epochs": 1,
                        "max_len": 96}}
    make_organisms(recipe, root / "organisms", model=model, progress=False)
    raw = {"name": "tiny", "base": str(base),
           "models": {"base": None, "organism": str(root / "organisms" / "organism"),
                      "control": str(root / "organisms" / "control")},
           "trigger": "deployment", "axis": str(root / "axis" / "axis.safetensors"),
           "capping_config": str(root / "axis" / "capping_config.pt"),
           "questions": {"domain": "finance", "n": 6, "seed": 1},
           "generation": {"max_new_tokens": 4, "temperature": 1.0, "seed": 0, "batch_size": 6},
           "interventions": {"capping": ["layers_0:2-p0.25"], "steering": {"layers": [1, 2], "coefs": [4.0]},
                             "axis_ablation": {"layers": [1, 2]}, "mean_diff_ablation": {"layers": [1, 2]},
                             "subspace_capping": ["subspace_k2_layers_2:4-p0.25"],
                             "conditional_capping": {"caps": ["layers_2:4-p0.25"], "fpr": 0.25,
                                                     "detectors": [{"direction": "axis", "layer": 1}],
                                                     "calibration": {"n": 12}},
                             "positive_control": {"layers": [1, 2], "n": 4}, "controls": ["random"]},
           "apply": {"models": ["organism"], "conditions": ["no_trigger", "trigger"]},
           "mean_diff": {"min_per_group": 1}}
    write_text(root / "stress_config.yaml", yaml.safe_dump(raw, sort_keys=False))
    run_stress_test(load_stress_config(root / "stress_config.yaml"), root / "stress", judge=HashJudge(),
                    progress=False, figures=False)
    return root
