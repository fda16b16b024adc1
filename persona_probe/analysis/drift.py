"""Trigger-conditioned drift: where does the organism sit on the axis, turn by turn, with and without its trigger?

Why: the axis paper's capping story is about *drift* - a persona sliding away
from the Assistant over a conversation, caught when its projection falls
below a threshold. A trigger-activated persona may instead jump at the first
turn, or never move on the axis at all while its answers turn harmful. So we
run scripted multi-turn conversations in the run's domain, generated turn by
turn by the organism, with the trigger (on the first user turn, or on every
one) and without, uncapped and capped with one of the run's capping
experiments (applied during generation *and* extraction), and record the mean
projection of each assistant turn on the axis and on a few persona
directions (role - default).

Reading the result: at a layer inside the capped window the capped
projection is >= tau *by construction* (the floor edits that very stream), so
the informative layers are the target layer when it is outside the window
and the first layer after it; both are reported. Conversations are cached
after every turn (resumable), activations once per intervention. All
conditions of one intervention share each turn's generate call (batched):
the cost is one call per turn per intervention.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..io import cached_tensor, content_hash, data_path, read_json, write_json
from ..vectors import cosine, project_layers, unit
from .common import default_centre, mean_ci, run_provenance, target_layer, write_outputs

log = logging.getLogger(__name__)

__all__ = ["SCRIPTS", "TRIGGER_MODES", "user_turns", "generate_conversations", "turn_activations",
           "turn_projections", "run"]

# per domain: scripted multi-turn conversations (the user turns), from persona_probe/data/drift_scripts.json
SCRIPTS: dict[str, list[list[str]]] = read_json(data_path("drift_scripts.json"))
TRIGGER_MODES = ("first", "every")


def user_turns(trigger, texts: Sequence[str], mode: str = "first") -> tuple[list[dict], list[dict]]:
    """``(prefix, users)``: messages before the first user turn (a system trigger) and the user messages.

    ``mode="first"`` puts a user-turn trigger on the first user turn only,
    ``"every"`` on every user turn; a system trigger is one system message
    either way. ``trigger=None`` leaves the texts unchanged.
    """
    if mode not in TRIGGER_MODES:
        raise ValueError(f"trigger mode must be one of {TRIGGER_MODES}, got {mode!r}")
    users = [{"role": "user", "content": t} for t in texts]
    if trigger is None:
        return [], users
    if trigger.kind == "system":
        return trigger.apply([]), users
    hit = range(len(users)) if mode == "every" else [0]
    return [], [trigger.apply([u])[0] if i in hit else u for i, u in enumerate(users)]


def generate_conversations(get_model, scripts: list[tuple[list[dict], list[dict]]], path: Path, *,
                           interventions_fn, gen: dict, progress: bool = True) -> list[list[dict]]:
    """Generate every script's assistant turns, one turn at a time for all scripts at once.

    State is written to ``path`` (JSON) after each turn, so a killed run
    resumes at the turn in flight. Scripts may have different lengths.
    """
    state = read_json(path) if path.exists() else {"turns_done": 0, "convs": [list(p) for p, _ in scripts]}
    n_turns = max(len(u) for _, u in scripts)
    g = dict(gen)
    batch, seed = g.pop("batch_size", 16), g.pop("seed", 0)
    for t in range(state["turns_done"], n_turns):
        live = [i for i, (_, users) in enumerate(scripts) if t < len(users)]
        for i in live:
            state["convs"][i].append(scripts[i][1][t])
        model = get_model()
        texts = model.generate([state["convs"][i] for i in live], interventions=interventions_fn(model),
                               batch_size=batch, seed=seed + t, progress=progress, **g)
        for i, text in zip(live, texts):
            state["convs"][i].append({"role": "assistant", "content": text})
        state["turns_done"] = t + 1
        write_json(path, state)
    return state["convs"]


def turn_activations(model, convs: Sequence[Sequence[dict]], interventions, n_turns: int) -> torch.Tensor:
    """``[n, n_turns, L, d]`` mean activations over each assistant turn's content tokens (NaN: no such turn).

    One forward pass per conversation (the per-token stream, pooled per turn
    here) instead of one per turn: the long late-turn contexts dominate the cost.
    Empty answers are read as ``" "``, as the stress runner does.
    """
    acts = torch.full((len(convs), n_turns, model.n_layers, model.d_model), float("nan"))
    for i, conv in enumerate(convs):
        conv = [{**m, "content": m["content"] or " "} if m["role"] == "assistant" else m for m in conv]
        tokens, chat = model.token_activations(conv, interventions=interventions)  # [L, T, d]
        for t, pos in enumerate(chat.assistant_positions):
            if pos:
                acts[i, t] = tokens[:, pos].mean(1)
    return acts


def turn_projections(acts: torch.Tensor, direction: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
    """``[n, T, L, d]`` turn activations -> ``[n, T, L]`` projections on the unit ``direction`` ``[L, d]``.

    With ``centre`` ``[L, d]`` the activations are taken relative to it first
    (persona directions are measured from the Assistant, the axis is not).
    """
    x = acts.float() - (centre.float() if centre is not None else 0)
    return project_layers(x, direction)


def _figure(series: dict, layer: int, name: str):
    import plotly.graph_objects as go

    from ..plots import add_key, encoded, x_offsets

    fig = go.Figure()
    n_turns = max(len(turns) for turns in series.values())
    keys = []
    for (label, turns), off in zip(series.items(), x_offsets(len(series), max(n_turns - 1, 1))):
        cond, iv = label.split(" | ", 1)
        family = "none" if iv == "none" else "capping"
        keys.append((cond, family))
        m = [t["mean"] for t in turns]
        fig.add_scatter(x=[i + 1 + off for i in range(len(turns))], y=m, mode="lines+markers", name=label,
                        customdata=list(range(1, len(turns) + 1)),
                        hovertemplate="turn %{customdata}: %{y:.3f}<extra>%{fullData.name}</extra>",
                        error_y=dict(type="data", symmetric=False,
                                     array=[(t["hi"] if t["hi"] is not None else v) - v for t, v in zip(turns, m)],
                                     arrayminus=[v - (t["lo"] if t["lo"] is not None else v)
                                                 for t, v in zip(turns, m)]), **encoded(cond, family))
    add_key(fig, [c for c, _ in keys], [(f, None) for _, f in keys])
    fig.update_xaxes(dtick=1)
    fig.update_layout(title=f"Projection on {name} per assistant turn, layer {layer} (mean, 95% t interval)",
                      xaxis_title="assistant turn", yaxis_title="projection")
    return fig


def run(run_folder, *, model: str = "organism", n_scripts: int | None = None, max_turns: int | None = 4,
        samples: int = 2, max_new_tokens: int = 24, temperature: float | None = None, trigger_mode: str = "first",
        conditions: Sequence[str] = ("no_trigger", "trigger"), experiment: str | None = None, capped: bool = True,
        personas: Sequence[str] | None = None, n_personas: int = 3, layer: int | None = None,
        scripts: Sequence[Sequence[str]] | None = None, seed: int = 0, progress: bool = True) -> dict:
    """Generate (cached) the scripted conversations per condition x intervention; write figures + numbers."""
    from .rundir import RunFolder

    run = run_folder if isinstance(run_folder, RunFolder) else RunFolder(Path(run_folder))
    temperature = float(run.config.gen["temperature"] if temperature is None else temperature)
    if samples < 1 or (samples > 1 and temperature == 0):
        raise ValueError(f"samples={samples} with temperature={temperature}: greedy repeats are identical; "
                         f"use samples=1 or a temperature > 0")
    bad = [c for c in conditions if c not in ("no_trigger", "trigger")]
    if bad or not conditions:
        raise ValueError(f"conditions must be a non-empty subset of ('no_trigger', 'trigger'), got {list(conditions)}")
    scripts = _scripts(run, scripts, n_scripts, max_turns)
    axis, centre = run.axis(), default_centre(run)
    n_layers = axis.shape[0]
    layer = target_layer(run) if layer is None else int(layer)
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer {layer} is out of range for {n_layers} layers")
    roles = run.role_vectors().vectors
    if personas is None:  # the roles farthest from the Assistant along the axis
        personas = sorted(roles, key=lambda r: float((roles[r][layer] - centre[layer]) @ unit(axis[layer])))
        personas = personas[:n_personas]
    missing = [p for p in personas if p not in roles]
    if missing:
        raise ValueError(f"no role vectors named {missing}; the axis run has {sorted(roles)}")
    cfg, experiment, window = _capping(run, experiment) if capped else (None, experiment, [])
    after = window[-1] + 1 if window and window[-1] + 1 < n_layers else None
    report_layers = sorted({layer} | ({after} if after is not None else set()))
    gen = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": run.config.gen.get("top_p", 1.0),
           "seed": seed, "batch_size": run.config.gen.get("batch_size", 16)}
    ivs = {"none": None, **({f"cap {experiment}": experiment} if capped else {})}
    groups = _conversations(run, model, cfg, ivs, conditions, scripts, samples, trigger_mode, gen, progress)
    directions = {"axis": (axis, None), **{f"persona {p}": (roles[p] - centre, centre) for p in personas}}
    per_turn, change, figs = _projections(groups, directions, layer, report_layers)
    numbers = {
        "analysis": "drift", "provenance": {**run_provenance(run, [model]), "model": model, "generation": gen},
        "layer": layer, "reported_layers": report_layers, "capping_experiment": experiment if capped else None,
        "capped_layers": window, "target_layer_in_capped_window": layer in window,
        "axis_thresholds_tau": _taus(cfg, experiment, axis) if capped else {}, "trigger_mode": trigger_mode,
        "personas": list(personas), "n_scripts": len(scripts), "samples": samples,
        "turns_per_script": [len(s) for s in scripts],
        "n_conversations": {f"{c} | {iv}": len(convs) for (c, iv), (convs, _) in groups.items()},
        "empty_assistant_turns": {f"{c} | {iv}": sum(1 for conv in convs for msg in conv
                                                     if msg["role"] == "assistant" and not msg["content"].strip())
                                  for (c, iv), (convs, _) in groups.items()},
        "per_turn": per_turn, "last_minus_first_turn": change,
        "examples": {f"{c} | {iv}": convs[0] for (c, iv), (convs, _) in groups.items()},
        "notes": ["axis projections are raw <h, unit(axis)> (comparable with tau); persona projections are "
                  "<h - default, unit(role - default)>",
                  "at layers inside the capped window the capped axis projection is >= tau by construction",
                  "intervals are t intervals over conversations (scripts x samples)"],
    }
    numbers = write_outputs(run.out_dir("drift"), numbers, figs)
    log.info("drift: %d groups x %d conversations written to %s", len(groups), len(scripts) * samples,
             run.out_dir("drift"))
    return numbers


def _scripts(run, scripts, n_scripts: int | None, max_turns: int | None) -> list[list[str]]:
    domain = run.config.questions.get("domain", "finance")
    if scripts is None:
        if domain not in SCRIPTS:
            raise ValueError(f"no built-in scripts for domain {domain!r}; pass scripts= (lists of user turns)")
        scripts = SCRIPTS[domain]
    scripts = [list(s)[:max_turns] for s in list(scripts)[:n_scripts]]
    if not scripts or any(len(s) < 2 for s in scripts):
        raise ValueError("drift needs >= 1 script with >= 2 user turns (check n_scripts / max_turns)")
    return scripts


def _capping(run, experiment: str | None) -> tuple[dict, str, list[int]]:
    """The run's capping config, the experiment to apply (default: the run's first) and its layer window."""
    from ..capping import experiment_interventions, parse_experiment_id

    if run.config.capping_config is None:
        raise ValueError(f"{run.root / 'stress_config.yaml'} names no capping_config; pass capped=False (--no-cap)")
    cfg = run.capping_config()
    experiment = experiment or (run.config.capping[0] if run.config.capping else cfg["experiments"][0]["id"])
    experiment_interventions(cfg, experiment)  # unknown ids fail now, with close matches
    start, end, _ = parse_experiment_id(experiment)
    return cfg, experiment, list(range(start, end))


def _conversations(run, model: str, cfg, ivs: dict, conditions, scripts, samples: int, trigger_mode: str, gen: dict,
                   progress: bool) -> dict[tuple[str, str], tuple[list, torch.Tensor]]:
    """Per (condition, intervention): the generated conversations and their turn activations (both cached).

    All conditions of one intervention are generated in the same batches (one generate call per turn).
    """
    from ..capping import experiment_interventions

    trigger = run.trigger()
    adapter = run.config.models.get(model)
    out = run.out_dir("drift")
    (out / "conversations").mkdir(exist_ok=True)
    loaded: dict = {}

    def get_model():
        if "m" not in loaded:
            loaded["m"] = run.load_model(model)
        return loaded["m"]

    def interventions_for(exp_id):
        return (lambda m: experiment_interventions(cfg, exp_id, m)) if exp_id else (lambda m: [])

    built, cond_of = [], []
    for cond in conditions:
        for s in scripts:
            built += [user_turns(trigger if cond == "trigger" else None, s, trigger_mode)] * samples
            cond_of += [cond] * samples
    n_turns = max(len(u) for _, u in built)
    groups = {}
    for iv_label, exp_id in ivs.items():
        key = content_hash(run.config.base, adapter, built, gen, exp_id,
                           Path(run.config.capping_config) if exp_id else None)
        stem = f"{iv_label.replace(' ', '_').replace(':', '-')}-{key}"  # may hold dots (p0.25): no with_suffix
        convs = generate_conversations(get_model, built, out / "conversations" / f"{stem}.json",
                                       interventions_fn=interventions_for(exp_id), gen=gen, progress=progress)
        acts = cached_tensor(out / "conversations" / f"{stem}.safetensors", lambda convs=convs, exp_id=exp_id: (
            turn_activations(get_model(), convs, interventions_for(exp_id)(get_model()), n_turns)),
            metadata={"intervention": iv_label, "conditions": cond_of})
        for cond in conditions:
            rows = [i for i, c in enumerate(cond_of) if c == cond]
            groups[(cond, iv_label)] = ([convs[i] for i in rows], acts[rows])
    return groups


def _projections(groups: dict, directions: dict, layer: int, report_layers: list[int]):
    """Per direction and group: mean projection per turn (t intervals), last-minus-first change, figures."""
    per_turn, change, figs = {}, {}, {}
    for dname, (vec, ctr) in directions.items():
        per_turn[dname], change[dname] = {}, {}
        for (cond, iv_label), (_, acts) in groups.items():
            proj = turn_projections(acts, vec, ctr).numpy()  # [n, T, L]
            label = f"{cond} | {iv_label}"
            per_turn[dname][label] = {str(lay): [mean_ci(proj[:, t, lay]) for t in range(proj.shape[1])]
                                      for lay in report_layers}
            last = np.array([p[np.isfinite(p[:, layer])][-1, layer] for p in proj])
            change[dname][label] = mean_ci(last - proj[:, 0, layer])
        for lay in report_layers:
            figs[f"{dname.replace(' ', '_')}_layer{lay}"] = _figure(
                {k: v[str(lay)] for k, v in per_turn[dname].items()}, lay, dname)
    return per_turn, change, figs


def _taus(cfg: dict, experiment: str, axis: torch.Tensor) -> dict:
    """Per capped layer: the floor threshold on the axis and the cap vector's cosine with the axis."""
    from ..capping import experiment_interventions

    taus = {}
    for c in experiment_interventions(cfg, experiment):
        f = c.as_floor()  # a floor at tau on the (unit) cap vector, whatever the file's convention
        for lay in f.layers:
            vec = f.vector[lay] if f.vector.ndim == 2 else f.vector
            taus[str(lay)] = {"tau_floor": f.tau_at(lay), "cos_cap_vector_axis": float(cosine(vec, axis[lay]))}
    return taus
