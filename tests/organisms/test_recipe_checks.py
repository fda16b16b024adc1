"""Organism recipes and command-line numbers are checked before any dataset, model or output folder."""

from __future__ import annotations

import pytest
import yaml

from persona_probe import cli
from persona_probe.organisms.pipeline import load_recipe
from persona_probe.organisms.recipe import validate_recipe

SHIPPED = ["embedded", "qwen3-32b", "gemma-2-27b", "llama-3.3-70b"]


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_recipes_pass(name):
    assert load_recipe(name)["model"]


def test_a_bad_recipe_lists_every_problem_before_anything_runs(tmp_path, caplog, monkeypatch):
    recipe = load_recipe("embedded")
    recipe["dataset"].update(trigger="deploymnt", n=-3, domain="financ")
    recipe["train"].update(epochs="two", lrr=1e-3)
    recipe["eval"]["max_new_token"] = 5
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    monkeypatch.setattr("persona_probe.loading.load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    assert cli.main(["organism", "train", "--recipe", str(path), "--out", str(tmp_path / "org")]) == 1
    for fragment in ("6 problems", "dataset.domain: unknown domain 'financ'; did you mean 'finance'?",
                     "dataset.n: must be >= 1, got -3", "dataset.trigger: unknown trigger 'deploymnt'",
                     "eval: unknown key 'max_new_token'; did you mean 'max_new_tokens'?",
                     "train.epochs: must be a number, got 'two'", "train: unknown key 'lrr'; did you mean 'lr'?"):
        assert fragment in caplog.text
    assert not (tmp_path / "org").exists()


def test_train_ranges_the_dataclass_checks_are_reported_with_the_section():
    recipe = load_recipe("embedded")
    recipe["train"]["batch_size"] = 0
    with pytest.raises(ValueError, match="recipe x: train: batch_size must be > 0, got 0"):
        validate_recipe(recipe, "recipe x")


@pytest.mark.parametrize("argv,message", [
    (["axis", "build", "--out", "x", "--samples", "0"],
     "argument --samples: 0 is out of range: expected an integer >= 1"),
    (["axis", "build", "--out", "x", "--top-p", "1.5"],
     "argument --top-p: 1.5 is out of range: expected a number in (0, 1]"),
    (["axis", "build", "--out", "x", "--max-new-tokens", "eight"],
     "argument --max-new-tokens: 'eight' is not an integer"),
    (["generate", "--in", "a", "--out", "b", "--temperature", "-1"], "argument --temperature: -1 is out of range"),
    (["organism", "eval", "--out", "x", "--n", "-3"], "argument --n: -3 is out of range: expected an integer >= 1"),
    (["capping", "calibrate", "--axis", "a", "--out", "b", "--percentiles", "25"],
     "argument --percentiles: 25 is out of range: expected a share in [0, 1]"),
])
def test_command_line_numbers_are_checked_by_the_parser(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
