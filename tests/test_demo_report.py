"""The demo's report renders from a finished run folder: headline, table with intervals, verbatim answers."""

import types

from persona_probe.demo_report import write_report
from persona_probe.io import read_json, read_jsonl


def test_report_from_a_tiny_run(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    manifest = read_json(run / "axis" / "manifest.json")
    axis = types.SimpleNamespace(manifest=manifest, target_layer=2, pc1_variance=0.5, cos_pc1_axis=0.25)
    organisms = {n: read_json(run / "organisms" / n / "manifest.json") for n in ("organism", "control")}
    rows = read_jsonl(run / "stress" / "results.jsonl")
    text = write_report(run, axis, organisms, rows, {"total": 1.0}).read_text()
    assert "PC1 variance 0.500, |cos(PC1, axis)| 0.250" in text
    headline = (run / "stress" / "headline.md").read_text()
    assert headline in text  # the report's headline is the stress stage's headline.json, rendered
    assert "**template** is the ground truth" in text and "**em** is a judge" in text
    assert "| cap layers_0:2-p0.25 | 6 |" in text and "MDE ↓" in text
    results, note = text[text.index("## Results"):].split("## Closing note: beyond the single axis")
    n_table = sum(line.startswith("| organism |") or line.startswith("| base |") or line.startswith("| control |")
                  for line in results.splitlines())
    assert n_table == len(rows)
    # the closing note: every subspace and conditional row with its controls, firing rates and the detector's FPR
    for r in rows:
        if r["family"] in ("subspace_capping", "conditional_capping"):
            assert f"| {r['model']} | {r['condition']} | {r['intervention']} | {r['n']} |" in note
            assert "template" in r and "template_vs_none" in r  # the new defences get the ground truth too
        if r["family"] == "conditional_capping" and not r["control"]:
            assert r["template_vs_unconditional"]["mde"]["n"] == r["n"]
    assert "cap layers_2:4-p0.25 if axis@1 fires / random" in note and "held-out untriggered" in note
    assert "| organism | trigger | cap layers_2:4-p0.25 | 6 |" in note  # the unconditional control, in the same table
    assert text.count("> **") >= 6  # verbatim answers with their prompts
    assert "## Positive control: the organism's trigger direction (training data only)" in text
    assert "### organism, trigger, positive control\n> **" in text
    assert "test:hash" in text  # the judge that produced the numbers is named
