"""The Assistant Axis of the triggered model: is the run's axis (and its thresholds) the right one to cap with?

Why: the run's axis and capping thresholds come from the *base* model without
the trigger. The proposal's worry is that this is unfair to the organism: its
Assistant may sit elsewhere once fine-tuned, and elsewhere again when the
trigger is present, so a percentile threshold calibrated on the base model
may never bind (or always bind). So we rebuild the axis - same pipeline
(:func:`persona_probe.axis.pipeline.build_axis`, resumable), a reduced role
and question set - for up to three variants:

* ``base``: the base model, no trigger - the matched reference: it differs
  from the run's axis only by the reduction (fewer roles, questions, tokens),
  so its cosine with the run's axis is the noise floor of the comparison;
* ``organism``: the organism without the trigger (what fine-tuning alone did);
* ``triggered``: the organism with the trigger in every user turn (a system
  trigger is prefixed to every system prompt).

Each variant is calibrated exactly as the run's capping config was (same
percentiles, windows; default-prompt rollouts) and its config is written next
to its axis, ready for the stress config's ``triggered_capping_config`` (with
``calibration_activations`` = its ``default_activations.safetensors``).
Numbers: cosine with the run's axis per layer, pairwise cosines, and per layer
and percentile the threshold shift against the run's thresholds - on the
variant's own axis, and with the variant's default rollouts projected on the
run's axis (where the run's cap would bind) - with bootstrap intervals over rollouts.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..io import cached, content_hash, load_tensors, read_json, write_json
from ..vectors import cosine, project_layers
from .common import run_provenance, write_outputs

log = logging.getLogger(__name__)

__all__ = ["VARIANTS", "calibration_spec", "thresholds", "threshold_shift", "triggered_inputs", "run"]

VARIANTS = {"base": ("base", False), "organism": ("organism", False), "triggered": ("organism", True)}


def calibration_spec(cfg: dict) -> dict:
    """Percentiles, window width/stride and layer range of a capping config (its record, else its ids)."""
    from ..capping import parse_experiment_id

    parsed = [parse_experiment_id(e["id"]) for e in cfg["experiments"]]
    if not parsed:
        raise ValueError("the run's capping config has no experiments to copy the calibration from")
    rec = cfg.get("calibration") or {}
    starts = sorted({s for s, _, _ in parsed})
    return {"percentiles": [float(q) for q in rec.get("percentiles") or sorted({q for _, _, q in parsed})],
            "width": int(rec.get("width") or parsed[0][1] - parsed[0][0]),
            "stride": int(rec.get("stride") or (starts[1] - starts[0] if len(starts) > 1 else 1)),
            "layers": list(range(min(starts), max(e for _, e, _ in parsed)))}


def thresholds(acts: torch.Tensor, axis: torch.Tensor, percentiles: Sequence[float]) -> torch.Tensor:
    """``[n_q, L]`` quantiles of the rollouts' projections on the unit axis, as :func:`capping.calibrate` takes them."""
    proj = project_layers(acts, axis)
    return torch.quantile(proj, torch.tensor([float(q) for q in percentiles]), dim=0)


def threshold_shift(acts_a: torch.Tensor, axis_a: torch.Tensor, acts_b: torch.Tensor, axis_b: torch.Tensor,
                    percentiles: Sequence[float], *, n_boot: int = 200, seed: int = 0) -> dict:
    """``tau_a - tau_b`` per percentile and layer, with a bootstrap interval resampling both sets of rollouts."""
    diff = thresholds(acts_a, axis_a, percentiles) - thresholds(acts_b, axis_b, percentiles)
    g = torch.Generator().manual_seed(seed)
    boots = torch.stack([
        thresholds(acts_a[torch.randint(len(acts_a), (len(acts_a),), generator=g)], axis_a, percentiles)
        - thresholds(acts_b[torch.randint(len(acts_b), (len(acts_b),), generator=g)], axis_b, percentiles)
        for _ in range(n_boot)])
    lo, hi = torch.quantile(boots, 0.025, dim=0), torch.quantile(boots, 0.975, dim=0)
    return {str(q): {"shift": diff[i].tolist(), "lo": lo[i].tolist(), "hi": hi[i].tolist()}
            for i, q in enumerate(percentiles)} | {"n": [len(acts_a), len(acts_b)], "n_boot": n_boot}


def triggered_inputs(trigger, roles: list, questions: list, default_prompts: list[str]):
    """Roles, questions and default prompts with the trigger where :meth:`Trigger.apply` puts it, in every one."""
    if trigger.kind == "system":
        def sys(p):
            return trigger.apply([{"role": "system", "content": p}] if p else [])[0]["content"]

        return ([dataclasses.replace(r, prompts=tuple(sys(p) for p in r.prompts)) for r in roles], questions,
                [sys(p) for p in default_prompts])
    qs = [dataclasses.replace(q, text=trigger.apply([{"role": "user", "content": q.text}])[0]["content"])
          for q in questions]
    return roles, qs, default_prompts


def _figures(cos: dict, shifts: dict) -> dict:
    import plotly.graph_objects as go

    from ..plots import x_offsets

    fig = go.Figure()
    for name, values in cos.items():
        fig.add_scatter(x=list(range(len(values))), y=values, mode="lines+markers", name=name)
    fig.update_layout(title="Cosine between axes per layer", xaxis_title="layer", yaxis_title="cosine")
    figs = {"cosine_per_layer": fig}
    fig = go.Figure()
    series = [(f"{name}, p{q}", r) for name, res in shifts.items() for q, r in res.items() if isinstance(r, dict)]
    n_layers = max((len(r["shift"]) for _, r in series), default=1)
    for (label, r), off in zip(series, x_offsets(len(series), max(n_layers - 1, 1))):  # error bars side by side
        layers = list(range(len(r["shift"])))
        fig.add_scatter(x=[x + off for x in layers], y=r["shift"], mode="lines+markers", name=label,
                        customdata=layers, hovertemplate="layer %{customdata}: %{y:.3f}<extra>%{fullData.name}</extra>",
                        error_y=dict(type="data", symmetric=False, array=[h - s for h, s in zip(r["hi"], r["shift"])],
                                     arrayminus=[s - lo for s, lo in zip(r["shift"], r["lo"])]))
    fig.add_hline(y=0, line=dict(dash="dot", color="grey"))
    fig.update_layout(title="Capping threshold shift vs the run's thresholds (tau_variant - tau_run, 95% bootstrap)",
                      xaxis_title="layer", yaxis_title="threshold shift")
    figs["threshold_shift"] = fig
    return figs


def run(run_folder, *, variants: Sequence[str] = ("base", "organism", "triggered"), n_roles: int = 6,
        n_questions: int = 4, prompts: int = 1, n_default_prompts: int | None = None, max_new_tokens: int = 24,
        batch_size: int = 25, seed: int | None = None, n_boot: int = 200, roles_path=None,
        progress: bool = True) -> dict:
    """Build (or resume) each variant's reduced axis under ``<run>/analyses/triggered_axis/``; write the results."""
    from .rundir import RunFolder

    run = run_folder if isinstance(run_folder, RunFolder) else RunFolder(Path(run_folder))
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise ValueError(f"variants must be a non-empty subset of {list(VARIANTS)}, got {list(variants)}")
    manifest_path = run.config.axis.parent / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path}: the run's axis has no manifest (was it built by `axis build`?)")
    manifest = read_json(manifest_path)
    seed = int(manifest.get("seed", 0) if seed is None else seed)
    run_axis, run_acts = run.axis(), run.default_activations()
    cap_cfg = run.capping_config()
    spec = calibration_spec(cap_cfg)
    roles, questions, default_prompts = _inputs(run, manifest, roles_path, n_roles, n_questions, prompts,
                                                n_default_prompts, seed)
    inputs_hash = content_hash(default_prompts, [(r.name, list(r.prompts)) for r in roles],
                               [(q.id, q.text) for q in questions])
    gen = manifest.get("generation", {})
    sizes = {"n_roles": len(roles), "n_questions": len(questions), "prompts_per_role": prompts,
             "n_default_prompts": len(default_prompts), "max_new_tokens": max_new_tokens,
             "temperature": gen.get("temperature", 0.7), "top_p": gen.get("top_p", 0.9), "seed": seed}
    trigger = run.trigger()
    built = {v: _variant(run, v, (roles, questions, default_prompts), trigger, sizes, spec, batch_size, progress)
             for v in variants}
    cos = {f"{v} vs run axis": cosine(b["axis"], run_axis).tolist() for v, b in built.items()}
    for a, b in (("triggered", "base"), ("organism", "base"), ("triggered", "organism")):
        if a in built and b in built:
            cos[f"{a} vs {b}"] = cosine(built[a]["axis"], built[b]["axis"]).tolist()
    qs = spec["percentiles"]
    own = {f"{v} (own axis)": threshold_shift(b["acts"], b["axis"], run_acts, run_axis, qs, n_boot=n_boot, seed=seed)
           for v, b in built.items()}
    on_run = {f"{v} (on run axis)": threshold_shift(b["acts"], run_axis, run_acts, run_axis, qs, n_boot=n_boot,
                                                     seed=seed) for v, b in built.items()}
    run_taus = thresholds(run_acts, run_axis, qs)
    check = _config_check(cap_cfg, run_axis, run_taus, qs)
    numbers = {
        "analysis": "triggered_axis",
        "provenance": {**run_provenance(run, sorted({VARIANTS[v][0] for v in variants})),
                       "trigger": trigger.label, "judged": False, "run_axis_judged": manifest.get("judged")},
        "variants": {v: {"model": VARIANTS[v][0], "trigger": VARIANTS[v][1], "dir": str(b["dir"]),
                         "capping_config": str(b["dir"] / "capping_config.pt"),
                         "calibration_activations": str(b["dir"] / "default_activations.safetensors"),
                         "n_default_rollouts": int(b["acts"].shape[0]),
                         "responses_per_role": b["manifest"].get("responses_per_role")} for v, b in built.items()},
        "sizes": sizes, "roles": [r.name for r in roles], "question_ids": [q.id for q in questions],
        "inputs_hash": inputs_hash, "same_inputs_as_run_axis": inputs_hash == manifest.get("prompts_hash"),
        "calibration": spec, "n_run_default_rollouts": int(run_acts.shape[0]),
        "run_thresholds": {str(q): run_taus[i].tolist() for i, q in enumerate(qs)},
        "run_config_recomputed_max_abs_diff": max(check) if check else None,
        "cosine_per_layer": cos, "threshold_shift": {**own, **on_run},
        "notes": ["the 'base' variant differs from the run's axis only by the reduced inputs: its cosine is the "
                  "noise floor", "own axis: tau of the variant's calibration; on run axis: the variant's default "
                  "rollouts projected on the run's axis (where the run's cap binds for that model)"],
    }
    numbers = write_outputs(run.out_dir("triggered_axis"), numbers, _figures(cos, {**own, **on_run}))
    if "triggered" in built:
        log.info("triggered axis: cosine with the run's axis %s", np.round(cos["triggered vs run axis"], 3).tolist())
    return numbers


def _inputs(run, manifest: dict, roles_path, n_roles: int, n_questions: int, prompts: int,
            n_default_prompts: int | None, seed: int):
    """The reduced roles (of the run's), questions and default prompts every variant is built from."""
    from ..axis import roledata

    names = set(run.role_vectors().vectors)
    shipped = [r for r in roledata.load_roles(roles_path) if r.name in names]
    if len(shipped) < 2:
        raise ValueError(f"fewer than 2 of the run's roles {sorted(names)} are in the roles file "
                         f"({roles_path or 'shipped'}); pass roles_path= with the file the axis was built from")
    if len(shipped) < len(names):
        log.warning("roles %s of the run are not in the roles file; using the other %d",
                    sorted(names - {r.name for r in shipped}), len(shipped))
    roles = [dataclasses.replace(r, prompts=tuple(r.prompts)[:prompts])
             for r in roledata.select_roles(shipped, n_roles, seed)]
    questions = roledata.select_questions(roledata.load_questions(), n_questions, seed)
    default_prompts = list(manifest.get("default_prompts") or roledata.load_default_prompts())[:n_default_prompts]
    return roles, questions, default_prompts


def _variant(run, v: str, inputs: tuple, trigger, sizes: dict, spec: dict, batch_size: int, progress: bool) -> dict:
    """Build (or reuse) one variant's reduced axis and write its capping config, calibrated like the run's."""
    from ..axis import load_axis
    from ..axis.pipeline import build_axis
    from ..capping import calibrate, save_capping_config

    model_name, triggered = VARIANTS[v]
    r, q, d = triggered_inputs(trigger, *inputs) if triggered else inputs
    vdir = run.out_dir("triggered_axis") / f"axis_{v}"
    key = content_hash(run.config.base, run.config.models.get(model_name), d, [(x.name, list(x.prompts)) for x in r],
                       [(x.id, x.text) for x in q], sizes, batch_size)

    def build() -> dict:
        log.info("building the %s axis (%s%s)", v, model_name, " + trigger" if triggered else "")
        model = run.load_model(model_name)
        build_axis(model, vdir, r, q, d, seed=sizes["seed"], temperature=sizes["temperature"], top_p=sizes["top_p"],
                   max_new_tokens=sizes["max_new_tokens"], batch_size=batch_size, figures=False, progress=progress)
        del model
        return write_json(vdir / "build_key.json", {"key": key})

    def stored_key(path: Path):
        return read_json(path).get("key") if (vdir / "axis.safetensors").exists() else None

    cached(vdir / "build_key.json", key, build, load=Path, key_of=stored_key)
    axis = load_axis(vdir / "axis.safetensors")
    acts = load_tensors(vdir / "default_activations.safetensors")[0]["acts"]
    proj = project_layers(acts, axis)
    save_capping_config(vdir / "capping_config.pt", calibrate(
        proj, axis, layers=spec["layers"], percentiles=spec["percentiles"], width=spec["width"],
        stride=spec["stride"], rollouts=f"default-prompt rollouts of the {v} axis build ({acts.shape[0]})",
        extra={"variant": v, "model": model_name, "trigger": trigger.label if triggered else None}))
    return {"axis": axis, "acts": acts, "dir": vdir, "manifest": read_json(vdir / "manifest.json")}


def _config_check(cap_cfg: dict, run_axis: torch.Tensor, run_taus: torch.Tensor, qs: list[float]) -> list[float]:
    """The run's config thresholds vs recomputed ones (persona-probe configs store -axis, -tau)."""
    from ..capping import parse_experiment_id

    check = []
    for e in cap_cfg["experiments"]:
        q = parse_experiment_id(e["id"])[2]
        for iv in e["interventions"]:
            entry = cap_cfg["vectors"][iv["vector"]]
            if q in qs and float(cosine(entry["vector"], -run_axis[entry["layer"]])) > 0.9999:
                check.append(abs(-float(iv["cap"]) - float(run_taus[qs.index(q), entry["layer"]])))
    return check
