"""Build an Assistant Axis end to end, resumably: generate -> judge -> activation shards -> vectors -> axis -> PCA.

Why chunked steps: at reference scale (275 roles x 1,200 responses) generation
takes days, so a killed run must lose little. Generation, judging and
activations run *per role chunk* (the default prompts are one more chunk); each
chunk's file is ``out_dir/steps/<step>-<slug>-<hash>.<ext>``, where the hash
covers everything that decides its content (model, role, prompts, questions,
sampling settings, seed, and the hash of the chunk it reads). Files are written
atomically and a step whose file exists is skipped, so a re-run after a kill
redoes at most the chunk that was in flight. Each chunk samples with its
own seed (``seed`` plus a stable hash of the chunk name), so a resumed run
produces the same texts as an uninterrupted one.

Why streaming: the per-response all-layer activations of a paper-scale build
(330k x 64 layers x 5120 floats) are ~430 GB. A role's answers stream through
the model a batch at a time into running sums per judge grade, written as the
role's shard (:mod:`.shards`); the role vectors come from the shards. Peak
memory is one batch plus O(roles x layers x d). Only the default prompts'
per-response activations are kept (for capping calibration), written to disk
row by row.

Rollouts without an intervention can go to a serving engine: ``generator`` (a
:class:`persona_probe.rollouts.ServedRollouts`) answers every role and default
prompt, and its answers pass through the same nnsight extraction. The server is
checked (reachable, serving this model) before the first rollout, and answers are
cached in ``out_dir/rollout_cache.sqlite`` so a killed run asks for none twice.

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

from ..io import (
    IncompleteStep,
    cached,
    content_hash,
    load_tensors,
    read_jsonl,
    read_step_jsonl,
    write_json,
    write_step_jsonl,
)
from ..judges import FailureTally
from ..progress import note_progress
from ..rollouts import rollout
from ..tensor_files import link_or_copy
from . import compute as axis_mod
from .shards import read_shard, write_chunk_shard

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


@dataclasses.dataclass
class _Build:
    """What every step of one build reads: the model, the steps folder, the chunks and settings."""

    model: Any
    steps: Path
    chunks: list[_Chunk]
    qs: list[tuple[str, str]]
    gen: dict
    prov: dict
    batch_size: int
    progress: bool
    generator: Any = None

    @property
    def roles(self) -> list[_Chunk]:
        return self.chunks[1:]


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
               progress: bool = True, max_judge_failures: float = 0.0, generator=None) -> AxisBuildResult:
    """Run (or resume) the axis pipeline into ``out_dir``; see the module docstring.

    Steps: generate -> judge -> activation shards -> role vectors -> axis -> persona space (figures) -> outputs.
    A judge may return a score, ``None`` or a :class:`~persona_probe.judges.Judgement`; a failed one
    (``transient``) is recorded in the judge step file as a failure and judged again on the next run, and
    more than ``max_judge_failures`` of them stop the build before the shards
    (:class:`~persona_probe.judges.JudgeFailures`).
    Writes ``axis.safetensors`` (ours), ``assistant_axis.pt`` and ``vectors/<role>.pt`` (the reference's
    layouts), ``role_vectors.safetensors``, ``default_activations.safetensors`` (for capping
    calibration), ``persona_space.json``, ``figures/`` and ``manifest.json``. ``generator``: a served
    generator for the rollouts (``None``: in-process).
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    default_prompts = _check_inputs(model, roles, questions, default_prompts, samples)
    if generator is not None:  # a dead or wrong server fails here, before any rollout
        generator.preflight(model)
        generator.use_cache(out_dir / "rollout_cache.sqlite")
    steps = out_dir / "steps"
    steps.mkdir(parents=True, exist_ok=True)
    gen = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens, "samples": samples,
           "seed": seed}
    chunks = [_Chunk(DEFAULT_LABEL, "", default_prompts)] + [
        _Chunk(r.name, r.description, list(r.prompts)) for r in roles]
    b = _Build(model, steps, chunks, [(_qid(q, i), _qtext(q)) for i, q in enumerate(questions)], gen,
               model.provenance(), batch_size, progress, generator)
    gen_files, n_generated = _generate(b)
    judge_key, judge_files = _judge(b, gen_files, judge, max_judge_failures)
    shard_files, default_acts = _shards(b, gen_files, judge_files)
    rv, rv_path, meta_by_chunk = _role_vectors(b, shard_files, judge is not None, min_count, score_required)
    axis_t, dvec = _axis(b, shard_files, rv, rv_path)
    target, pc1_var, cos = _persona_space(b, out_dir, rv, axis_t, figures)
    meta = {**b.prov, "target_layer": target, "judged": judge is not None, "n_roles_kept": len(rv.vectors)}
    axis_path = _write_outputs(b, out_dir, axis_t, rv, dvec, default_acts, meta)
    manifest = {
        "provenance": {**b.prov, "revision": getattr(getattr(model.hf, "config", None), "_commit_hash", None)},
        "prompts_hash": content_hash(default_prompts, [(c.label, c.prompts) for c in b.roles], b.qs),
        "seed": seed, "generation": gen, "n_questions": len(b.qs), "default_prompts": default_prompts,
        "generator": generator.describe() if generator is not None else {"backend": "local"},
        "judged": judge is not None, "judge": judge_key,
        "every_response_counts": judge is None, "min_count": min_count, "score_required": score_required,
        "responses_per_role": {k: m["n_responses"] for k, m in meta_by_chunk.items()},
        "empty_responses": {k: m["n_empty"] for k, m in meta_by_chunk.items() if k != DEFAULT_LABEL},
        "kept_per_role": rv.counts, "dropped_roles": rv.dropped, "target_layer": target, "pc1_variance": pc1_var,
        "cos_pc1_axis": cos, "chunks_generated_this_run": n_generated,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "steps": sorted(p.name for p in steps.iterdir() if not p.name.startswith(".")),
    }
    write_json(out_dir / "manifest.json", manifest)
    log.info("axis built: %d roles kept, PC1 variance %s, |cos(PC1, axis)| at layer %d: %s",
             len(rv.vectors), pc1_var, target, cos)
    return AxisBuildResult(out_dir, axis_path, manifest, target, pc1_var, cos)


def _check_inputs(model, roles, questions, default_prompts, samples: int) -> list[str]:
    """Fail on empty or clashing inputs; the default prompts with ``{model_name}`` filled."""
    if not roles:
        raise ValueError("no roles given")
    if not questions:
        raise ValueError("no questions given")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if default_prompts is None:  # the reference's five neutral prompts; "" means no system turn
        from .roledata import load_default_prompts

        default_prompts = load_default_prompts()
    names = [r.name for r in roles]
    if len(set(names)) != len(names) or DEFAULT_LABEL in names:
        raise ValueError(f"role names must be unique and not {DEFAULT_LABEL!r}")
    return [p.replace("{model_name}", model.name) for p in default_prompts]


# 1: generate, one file per chunk (the default prompts are one more chunk)
def _generate(b: _Build) -> tuple[dict[str, Path], int]:
    files, fresh = {}, []
    # served samples come from another random stream than in-process ones: they are other files
    gen_key = b.gen if b.generator is None else {**b.gen, "generator": "served"}
    for ch in tqdm(b.chunks, desc="generate", unit="role", disable=not b.progress):
        path = b.steps / f"generate-{_slug(ch.label)}-{content_hash(b.prov, ch.label, ch.prompts, b.qs, gen_key)}.jsonl"

        def compute(ch=ch, path=path) -> Path:
            fresh.append(ch.label)
            return write_step_jsonl(path, _generate_chunk(b, ch))

        n = len(ch.prompts) * len(b.qs) * b.gen["samples"]  # a truncated file is redone, not used
        files[ch.label] = cached(path, None, compute, load=lambda p, n=n: _whole(p, read_step_jsonl(p, expected=n)))
        note_progress("axis build", f"{len(files)} of {len(b.chunks)} chunks generated in {b.steps}")
    return files, len(fresh)


def _generate_chunk(b: _Build, ch: _Chunk) -> list[dict]:
    convs, meta = [], []
    for pi, system in enumerate(ch.prompts):
        for qid, qtext in b.qs:
            for s in range(b.gen["samples"]):
                convs.append(_conv(system, qtext))
                meta.append({"prompt_index": pi, "question_id": qid, "sample": s})
    chunk_seed = b.gen["seed"] + int(content_hash(ch.label, length=8), 16) % 1_000_003
    texts = rollout(b.model, convs, generator=b.generator, max_new_tokens=b.gen["max_new_tokens"],
                    temperature=b.gen["temperature"], top_p=b.gen["top_p"], seed=chunk_seed,
                    batch_size=b.batch_size, progress=False)
    return [{"label": ch.label, **m, "messages": c + [{"role": "assistant", "content": t}]}
            for m, c, t in zip(meta, convs, texts)]


def _whole(path: Path, _read: Any) -> Path:
    """``path``, once a reader that raises ``IncompleteStep`` on a truncated file has read it whole."""
    return path


# 2: role-adherence judge (roles only); a failed judgement is kept as a failure and retried on the next run
def _judge(b: _Build, gen_files: dict[str, Path], judge: JudgeFn | None,
           max_failures: float = 0.0) -> tuple[str | None, dict[str, Path]]:
    if judge is None:
        return None, {}
    # A judge names itself with ``judge_id`` (the judges package's backend:model:kind@version);
    # a bare function is keyed by its qualified name.
    judge_key = getattr(judge, "judge_id", None) or getattr(judge, "__qualname__", None) or repr(judge)
    files, tally = {}, FailureTally(getattr(judge, "where", judge_key))
    for ch in tqdm(b.roles, desc="judge", unit="role", disable=not b.progress):
        gpath = gen_files[ch.label]
        path = b.steps / f"judge-{_slug(ch.label)}-{content_hash(gpath, ch.description, judge_key)}.jsonl"
        recs = read_jsonl(gpath)
        try:
            rows = read_step_jsonl(path, expected=len(recs)) if path.exists() else []
        except IncompleteStep as exc:
            log.warning("%s; judging this role again", exc)
            rows = []
        if not rows or any(r.get("failed") for r in rows):  # new, or with failures to retry
            rows = _judge_chunk(recs, ch, judge, rows)
            write_step_jsonl(path, rows)
        tally.add_reasons(len(rows), [r.get("failed") for r in rows])
        files[ch.label] = path
        note_progress("axis build", f"{len(files)} of {len(b.roles)} roles judged")
    tally.check(max_failures)  # before the shards: failures would otherwise look like unqualified responses
    if tally.failed:
        log.warning("%s; the failed ones count as unscored until a re-run retries them", tally.summary())
    return judge_key, files


def _judge_chunk(recs: list[dict], ch: _Chunk, judge: JudgeFn, done: list[dict]) -> list[dict]:
    """Scores of one role's answers; rows of ``done`` without a failure are kept, the others judged (again)."""
    scores = []
    for i, r in enumerate(recs):
        if i < len(done) and not done[i].get("failed"):
            scores.append(done[i])
            continue
        answer = r["messages"][-1]["content"]
        question = r["messages"][-2]["content"]
        row = {"question_id": r["question_id"], "prompt_index": r["prompt_index"], "sample": r["sample"]}
        verdict = judge(ch.label, ch.description, question, answer) if answer.strip() else None
        if getattr(verdict, "transient", False):  # a Judgement whose request failed: not a score
            row.update(score=None, failed=verdict.reason)
        else:
            row["score"] = getattr(verdict, "score", verdict)
        scores.append(row)
    return scores


# 3: activation shards, role by role: sums per judge grade (and the default rollouts' rows)
def _shards(b: _Build, gen_files: dict[str, Path], judge_files: dict[str, Path]) -> tuple[dict[str, Path], Path]:
    files, default_acts = {}, None
    for ch in tqdm(b.chunks, desc="activations", unit="role", disable=not b.progress):
        gpath, jpath = gen_files[ch.label], judge_files.get(ch.label)
        key = content_hash("shard-v1", gpath, jpath, b.prov)
        path = b.steps / f"shard-{_slug(ch.label)}-{key}.safetensors"
        acts = b.steps / f"default_acts-{key}.safetensors" if ch.label == DEFAULT_LABEL else None
        if not _shard_whole(path) or (acts is not None and not acts.exists()):
            write_chunk_shard(b.model, read_jsonl(gpath), read_jsonl(jpath) if jpath else None, path,
                              label=ch.label, batch_size=b.batch_size, acts_path=acts,
                              acts_meta={"what": "default-prompt rollouts' response activations", **b.prov})
        files[ch.label] = path
        default_acts = acts or default_acts
    return files, default_acts


def _shard_whole(path: Path) -> bool:
    """Whether ``path`` is a finished, readable shard (a truncated one is redone, never used)."""
    try:
        return path.exists() and bool(read_shard(path))
    except IncompleteStep as exc:
        log.warning("%s; redoing this role's activations", exc)
        return False


# 4: role vectors, from the shards
def _role_vectors(b: _Build, shard_files: dict[str, Path], judged: bool, min_count: int,
                  score_required: int) -> tuple[axis_mod.RoleVectors, Path, dict[str, dict]]:
    metas = {ch.label: read_shard(shard_files[ch.label])[1] for ch in b.chunks}
    rv_key = content_hash([shard_files[c.label] for c in b.roles], judged, min_count, score_required)
    rv_path = b.steps / f"role_vectors-{rv_key}.safetensors"

    def compute() -> axis_mod.RoleVectors:  # one role's sums in memory at a time, plus the vectors
        return axis_mod.role_vectors_from_sums(
            {c.label: read_shard(shard_files[c.label])[0] for c in b.roles}, judged=judged,
            min_count=min_count, score_required=score_required)

    rv = cached(rv_path, None, compute, load=axis_mod.load_role_vectors, save=axis_mod.save_role_vectors)
    for name, count in rv.dropped.items():
        log.warning("role %r dropped: %d qualifying responses < min_count %d", name, count, min_count)
    return rv, rv_path, metas


# 5: default vector and axis
def _axis(b: _Build, shard_files: dict[str, Path], rv, rv_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    ax_path = b.steps / f"axis-{content_hash(rv_path, shard_files[DEFAULT_LABEL])}.safetensors"

    def compute() -> torch.Tensor:
        dvec, n = read_shard(shard_files[DEFAULT_LABEL])[0].mean()
        if dvec is None:
            raise ValueError("every default-prompt answer is empty: no default vector; raise max_new_tokens")
        axis_t = axis_mod.compute_axis(dvec, rv.vectors)
        axis_mod.save_axis(ax_path, axis_t, extra={"default": dvec})
        return axis_t

    axis_t = cached(ax_path, None, compute, load=axis_mod.load_axis)
    return axis_t, load_tensors(ax_path)[0]["default"]


# 6: persona space (PCA of the role vectors) and its figures
def _persona_space(b: _Build, out_dir: Path, rv, axis_t: torch.Tensor,
                   figures: bool) -> tuple[int, float | None, float | None]:
    from . import persona_space

    target = b.model.target_layer
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
    return target, pc1_var, cos


# 7: the build's own outputs (ours and the reference's formats)
def _write_outputs(b: _Build, out_dir: Path, axis_t: torch.Tensor, rv, dvec: torch.Tensor, default_acts: Path,
                   meta: dict) -> Path:
    axis_path = axis_mod.save_axis(out_dir / "axis.safetensors", axis_t, meta)
    axis_mod.export_reference_axis(out_dir / "assistant_axis.pt", axis_t)
    axis_mod.save_role_vectors(out_dir / "role_vectors.safetensors", rv, meta)
    folder = axis_mod.export_reference_role_vectors(out_dir / "vectors", rv, dvec)
    written = set(axis_mod.reference_file_stems([*rv.vectors, "default"]))
    for stale in folder.glob("*.pt"):  # roles a previous run kept and this one dropped
        if stale.stem not in written:
            stale.unlink()
    link_or_copy(default_acts, out_dir / "default_activations.safetensors")
    return axis_path
