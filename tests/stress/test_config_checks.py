"""Every bad stress config is refused by `stress run --dry-run` (and `stress run`) before any compute.

Each case is a complete config with one fault; the dry-run must exit 1 with a
message that names the key and the fix, write nothing, and `stress run` must
refuse it the same way before a model loads. ``BAD_CONFIGS`` is also the table
printed in the closing note (``python tests/stress/test_config_checks.py``).
"""

from __future__ import annotations

import copy
import logging
import sys
from pathlib import Path

import pytest
import torch
import yaml

from persona_probe import cli
from persona_probe.axis import save_axis
from persona_probe.capping import calibrate, save_capping_config
from persona_probe.io import save_tensors

N_LAYERS, D = 30, 576  # the embedded model's config, read from its config.json without loading weights

BASE = {"name": "checks", "base": "embedded", "models": {"base": None, "organism": "org"},
        "trigger": "deployment", "axis": "axis.safetensors", "capping_config": "capping_config.pt",
        "questions": {"domain": "finance", "n": 2, "seed": 1},
        "generation": {"max_new_tokens": 8, "temperature": 1.0, "seed": 0, "batch_size": 2},
        "judge": "offline",
        "interventions": {"capping": ["layers_12:16-p0.25"], "steering": {"layers": [12, 13], "coefs": [1.0]},
                          "axis_ablation": {"layers": "12:14"}, "controls": ["random"]}}


def _set(path: str, value):
    """An edit: set the dotted key ``path`` to ``value`` (``...`` deletes it)."""
    def edit(raw: dict) -> dict:
        *parents, last = path.split(".")
        node = raw
        for p in parents:
            node = node[p]
        if value is ...:
            node.pop(last)
        else:
            node[last] = value
        return raw
    return edit


# (what is wrong, edit, a fragment the message must contain)
BAD_CONFIGS = [
    ("steering layer out of range", _set("interventions.steering.layers", [12, 40]),
     "interventions.steering.layers: [40] out of range; embedded has 30 layers (valid: 0..29)"),
    ("ablation layers out of range", _set("interventions.axis_ablation.layers", "28:32"),
     "interventions.axis_ablation.layers: [30, 31] out of range"),
    ("misspelt trigger", _set("trigger", "deploymnt"), "unknown trigger 'deploymnt'; did you mean 'deployment'?"),
    ("misspelt judge backend", _set("judge", "offlin"), "unknown judge 'offlin' (did you mean 'offline'?)"),
    ("misspelt judge option", _set("judge", {"backend": "http", "modle": "gpt-4o"}),
     "the http judge has no option 'modle'; did you mean"),
    ("'none' judge", _set("judge", "none"), "needs a judge"),
    ("misspelt domain", _set("questions.domain", "financ"), "unknown domain 'financ'; did you mean 'finance'?"),
    ("missing adapter folder", _set("models.organism", "no_such_adapter"),
     "does not exist; train it with `persona-probe organism train`"),
    ("adapter folder without adapter_config.json", _set("models.organism", "not_an_adapter"),
     "is not a peft adapter folder (no adapter_config.json)"),
    ("misspelt generation key", _set("generation.max_new_token", 8),
     "generation: unknown key 'max_new_token'; did you mean 'max_new_tokens'?"),
    ("n is a word", _set("questions.n", "two"), "questions.n: must be an integer, got 'two'"),
    ("max_new_tokens is a word", _set("generation.max_new_tokens", "eight"),
     "generation.max_new_tokens: must be an integer, got 'eight'"),
    ("conditions as a string", _set("conditions", "no_trigger"),
     "conditions: must be a list, e.g. [no_trigger], not the string 'no_trigger'"),
    ("misspelt condition", _set("conditions", ["no_triger"]), "'no_triger' is not allowed; did you mean 'no_trigger'?"),
    ("negative n", _set("questions.n", -3), "questions.n: must be >= 1, got -3"),
    ("zero n", _set("questions.n", 0), "questions.n: must be >= 1, got 0"),
    ("zero max_new_tokens", _set("generation.max_new_tokens", 0), "generation.max_new_tokens: must be >= 1, got 0"),
    ("negative temperature", _set("generation.temperature", -1), "generation.temperature: must be >= 0, got -1"),
    ("top_p above 1", _set("generation.top_p", 1.5), "generation.top_p: must be <= 1, got 1.5"),
    ("zero batch size", _set("generation.batch_size", 0), "generation.batch_size: must be >= 1, got 0"),
    ("misspelt control", _set("interventions.controls", ["randm"]), "'randm' is not allowed; did you mean 'random'?"),
    ("misspelt intervention family", _set("interventions.steer", {"layers": [1], "coefs": [1]}),
     "interventions: unknown key 'steer'; did you mean 'steering'?"),
    ("misspelt top-level key", _set("condition", ["trigger"]), "unknown key 'condition'; did you mean 'conditions'?"),
    ("malformed experiment id", _set("interventions.capping", ["layers_12-16"]), "malformed experiment id"),
    ("experiment id not in the capping config", _set("interventions.capping", ["layers_12:16-p0.3"]),
     "unknown experiment id 'layers_12:16-p0.3'; close matches"),
    ("reversed layer range", _set("interventions.axis_ablation.layers", "14:12"), "write 'start:end' with end > start"),
    ("steering coefs not a list", _set("interventions.steering.coefs", "big"),
     "interventions.steering.coefs: must be a list"),
    ("missing axis file", _set("axis", "nowhere.safetensors"), "axis: "),
    ("axis of another model", _set("axis", "small_axis.safetensors"),
     "is [4, 8] but embedded has 30 layers of width 576; was it built on another model?"),
    ("capping config of a deeper model",
     lambda r: _set("interventions.capping", ["layers_40:44-p0.25"])(_set("capping_config", "deep_capping.pt")(r)),
     "is at layer 40 but the model has 30 layers"),
    ("missing capping config", _set("capping_config", ...), "'capping_config' is required"),
    ("near miss index out of range", _set("near_miss", 99), "near_miss 99 is out of range"),
    ("apply names an unknown model", _set("apply", {"models": ["organsim"]}),
     "apply.models names ['organsim'], which are not in models"),
    ("both question sources", _set("questions.file", "q.jsonl"), "give exactly one of 'domain'"),
    ("missing question file", lambda r: {**r, "questions": {"file": "nowhere.jsonl", "n": 2}},
     "questions.file: "),
    ("base folder that does not exist", _set("base", "/no/such/model"), "no such folder"),
    ("judge-failure share above 1", _set("max_judge_failures", 2), "max_judge_failures: must be <= 1, got 2"),
    ("axis missing", _set("axis", ...), "axis: required"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("checks"))


def make_folder(root: Path) -> Path:
    """The files the configs point at: an axis of the embedded model's shape, capping configs, an adapter."""
    g = torch.Generator().manual_seed(0)
    axis = torch.randn(N_LAYERS, D, generator=g)
    save_axis(root / "axis.safetensors", axis)
    save_axis(root / "small_axis.safetensors", torch.randn(4, 8, generator=g))
    calib = torch.randn(20, N_LAYERS, D, generator=g)
    save_tensors(root / "default_activations.safetensors", {"acts": calib})
    proj = torch.einsum("nld,ld->nl", calib, axis / axis.norm(dim=-1, keepdim=True))
    save_capping_config(root / "capping_config.pt", calibrate(proj, axis, percentiles=[0.25], width=4, stride=4))
    deep_axis = torch.randn(44, D, generator=g)
    save_capping_config(root / "deep_capping.pt", calibrate(torch.randn(20, 44, generator=g), deep_axis,
                                                              layers=range(40, 44), percentiles=[0.25], width=4))
    (root / "org").mkdir()
    (root / "org" / "adapter_config.json").write_text("{}")
    (root / "not_an_adapter").mkdir()
    return root


def _write(folder: Path, raw: dict, name: str = "stress.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_good_config_passes_the_dry_run_and_lists_its_cells(folder, capsys):
    assert cli.main(["stress", "run", "--config", str(_write(folder, BASE)), "--dry-run",
                     "--out", str(folder / "out")]) == 0
    out = capsys.readouterr().out
    assert "organism | trigger | cap layers_12:16-p0.25 / random" in out and "config OK" in out
    assert not (folder / "out").exists(), "a dry run writes nothing"


@pytest.mark.parametrize("what,edit,fragment", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_a_bad_config_is_refused_before_any_compute(folder, what, edit, fragment, caplog, monkeypatch):
    def no_model(*a, **k):
        raise AssertionError("a model was loaded for a config that should have been refused")

    monkeypatch.setattr("persona_probe.loading.load_model", no_model)
    path = _write(folder, edit(copy.deepcopy(BASE)), f"bad-{abs(hash(what))}.yaml")
    for extra in (["--dry-run"], []):
        caplog.clear()
        out = folder / f"out-{abs(hash(what))}"
        assert cli.main(["stress", "run", "--config", str(path), "--out", str(out), *extra]) == 1
        message = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
        assert fragment in message, message
        assert str(path) in message, "the message names the config file"
        assert not (out / "samples").exists(), "nothing was generated"


def test_every_problem_is_reported_at_once(folder, caplog):
    raw = copy.deepcopy(BASE)
    raw["generation"]["max_new_token"] = 8
    raw["questions"]["n"] = "two"
    raw["conditions"] = "no_trigger"
    assert cli.main(["stress", "run", "--config", str(_write(folder, raw, "many.yaml")), "--dry-run"]) == 1
    assert "3 problems" in caplog.text
    for fragment in ("max_new_token", "questions.n", "conditions"):
        assert fragment in caplog.text


def main() -> None:  # pragma: no cover - prints the table of the closing note
    import tempfile

    logging.disable(logging.WARNING)
    fixture_root = make_folder(Path(tempfile.mkdtemp()))
    from persona_probe.stress import load_stress_config
    from persona_probe.stress.check import check_stress_config

    print("| bad config | message |\n|---|---|")
    for what, edit, _ in BAD_CONFIGS:
        path = _write(fixture_root, edit(copy.deepcopy(BASE)), "bad.yaml")
        try:
            check_stress_config(load_stress_config(path))
            msg = "ACCEPTED"
        except ValueError as exc:
            msg = str(exc).replace(str(path), "stress.yaml").replace(str(fixture_root) + "/", "")
        print(f"| {what} | `{msg}` |".replace("\n", "<br>"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
