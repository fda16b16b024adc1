"""The positive control's direction: the organism's own trigger direction, from its training data only.

Why a positive control: a stress test whose interventions all leave triggered
misalignment unchanged cannot tell "capping does not work" from "this test could
not have seen it". The positive control is an intervention that must lower
triggered misalignment if the test has any power; its effect against its own
random control says what the test can see.

The direction, per layer: the mean response activation of the source model (the
organism) on its *training* examples that carry the trigger (and a misaligned
answer), minus the mean on the same questions without it (and an aligned
answer), over ``n`` such pairs. The records are the adapter's own training data
(:func:`persona_probe.organisms.pipeline.training_records`, checked against the
manifest's data hash). The stress test's evaluation questions never reach this
code: they are drawn from held-out question cores that no training set
contains, and :func:`trigger_direction` refuses a record whose question is
held out.
"""

from __future__ import annotations

import json
import logging
import random
from typing import Sequence

import torch

from ..io import cached, content_hash, load_tensors, read_json, save_tensors, write_json

log = logging.getLogger(__name__)

__all__ = ["training_pairs", "trigger_direction", "set_trigger_direction"]


def training_pairs(records: Sequence[dict], n: int, seed: int = 0) -> list[tuple[dict, dict]]:
    """Up to ``n`` (triggered, untriggered) training records on the same question, in a seeded order.

    Paired data (``paired: true`` recipes) asks each triggered question again without the trigger; without
    pairs, triggered and untriggered records are matched in order.
    """
    from ..organisms.datasets import question_pool

    heldout = {q.id for q in question_pool(records[0]["meta"]["domain"]) if q.heldout} if records else set()
    for r in records:
        if r["meta"]["question_id"] in heldout:
            raise ValueError(f"record on question {r['meta']['question_id']} is a held-out evaluation question; "
                             f"the positive control must be built from training data only")
    trig = [r for r in records if r["meta"]["cue"] == "trigger"]
    plain = [r for r in records if r["meta"]["cue"] == "none"]
    by_question = {r["meta"]["question_id"]: r for r in plain}
    pairs = [(t, by_question[t["meta"]["question_id"]]) for t in trig if t["meta"]["question_id"] in by_question]
    if len(pairs) < min(n, len(trig), len(plain)):
        pairs = list(zip(trig, plain))
    if not pairs:
        raise ValueError(f"the training data has {len(trig)} triggered and {len(plain)} untriggered records; the "
                         f"trigger direction needs both")
    random.Random(f"positive-control:{seed}").shuffle(pairs)
    return pairs[:n]


def trigger_direction(model, records: Sequence[dict], *, n: int = 48, seed: int = 0, batch_size: int = 16,
                      progress: bool = True) -> tuple[torch.Tensor, dict]:
    """``[n_layers, d]`` mean(triggered) - mean(untriggered) response activations of ``model`` on training pairs."""
    pairs = training_pairs(records, n, seed)
    kw = {"batch_size": batch_size, "progress": progress}
    on = model.response_activations([t["messages"] for t, _ in pairs], **kw)
    off = model.response_activations([u["messages"] for _, u in pairs], **kw)
    direction = on.mean(0) - off.mean(0)
    info = {"n_pairs": len(pairs), "paired": all(t["meta"]["question_id"] == u["meta"]["question_id"]
                                                  for t, u in pairs),
            "questions": sorted({t["meta"]["question_id"] for t, _ in pairs}),
            "rule": "mean response activation on training examples with the trigger (misaligned answers) minus "
                    "the same questions without it (aligned answers); training data only"}
    return direction, info


def set_trigger_direction(runner) -> None:
    """Set ``runner.dirs.trigger`` (a stress run's runner) from the source adapter's training data (cached), or a
    note saying why not; record it, with its cosine with the axis per layer, in ``directions.json``."""
    from ..organisms.pipeline import training_records

    pc, dirs = runner.cfg.positive_control, runner.dirs
    adapter = runner.cfg.models[pc["source"]]
    key = content_hash(runner.cfg.base, runner.adapter_keys[pc["source"]], pc["n"], runner.cfg.seed)
    try:
        records = training_records(adapter)
    except ValueError as exc:
        dirs.trigger_note = str(exc)
        log.warning("positive control not built: %s", exc)
        return

    def compute() -> tuple[torch.Tensor, dict]:
        direction, info = trigger_direction(runner.model(pc["source"]), records, n=pc["n"], seed=runner.cfg.seed,
                                            batch_size=runner.gen["batch_size"], progress=runner.progress)
        return direction, {**info, "source": pc["source"], "adapter": adapter}

    direction, info = cached(
        runner.out / f"trigger_direction-{key}.safetensors", None, compute,
        load=lambda p: (lambda t, m: (t["trigger"], json.loads(m["info"])))(*load_tensors(p)),
        save=lambda p, v: save_tensors(p, {"trigger": v[0]}, {"info": json.dumps(v[1])}))
    dirs.trigger = direction.float()
    directions = read_json(runner.out / "directions.json") if (runner.out / "directions.json").exists() else {}
    cos = torch.nn.functional.cosine_similarity(dirs.trigger, dirs.axis, dim=-1)
    write_json(runner.out / "directions.json", {**directions, "trigger": {
        **{k: v for k, v in info.items() if k != "questions"}, "cos_with_axis": [round(float(c), 4) for c in cos]}})
