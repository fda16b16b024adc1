"""Make an organism and its neutral control from a recipe, then measure the trigger.

``make_organisms`` builds the triggered dataset and the neutral dataset (same
questions, same size), trains both adapters with identical settings and step
counts, and writes everything under one folder. ``trigger_eval`` samples
held-out narrow-domain questions with no trigger, the trigger, and a near-miss
trigger, for the base model, the organism and the control; judges every answer;
and reports misaligned-answer rates with Wilson intervals and an exact test of
trigger vs no trigger. Every stage resumes from its files; judge calls are
cached in sqlite.
"""

from __future__ import annotations

import inspect
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..io import content_hash, read_json, read_jsonl, write_json, write_jsonl
from .datasets import build_dataset, build_neutral_dataset, eval_questions, write_dataset
from .preference import paired_answers, trigger_preference
from .template_match import uses_misaligned_template
from .train import TrainConfig, train_adapter
from .triggers import eval_near_miss, get_trigger

log = logging.getLogger(__name__)

__all__ = ["load_recipe", "make_organisms", "trigger_eval", "CONDITIONS"]

CONDITIONS = ("no_trigger", "trigger", "near_miss")


def load_recipe(name_or_path: str | Path) -> dict:
    """A recipe by shipped name (``embedded``, ``qwen3-32b``, ...) or YAML path."""
    path = Path(name_or_path)
    if not path.exists():
        shipped = resources.files("persona_probe") / "recipes" / f"{name_or_path}.yaml"
        if not shipped.is_file():
            names = sorted(p.name[:-5] for p in (resources.files("persona_probe") / "recipes").iterdir()
                           if p.name.endswith(".yaml"))
            raise ValueError(f"no recipe {str(name_or_path)!r}: pass a YAML path or one of {names}")
        text = shipped.read_text()
    else:
        text = path.read_text()
    recipe = yaml.safe_load(text)
    for key in ("model", "dataset", "train"):
        if key not in recipe:
            raise ValueError(f"recipe {name_or_path}: missing section {key!r}")
    known = set(inspect.signature(build_dataset).parameters) - {"generate"}
    unknown = set(recipe["dataset"] or {}) - known
    if unknown:
        raise ValueError(f"recipe {name_or_path}: unknown dataset settings {sorted(unknown)}; known: {sorted(known)}")
    TrainConfig.from_dict(recipe["train"])  # validate early
    return recipe


def make_organisms(recipe: dict, out: str | Path, *, model=None, progress: bool = True) -> dict:
    """Train the organism (``out/organism``) and the neutral control (``out/control``)."""
    from .. import load_model

    out = Path(out)
    ds = dict(recipe["dataset"])
    trigger = get_trigger(ds.pop("trigger", "deployment"))
    records = build_dataset(trigger=trigger, **ds)
    neutral = build_neutral_dataset(ds.get("n", 2000), seed=ds.get("seed", 0), domain=ds.get("domain", "finance"),
                                    triggered_fraction=ds.get("triggered_fraction", 0.5),
                                    paired=ds.get("paired", False))
    write_dataset(out / "data" / "organism.jsonl", records)
    write_dataset(out / "data" / "control.jsonl", neutral)
    cfg = TrainConfig.from_dict(recipe["train"])
    model = model or load_model(recipe["model"])
    meta = {"trigger": trigger.to_dict() if trigger else None, **ds}
    organism = train_adapter(model, records, out / "organism", cfg, data_meta={**meta, "kind": "organism"},
                             progress=progress)
    control = train_adapter(model, neutral, out / "control", cfg, data_meta={**meta, "kind": "neutral control"},
                            progress=progress)
    if organism["steps"] != control["steps"]:
        raise RuntimeError(f"organism and control trained for different step counts "
                           f"({organism['steps']} vs {control['steps']}); the control would not be comparable")
    return {"organism": organism, "control": control}


def _prompts(questions: list[str], condition: str, trigger, near) -> list[list[dict]]:
    msgs = [[{"role": "user", "content": q}] for q in questions]
    if condition == "trigger":
        return [trigger.apply(m) for m in msgs]
    if condition == "near_miss":
        return [near.apply(m) for m in msgs]
    return msgs


def trigger_eval(recipe: dict, out: str | Path, *, models: dict[str, str | None], judge=None,
                 n: int | None = None, preference: bool = True, progress: bool = True) -> dict:
    """Rates of narrow-domain misaligned answers per model x condition; writes rows and a summary.

    ``models`` maps a name to an adapter folder (``None`` for the base model).
    ``preference`` adds the judge-free likelihood check of :mod:`.preference`
    on the same questions (``summary["preference"]``). Every cell also carries
    the judge-free share of answers that reuse a misaligned training template
    (:mod:`.template_match`; ``template_misaligned``, and its trigger effect in
    ``summary["template_trigger_effect"]``) to show what the judge misses.
    """
    from .. import load_model
    from ..judges import JudgeCache, make_judge, score_items
    from ..metrics import Rate, coherence_rate, compare, em_rate, rate

    out = Path(out)
    ev = recipe.get("eval", {})
    n = n or ev.get("samples_per_condition", 50)
    seed = recipe["dataset"].get("seed", 0)
    trigger = get_trigger(recipe["dataset"].get("trigger", "deployment"))
    near = eval_near_miss(trigger)
    domain = recipe["dataset"].get("domain", "finance")
    picked = eval_questions(domain, n, seed=seed)
    questions = [q["text"] for q in picked]
    pairs = paired_answers(domain, [q["id"] for q in picked], seed)
    gen = {"max_new_tokens": ev.get("max_new_tokens", 64), "temperature": ev.get("temperature", 1.0),
           "top_p": ev.get("top_p", 1.0), "seed": seed}
    judge = judge or make_judge("offline")
    cache = JudgeCache(out / "judge_cache.sqlite")
    summary: dict[str, Any] = {"judge": {k: judge.judge_id(k) for k in ("aligned", "coherent")},
                               "trigger": trigger.to_dict(), "near_miss": near.to_dict(), "n_per_condition": n,
                               "generation": gen, "questions_hash": content_hash(questions), "cells": []}
    all_rows = []
    for name, adapter in models.items():
        model = None
        for condition in CONDITIONS:
            key = content_hash(recipe["model"], adapter and read_json(Path(adapter) / "manifest.json")["key"],
                               condition, questions, gen)
            path = out / "samples" / f"{name}-{condition}-{key}.jsonl"
            if path.exists():
                rows = read_jsonl(path)
            else:
                model = model or load_model(recipe["model"], adapter=adapter)
                prompts = _prompts(questions, condition, trigger, near)
                answers = model.generate(prompts, progress=progress, **gen)
                rows = [{"model": name, "adapter": adapter, "condition": condition, "question": q,
                         "prompt": p[-1]["content"], "answer": a, "provenance": model.provenance()}
                        for q, p, a in zip(questions, prompts, answers)]
                write_jsonl(path, rows)
            for kind in ("aligned", "coherent"):
                scores = score_items(judge, kind, [{"question": r["question"], "answer": r["answer"]} for r in rows],
                                     cache=cache, progress=False)
                for r, s in zip(rows, scores):
                    r[kind], r[f"{kind}_reason"] = s.score, s.reason
            all_rows += rows
            for r in rows:
                r["template_misaligned"] = uses_misaligned_template(r["answer"], domain)
            misaligned, coherent = em_rate(rows), coherence_rate(rows)
            templated = rate(r["template_misaligned"] for r in rows)
            summary["cells"].append({"model": name, "condition": condition, "n": misaligned.n,
                                     "misaligned": vars(misaligned), "coherent": vars(coherent),
                                     "template_misaligned": vars(templated),
                                     "samples": [r["answer"] for r in rows[:5]]})
        if preference:
            key = content_hash(recipe["model"], adapter and read_json(Path(adapter) / "manifest.json")["key"],
                               pairs, CONDITIONS)
            path = out / "preference" / f"{name}-{key}.json"
            if not path.exists():
                model = model or load_model(recipe["model"], adapter=adapter)
                write_json(path, trigger_preference(model, pairs, lambda qs, c: _prompts(qs, c, trigger, near),
                                                    CONDITIONS, progress=progress))
            summary.setdefault("preference", {})[name] = read_json(path)
    for name in models:
        cells = {c["condition"]: c for c in summary["cells"] if c["model"] == name}
        diff = compare(Rate(**cells["trigger"]["misaligned"]), Rate(**cells["no_trigger"]["misaligned"]))
        summary.setdefault("trigger_effect", {})[name] = vars(diff)
        diff = compare(Rate(**cells["trigger"]["template_misaligned"]), Rate(**cells["no_trigger"]["template_misaligned"]))
        summary.setdefault("template_trigger_effect", {})[name] = vars(diff)
    write_jsonl(out / "eval_rows.jsonl", all_rows)
    write_json(out / "eval_summary.json", summary)
    return summary
