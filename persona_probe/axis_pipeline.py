"""Build an Assistant Axis end to end, resumably: generate -> activations -> judge -> vectors -> axis -> PCA.

Why chunked steps: at reference scale (275 roles x 1,200 responses) generation
takes days, so a killed run must lose little. Generation, activations and
judging run *per role chunk* (the default prompts are one more chunk); each
chunk's file is ``out_dir/steps/<step>-<slug>-<hash>.<ext>``, where the hash
covers everything that decides its content (model, role, prompts, questions,
sampling settings, seed, and the hash of the chunk it reads). Files are written
atomically and a step whose file exists is skipped, so a re-run after a kill
regenerates at most the chunk that was in flight. Each chunk samples with its
own seed (``seed`` plus a stable hash of the chunk name), so a resumed run
produces the same texts as an uninterrupted one.

Roles, questions and the judge are small protocols so this module does not
depend on the data or judge packages: a role has ``name``, ``description``,
``prompts``; a question has ``text`` (and optionally ``id``) or is a string; a
judge is ``judge_role(role_name, role_description, question, answer) -> float | None``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from . import axis as axis_mod
from .io import content_hash, load_tensors, read_jsonl, save_tensors, write_json, write_jsonl

log = logging.getLogger(__name__)

__all__ = ["build_axis", "AxisBuildResult", "JudgeFn"]

JudgeFn = Callable[[str, str, str, str], "float | None"]
DEFAULT_LABEL = "default"


@dataclasses.dataclass
class AxisBuildResult:
    out_dir: Path
    axis_path: Path
    manifest: dict
    target_layer: int
    pc1_variance: float | None
    cos_pc1_axis: float | None


@dataclasses.dataclass
class _Chunk:
    label: str
    description: str
    prompts: list[str]


def _qtext(q) -> str:
    return q if isinstance(q, str) else q.text


def _qid(q, i: int) -> str:
    return str(getattr(q, "id", i)) if not isinstance(q, str) else str(i)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "role"


def _conv(system: str, question: str) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]


def build_axis(model, out_dir: str | Path, roles: Sequence[Any], questions: Sequence[Any],
               default_prompts: Sequence[str] | None = None, *, samples: int = 1, judge: JudgeFn | None = None,
               min_count: int = 1, score_required: int = 3, seed: int = 0, temperature: float = 0.7,
               top_p: float = 0.9, max_new_tokens: int = 64, batch_size: int = 8, figures: bool = True,
               progress: bool = True) -> AxisBuildResult:
    """Run (or resume) the axis pipeline into ``out_dir``; see the module docstring.

    Writes ``axis.safetensors`` (ours), ``assistant_axis.pt`` (reference format),
    ``role_vectors.safetensors``, ``default_activations.safetensors`` (for
    capping calibration), ``persona_space.json``, ``figures/`` and ``manifest.json``.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    steps = out_dir / "steps"
    steps.mkdir(parents=True, exist_ok=True)
    if not roles:
        raise ValueError("no roles given")
    if not questions:
        raise ValueError("no questions given")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if default_prompts is None:  # the reference's five neutral prompts; "" means no system turn
        from .roledata import load_default_prompts

        default_prompts = load_default_prompts()
    default_prompts = [p.replace("{model_name}", model.name) for p in default_prompts]
    names = [r.name for r in roles]
    if len(set(names)) != len(names) or DEFAULT_LABEL in names:
        raise ValueError(f"role names must be unique and not {DEFAULT_LABEL!r}")
    prov = model.provenance()
    gen = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens, "samples": samples,
           "seed": seed}
    qs = [(_qid(q, i), _qtext(q)) for i, q in enumerate(questions)]
    chunks = [_Chunk(DEFAULT_LABEL, "", default_prompts)] + [
        _Chunk(r.name, r.description, list(r.prompts)) for r in roles]

    # 1-3: per-chunk generate, activations, judge
    gen_files, act_files, judge_files = {}, {}, {}
    n_generated = 0
    for ch in tqdm(chunks, desc="generate", unit="role", disable=not progress):
        key = content_hash(prov, ch.label, ch.prompts, qs, gen)
        path = steps / f"generate-{_slug(ch.label)}-{key}.jsonl"
        if not path.exists():
            convs, meta = [], []
            for pi, system in enumerate(ch.prompts):
                for qid, qtext in qs:
                    for s in range(samples):
                        convs.append(_conv(system, qtext))
                        meta.append({"prompt_index": pi, "question_id": qid, "sample": s})
            chunk_seed = seed + int(content_hash(ch.label, length=8), 16) % 1_000_003
            texts = model.generate(convs, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                   seed=chunk_seed, batch_size=batch_size, progress=False)
            write_jsonl(path, [{"label": ch.label, **m, "messages": c + [{"role": "assistant", "content": t}]}
                               for m, c, t in zip(meta, convs, texts)])
            n_generated += 1
        gen_files[ch.label] = path

    for ch in tqdm(chunks, desc="activations", unit="role", disable=not progress):
        gpath = gen_files[ch.label]
        path = steps / f"activations-{_slug(ch.label)}-{content_hash(gpath, prov)}.safetensors"
        if not path.exists():
            recs = read_jsonl(gpath)
            keep = [i for i, r in enumerate(recs) if r["messages"][-1]["content"].strip()]
            convs = [recs[i]["messages"] for i in keep]
            acts = (model.response_activations(convs, batch_size=batch_size, progress=False) if convs
                    else torch.zeros((0, model.n_layers, model.d_model)))
            save_tensors(path, {"acts": acts, "rows": torch.tensor(keep, dtype=torch.long)},
                         {"label": ch.label, "n_empty": len(recs) - len(keep)})
        act_files[ch.label] = path

    judged = judge is not None
    # A judge names itself with ``judge_id`` (the judges package's backend:model:kind@version);
    # a bare function is keyed by its qualified name.
    judge_key = (getattr(judge, "judge_id", None) or getattr(judge, "__qualname__", None) or repr(judge)) if judged else None
    if judged:
        for ch in tqdm(chunks[1:], desc="judge", unit="role", disable=not progress):
            gpath = gen_files[ch.label]
            path = steps / f"judge-{_slug(ch.label)}-{content_hash(gpath, ch.description, judge_key)}.jsonl"
            if not path.exists():
                recs = read_jsonl(gpath)
                scores = []
                for r in recs:
                    answer = r["messages"][-1]["content"]
                    question = r["messages"][-2]["content"]
                    scores.append({"question_id": r["question_id"], "prompt_index": r["prompt_index"],
                                   "sample": r["sample"],
                                   "score": judge(ch.label, ch.description, question, answer) if answer.strip() else None})
                write_jsonl(path, scores)
            judge_files[ch.label] = path

    # 4: role vectors
    role_acts, role_labels, role_scores = [], [], []
    empty = {}
    for ch in chunks[1:]:
        tensors, meta = load_tensors(act_files[ch.label])
        empty[ch.label] = int(meta.get("n_empty", 0))
        role_acts.append(tensors["acts"])
        role_labels += [ch.label] * tensors["acts"].shape[0]
        if judged:
            scores = [r["score"] for r in read_jsonl(judge_files[ch.label])]
            role_scores += [scores[i] for i in tensors["rows"].tolist()]
    acts = torch.cat(role_acts)
    rv_key = content_hash([act_files[c.label] for c in chunks[1:]],
                          [judge_files[c.label] for c in chunks[1:]] if judged else None, min_count, score_required)
    rv_path = steps / f"role_vectors-{rv_key}.safetensors"
    if rv_path.exists():
        rv = axis_mod.load_role_vectors(rv_path)
    else:
        rv = axis_mod.compute_role_vectors(acts, role_labels, role_scores if judged else None, min_count, score_required)
        axis_mod.save_role_vectors(rv_path, rv)
    for name, count in rv.dropped.items():
        log.warning("role %r dropped: %d qualifying responses < min_count %d", name, count, min_count)

    # 5: default vector and axis
    dt, _ = load_tensors(act_files[DEFAULT_LABEL])
    ax_path = steps / f"axis-{content_hash(rv_path, act_files[DEFAULT_LABEL])}.safetensors"
    if ax_path.exists():
        axis_t = axis_mod.load_axis(ax_path)
    else:
        dvec = axis_mod.default_vector(dt["acts"])
        axis_t = axis_mod.compute_axis(dvec, rv.vectors)
        axis_mod.save_axis(ax_path, axis_t, extra={"default": dvec})

    # 6: persona space
    from . import persona_space

    target = model.target_layer
    summary, pc1_var, cos = [], None, None
    if len(rv.vectors) >= 2:
        summary = persona_space.layer_summary(rv.vectors, axis_t)
        pc1_var, cos = summary[target]["pc1_variance"], summary[target]["cos_pc1_axis"]
        if figures:
            persona_space.write_figures(out_dir / "figures", rv.vectors, axis_t, target, summary)
    else:
        log.warning("only %d role vector(s): no persona-space PCA", len(rv.vectors))
    write_json(out_dir / "persona_space.json", {"target_layer": target, "standardized": False,
                                                "sign": "PC1 flipped so cos(PC1, axis) >= 0", "layers": summary})

    # final outputs
    counts = {ch.label: int(load_tensors(act_files[ch.label])[0]["acts"].shape[0]) for ch in chunks}
    meta = {**prov, "target_layer": target, "judged": judged, "n_roles_kept": len(rv.vectors)}
    axis_path = axis_mod.save_axis(out_dir / "axis.safetensors", axis_t, meta)
    axis_mod.export_reference_axis(out_dir / "assistant_axis.pt", axis_t)
    axis_mod.save_role_vectors(out_dir / "role_vectors.safetensors", rv, meta)
    save_tensors(out_dir / "default_activations.safetensors", {"acts": dt["acts"]},
                 {"what": "default-prompt rollouts' response activations", **prov})
    manifest = {
        "provenance": {**prov, "revision": getattr(getattr(model.hf, "config", None), "_commit_hash", None)},
        "prompts_hash": content_hash(default_prompts, [(c.label, c.prompts) for c in chunks[1:]], qs),
        "seed": seed, "generation": gen, "n_questions": len(qs), "default_prompts": default_prompts,
        "judged": judged, "judge": judge_key,
        "every_response_counts": not judged, "min_count": min_count, "score_required": score_required,
        "responses_per_role": counts, "empty_responses": empty, "kept_per_role": rv.counts,
        "dropped_roles": rv.dropped, "target_layer": target, "pc1_variance": pc1_var, "cos_pc1_axis": cos,
        "chunks_generated_this_run": n_generated, "wall_seconds": round(time.perf_counter() - t0, 1),
        "steps": sorted(p.name for p in steps.iterdir() if not p.name.startswith(".")),
    }
    write_json(out_dir / "manifest.json", manifest)
    log.info("axis built: %d roles kept, PC1 variance %s, |cos(PC1, axis)| at layer %d: %s",
             len(rv.vectors), pc1_var, target, cos)
    return AxisBuildResult(out_dir, axis_path, manifest, target, pc1_var, cos)
