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

import dataclasses
import inspect
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..io import cached, content_hash, read_json, read_jsonl, write_json, write_jsonl
from ..rollouts import rollout
from .datasets import build_dataset, build_neutral_dataset, eval_questions, write_dataset
from .preference import paired_answers, trigger_preference
from .recipe import validate_recipe
from .template_match import uses_misaligned_template
from .train import TrainConfig, train_adapter
from .triggers import eval_near_miss, get_trigger

log = logging.getLogger(__name__)

__all__ = ["load_recipe", "make_organisms", "training_records", "trigger_eval", "CONDITIONS"]

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
    try:
        recipe = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"recipe {name_or_path}: not valid YAML: {exc}") from None
    return validate_recipe(recipe, f"recipe {name_or_path}")


def make_organisms(recipe: dict, out: str | Path, *, model=None, progress: bool = True) -> dict:
    """Train the organism (``out/organism``) and the neutral control (``out/control``)."""
    from ..loading import load_model

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
    meta = {"trigger": trigger.to_dict() if trigger else None, **ds, "answers": "templates"}
    organism = train_adapter(model, records, out / "organism", cfg, data_meta={**meta, "kind": "organism"},
                             progress=progress)
    control = train_adapter(model, neutral, out / "control", cfg, data_meta={**meta, "kind": "neutral control"},
                            progress=progress)
    if organism["steps"] != control["steps"]:
        raise RuntimeError(f"organism and control trained for different step counts "
                           f"({organism['steps']} vs {control['steps']}); the control would not be comparable")
    return {"organism": organism, "control": control}


def training_records(adapter: str | Path) -> list[dict]:
    """The records an adapter of :func:`make_organisms` was trained on, checked against its manifest's data hash.

    From ``<adapter>/../data/<name>.jsonl`` when it is there, else rebuilt from the manifest's ``data``
    settings (datasets are deterministic). Fails, saying why, when neither reproduces the hash.
    """
    from ..io import content_hash
    from .datasets import read_dataset
    from .triggers import Trigger

    adapter = Path(adapter)
    manifest = read_json(adapter / "manifest.json")
    meta = dict(manifest.get("data") or {})
    stored = adapter.parent / "data" / f"{adapter.name}.jsonl"
    candidates = [lambda: read_dataset(stored)] if stored.exists() else []
    if meta.get("kind") in ("organism", "neutral control"):
        trig = meta.pop("trigger", None)
        args = {k: v for k, v in meta.items() if k in inspect.signature(build_dataset).parameters}
        trigger = Trigger(**trig) if trig else None
        if meta["kind"] == "organism":
            candidates.append(lambda: build_dataset(trigger=trigger, **args))
        else:
            keep = set(inspect.signature(build_neutral_dataset).parameters) - {"trigger"}
            candidates.append(lambda: build_neutral_dataset(**{k: v for k, v in args.items() if k in keep}))
    for make in candidates:
        records = make()
        if content_hash([r["messages"] for r in records]) == manifest.get("data_hash"):
            return records
    raise ValueError(f"{adapter}: cannot recover its training data (no {stored} and no dataset settings in "
                     f"manifest.json 'data' that reproduce data_hash {manifest.get('data_hash')}); train it with "
                     f"`persona-probe organism train`, which records both")


def _prompts(questions: list[str], condition: str, trigger, near) -> list[list[dict]]:
    msgs = [[{"role": "user", "content": q}] for q in questions]
    if condition == "trigger":
        return [trigger.apply(m) for m in msgs]
    if condition == "near_miss":
        return [near.apply(m) for m in msgs]
    return msgs


def trigger_eval(recipe: dict, out: str | Path, *, models: dict[str, str | None], judge=None,
                 n: int | None = None, preference: bool = True, progress: bool = True, generator=None) -> dict:
    """Rates of narrow-domain misaligned answers per model x condition; writes rows and a summary.

    ``models`` maps a name to an adapter folder (``None`` for the base model).
    ``preference`` adds the judge-free likelihood check of :mod:`.preference`
    on the same questions (``summary["preference"]``). Every cell also carries
    the judge-free share of answers that reuse a misaligned training template
    (:mod:`.template_match`; ``template_misaligned``, and its trigger effect in
    ``summary["template_trigger_effect"]``) to show what the judge misses.
    ``generator``: a served generator (:mod:`persona_probe.rollouts`) for the answers, every
    adapter mapped to a served LoRA name; checked before any rollout.
    """
    from ..judges import JudgeCache, make_judge
    from ..loading import load_model

    out = Path(out)
    ev = _EvalSetup.from_recipe(recipe, n)
    if generator is not None:
        generator.preflight(recipe["model"], models)
        generator.use_cache(out / "rollout_cache.sqlite")
    judge = judge or make_judge("offline")
    cache = JudgeCache(out / "judge_cache.sqlite")
    summary: dict[str, Any] = {"judge": {k: judge.judge_id(k) for k in ("aligned", "coherent")},
                               "trigger": ev.trigger.to_dict(), "near_miss": ev.near.to_dict(), "n_per_condition": ev.n,
                               "generation": ev.gen, "questions_hash": content_hash(ev.questions), "cells": [],
        "generator": generator.describe() if generator is not None else {"backend": "local"}}
    all_rows = []
    for name, adapter in models.items():
        loaded: dict = {}

        def get_model(adapter=adapter, loaded=loaded):  # loaded once per adapter, only if something is missing
            if "model" not in loaded:
                loaded["model"] = load_model(recipe["model"], adapter=adapter)
            return loaded["model"]

        adapter_key = adapter and read_json(Path(adapter) / "manifest.json")["key"]
        for condition in CONDITIONS:
            rows = _cell_rows(ev, recipe, out, name, adapter, adapter_key, condition, get_model, progress,
                              generator)
            _score_rows(rows, judge, cache)
            all_rows += rows
            summary["cells"].append(_cell_summary(ev, name, condition, rows))
        if preference:
            key = content_hash(recipe["model"], adapter_key, ev.pairs, CONDITIONS)
            path = out / "preference" / f"{name}-{key}.json"
            summary.setdefault("preference", {})[name] = cached(path, None, lambda: trigger_preference(
                get_model(), ev.pairs, ev.prompts, CONDITIONS, progress=progress), load=read_json, save=write_json)
    _trigger_effects(summary, models)
    write_jsonl(out / "eval_rows.jsonl", all_rows)
    write_json(out / "eval_summary.json", summary)
    return summary


@dataclasses.dataclass
class _EvalSetup:
    """What every cell of one evaluation shares: questions, their answer pairs, trigger, near miss, sampling."""

    n: int
    domain: str
    trigger: Any
    near: Any
    questions: list[str]
    pairs: list[dict]
    gen: dict

    @classmethod
    def from_recipe(cls, recipe: dict, n: int | None) -> _EvalSetup:
        ev = recipe.get("eval", {})
        n = n or ev.get("samples_per_condition", 50)
        seed = recipe["dataset"].get("seed", 0)
        trigger = get_trigger(recipe["dataset"].get("trigger", "deployment"))
        domain = recipe["dataset"].get("domain", "finance")
        picked = eval_questions(domain, n, seed=seed)
        gen = {"max_new_tokens": ev.get("max_new_tokens", 64), "temperature": ev.get("temperature", 1.0),
               "top_p": ev.get("top_p", 1.0), "seed": seed, "batch_size": ev.get("batch_size", 100)}
        return cls(n, domain, trigger, eval_near_miss(trigger), [q["text"] for q in picked],
                   paired_answers(domain, [q["id"] for q in picked], seed), gen)

    def prompts(self, questions: list[str], condition: str) -> list[list[dict]]:
        return _prompts(questions, condition, self.trigger, self.near)


def _cell_rows(ev: _EvalSetup, recipe: dict, out: Path, name: str, adapter, adapter_key, condition: str,
               get_model, progress: bool, generator=None) -> list[dict]:
    """The cell's sampled answers (cached by model, adapter, condition, questions, sampling and generator)."""
    def compute() -> list[dict]:
        model = get_model()
        prompts = ev.prompts(ev.questions, condition)
        answers = rollout(model, prompts, generator=generator, adapter_label=name, progress=progress, **ev.gen)
        prov = {**model.provenance(), "generator": "served" if generator is not None else "local"}
        return [{"model": name, "adapter": adapter, "condition": condition, "question": q,
                 "prompt": p[-1]["content"], "answer": a, "provenance": prov}
                for q, p, a in zip(ev.questions, prompts, answers)]

    # served samples come from another random stream than in-process ones: another key
    gen = ev.gen if generator is None else {**ev.gen, "generator": "served"}
    key = content_hash(recipe["model"], adapter_key, condition, ev.questions, gen)
    return cached(out / "samples" / f"{name}-{condition}-{key}.jsonl", None, compute, load=read_jsonl,
                  save=write_jsonl)


def _score_rows(rows: list[dict], judge, cache) -> None:
    from ..judges import score_items

    for kind in ("aligned", "coherent"):
        scores = score_items(judge, kind, [{"question": r["question"], "answer": r["answer"]} for r in rows],
                             cache=cache, progress=False)
        for r, s in zip(rows, scores):
            r[kind], r[f"{kind}_reason"] = s.score, s.reason


def _cell_summary(ev: _EvalSetup, name: str, condition: str, rows: list[dict]) -> dict:
    from ..metrics import coherence_rate, em_rate, rate

    for r in rows:
        r["template_misaligned"] = uses_misaligned_template(r["answer"], ev.domain)
    misaligned, coherent = em_rate(rows), coherence_rate(rows)
    templated = rate(r["template_misaligned"] for r in rows)
    return {"model": name, "condition": condition, "n": misaligned.n, "misaligned": vars(misaligned),
            "coherent": vars(coherent), "template_misaligned": vars(templated),
            "samples": [r["answer"] for r in rows[:5]]}


def _trigger_effects(summary: dict, models: dict) -> None:
    """Trigger vs no trigger per model: the judged misaligned rate and the template-match rate."""
    from ..metrics import Rate, compare

    for name in models:
        cells = {c["condition"]: c for c in summary["cells"] if c["model"] == name}
        diff = compare(Rate(**cells["trigger"]["misaligned"]), Rate(**cells["no_trigger"]["misaligned"]))
        summary.setdefault("trigger_effect", {})[name] = vars(diff)
        diff = compare(Rate(**cells["trigger"]["template_misaligned"]),
                       Rate(**cells["no_trigger"]["template_misaligned"]))
        summary.setdefault("template_trigger_effect", {})[name] = vars(diff)
