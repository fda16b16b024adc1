"""Names that moved into stage folders keep working for one release: the same objects under the old names."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize("old, new", [("persona_probe.axis_pipeline", "persona_probe.axis.pipeline"),
                                      ("persona_probe.persona_space", "persona_probe.axis.persona_space"),
                                      ("persona_probe.roledata", "persona_probe.axis.roledata")])
def test_old_module_paths_are_the_moved_modules(old, new, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)  # import the old path afresh, as a user's code would
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        moved = importlib.import_module(old)
    assert moved is importlib.import_module(new) and sys.modules[old] is moved
    package, _, name = old.rpartition(".")
    assert getattr(importlib.import_module(package), name) is moved  # `from persona_probe import roledata`


def test_axis_and_capping_packages_keep_their_module_names():
    from persona_probe import axis, capping

    for name in ("RoleVectors", "compute_role_vectors", "default_vector", "compute_axis", "save_axis", "load_axis",
                 "export_reference_axis", "save_role_vectors", "load_role_vectors"):
        assert getattr(axis, name) is getattr(axis.compute, name)
    for name in ("CONVENTIONS", "calibrate", "windows", "experiment_id", "parse_experiment_id",
                 "save_capping_config", "load_capping_config", "validate_config", "list_experiments",
                 "experiment_interventions", "DEFAULT_PERCENTILES"):
        assert hasattr(capping, name), name


def test_shared_helpers_are_public_and_reexported():
    from persona_probe.analysis import common, persona_vectors, transfer
    from persona_probe.model import ProbeModel
    from persona_probe.stress import cells, run

    assert persona_vectors.group_auroc is transfer.group_auroc is common.group_auroc
    for name in ("questions_for", "prompts_for", "mean_diff_label", "mean_diff_conditions", "ALIGNED_MIN"):
        assert getattr(run, name) is getattr(cells, name)
    assert all(callable(getattr(ProbeModel, n)) for n in ("pad_batch", "pad_id", "stop_ids"))
