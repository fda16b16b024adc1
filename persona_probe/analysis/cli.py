"""``persona-probe analysis <name> --run DIR``: the analyses of a finished run, one subcommand each.

The scripts in ``analyses/`` (``python analyses/<name>.py --run DIR``, ``make analyses``) call
:func:`script_main` here, so a script and its subcommand take the same options and run the same
code. Each analysis's options are keyword arguments of its ``run()`` (a test binds them).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
from pathlib import Path

from .common import add_run_options, parse_script_args, script_parser

log = logging.getLogger(__name__)

__all__ = ["ANALYSES", "register", "build_parser", "script_main"]

ANALYSES = {
    "magnitude": "per-persona magnitudes: does a basis of persona directions separate triggered answers?",
    "clustering": "do instructed and trigger-activated misalignment share a direction?",
    "drift": "per-turn axis and persona projections over scripted multi-turn conversations",
    "triggered_axis": "the axis and capping thresholds rebuilt on the organism, with and without the trigger",
    "persona_vectors": "a trait vector as a monitor, and preventative steering during organism training",
    "sae": "SAE features most aligned with the axis and the mean-diff direction",
    "transfer": "does a direction mapped into a second model still separate its labels?",
}
_NOT_RUN_ARGS = {"command", "verbose", "func", "help_parser", "analysis_name"}


def register(sub) -> None:
    p = sub.add_parser("analysis", help="analyses of a finished run: why capping does or does not work")
    asub = p.add_subparsers(dest="analysis_name", metavar="NAME")
    for name, summary in ANALYSES.items():
        a = asub.add_parser(name, help=summary, description=f"{summary} (python analyses/{name}.py is the same)")
        add_run_options(a, seed=_default_seed(name))
        _OPTIONS[name](a)
        a.set_defaults(func=cmd_analysis)
    p.set_defaults(func=None, help_parser=p)


def cmd_analysis(args: argparse.Namespace) -> int:
    return _run(args.analysis_name, {k: v for k, v in vars(args).items() if k not in _NOT_RUN_ARGS})


def build_parser(name: str, doc: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``analyses/<name>.py`` (``doc``: the script's docstring, its ``--help`` text)."""
    p = script_parser(doc or ANALYSES[name], seed=_default_seed(name))
    _OPTIONS[name](p)
    return p


def script_main(name: str, argv: list[str] | None = None, doc: str | None = None) -> int:
    """What ``analyses/<name>.py`` runs: parse, log to stderr, run the analysis, log its headline numbers."""
    args = parse_script_args(build_parser(name, doc), argv)
    return _run(name, dict(vars(args)))


def _default_seed(name: str) -> int | None:
    return None if name == "triggered_axis" else 0  # the triggered axis reuses the run's seed by default


def _run(name: str, kw: dict) -> int:
    module = importlib.import_module(f"persona_probe.analysis.{name}")
    kw = _PREPARE.get(name, lambda k: k)(kw)
    numbers = module.run(**kw)
    _REPORT[name](numbers)
    from ..report import write_analysis_page

    page = write_analysis_page(Path(kw["run_folder"]) / "analyses" / name)
    log.info("wrote %s/analyses/%s/numbers.json and %s", kw["run_folder"], name, page.name)
    return 0


# ------------------------------------------------------------------ options, one function per analysis
def _magnitude(p) -> None:
    p.add_argument("--model", default="organism", help="model of the run whose triggered/untriggered answers to score")
    p.add_argument("--layer", type=int, default=None, help="layer (default: the axis build's target layer)")
    p.add_argument("--personas", nargs="*", default=None, help="role names for the basis (default: all)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--n-boot", type=int, default=1000)


def _clustering(p) -> None:
    from .clustering import IMPLICIT

    p.add_argument("--n-questions", type=int, default=None, help="first N of the run's questions (default: all)")
    p.add_argument("--implicit", choices=IMPLICIT, default="all",
                   help="triggered organism answers to use: all, or only those judged misaligned")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the run's generation setting")
    p.add_argument("--layer", type=int, default=None)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--n-perm", type=int, default=200)
    p.add_argument("--judge", action="store_true", help="score the instructed answers with the run's judge")


def _drift(p) -> None:
    from .drift import TRIGGER_MODES

    p.add_argument("--model", default="organism")
    p.add_argument("--n-scripts", type=int, default=None, help="first N built-in scripts (default: all 4)")
    p.add_argument("--max-turns", type=int, default=4, help="cut every script to N user turns (0: keep all)")
    p.add_argument("--samples", type=int, default=2, help="sampled repeats of each script")
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--temperature", type=float, default=None, help="default: the run's generation temperature")
    p.add_argument("--trigger-mode", choices=TRIGGER_MODES, default="first")
    p.add_argument("--experiment", default=None, help="capping experiment id (default: the run's first)")
    p.add_argument("--no-cap", dest="capped", action="store_false", help="skip the capped conversations")
    p.add_argument("--personas", nargs="*", default=None,
                   help="role names (default: the 3 farthest from the Assistant)")
    p.add_argument("--layer", type=int, default=None)


def _triggered_axis(p) -> None:
    from .triggered_axis import VARIANTS

    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["base", "organism", "triggered"])
    p.add_argument("--roles", dest="n_roles", type=int, default=6, help="roles (a stratified subset of the run's)")
    p.add_argument("--questions", dest="n_questions", type=int, default=4)
    p.add_argument("--prompts", type=int, default=1, help="system prompts per role")
    p.add_argument("--default-prompts", dest="n_default_prompts", type=int, default=None,
                   help="first N default prompts (default: all)")
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=25)
    p.add_argument("--n-boot", type=int, default=200)


def _persona_vectors(p) -> None:
    p.add_argument("--trait", default="evil", help="trait name (shipped pairs: evil)")
    p.add_argument("--pairs", help="JSON file: list of [trait system prompt, anti-trait system prompt]")
    p.add_argument("--questions", default="generic", choices=["generic", "run"],
                   help="extraction questions: shipped generic ones or the stress test's")
    p.add_argument("--n-questions", type=int, default=6)
    p.add_argument("--layer", type=int, help="layer (default: the model's target layer)")
    p.add_argument("--coef", type=float, default=5.0, help="preventative steering coefficient on the raw vector")
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--max-steps", type=int, help="cap the retraining's optimiser steps (default: the recipe's)")
    p.add_argument("--eval-n", type=int, default=20, help="held-out questions per condition for the trigger eval")
    p.add_argument("--eval-max-new-tokens", type=int, default=48)
    p.add_argument("--no-train", dest="train", action="store_false", help="skip preventative retraining")
    p.add_argument("--n-boot", type=int, default=1000)


def _sae(p) -> None:
    p.add_argument("--sae", dest="sae_path", help="load this sae_lens SAE folder (cfg.json + weights) instead")
    p.add_argument("--layer", type=int, help="layer (default: the SAE's hook layer, else the model's target layer)")
    p.add_argument("--source-model", default="organism", help="run model whose activations are read")
    p.add_argument("--architecture", default="topk", choices=["topk", "standard"])
    p.add_argument("--d-sae", type=int, default=1024)
    p.add_argument("--k", type=int, default=32, help="active features per token (topk)")
    p.add_argument("--l1-coefficient", type=float, default=5.0, help="sparsity penalty (standard)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--max-tokens", type=int, default=20000)
    p.add_argument("--n-top", type=int, default=10, help="features listed per direction")
    p.add_argument("--no-axis-rollouts", dest="axis_rollouts", action="store_false")


def _transfer(p) -> None:
    p.add_argument("--direction", default="axis", choices=["axis", "mean_diff"])
    p.add_argument("--model-a", help="run model for A (default: base for the axis, the mean-diff source otherwise)")
    p.add_argument("--model-b", default="minilm", help="'minilm' or an HF causal LM path / repo id")
    p.add_argument("--layer-a", type=int, help="A layer (default: A's target layer)")
    p.add_argument("--layer-b", type=int, help="B layer (default: best held-out ridge R2)")
    p.add_argument("--eval-fraction", type=float, default=0.5)
    p.add_argument("--n-controls", type=int, default=20)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=16)


_OPTIONS = {"magnitude": _magnitude, "clustering": _clustering, "drift": _drift, "triggered_axis": _triggered_axis,
            "persona_vectors": _persona_vectors, "sae": _sae, "transfer": _transfer}


# ------------------------------------------------------------------ options that need work before run()
def _prepare_clustering(kw: dict) -> dict:
    if kw.pop("judge"):
        from ..judges import from_spec
        from .rundir import RunFolder

        kw["judge"] = from_spec(RunFolder(kw["run_folder"]).config.judge)
    return kw


def _prepare_drift(kw: dict) -> dict:
    kw["max_turns"] = kw["max_turns"] or None
    return kw


def _prepare_persona_vectors(kw: dict) -> dict:
    if kw["pairs"]:
        with open(kw["pairs"], encoding="utf-8") as fh:
            kw["pairs"] = json.load(fh)
    return kw


_PREPARE = {"clustering": _prepare_clustering, "drift": _prepare_drift, "persona_vectors": _prepare_persona_vectors}


# ------------------------------------------------------------------ the headline numbers, logged
def _report_magnitude(numbers: dict) -> None:
    for name, res in numbers["auroc"].items():
        log.info("%-32s AUROC %.3f [%.3f, %.3f] (n=%d+%d)", name, res["auroc"], res["lo"], res["hi"],
                 res["n_pos"], res["n_neg"])


def _report_clustering(numbers: dict) -> None:
    log.info("silhouette %.3f (p=%.3f); probe AUROCs %s", numbers["silhouette"]["silhouette"],
             numbers["silhouette"]["p_perm"], {k: round(v["auroc"], 3) for k, v in numbers["probe"].items()})


def _report_drift(numbers: dict) -> None:
    for label, res in numbers["last_minus_first_turn"]["axis"].items():
        log.info("axis drift (last - first turn) %-40s %s", label, res)


def _report_triggered_axis(numbers: dict) -> None:
    for name, values in numbers["cosine_per_layer"].items():
        log.info("cosine %-26s %s", name, [round(v, 3) for v in values])


def _report_persona_vectors(numbers: dict) -> None:
    m = numbers["monitor"]["trait"]
    log.info("trait %r layer %d: AUROC trigger vs none %.3f [%.3f, %.3f] (n=%d+%d)", numbers["trait"],
             numbers["layer"], m["auroc"], m["lo"], m["hi"], m["n_pos"], m["n_neg"])
    for name, d in numbers.get("trigger_effect", {}).get("trigger_effect", {}).items():
        log.info("%s: trigger effect %+.3f [%+.3f, %+.3f], p=%.3g", name, d["diff"], d["lo"], d["hi"], d["p_value"])


def _report_sae(numbers: dict) -> None:
    rec = numbers["reconstruction"]["heldout"]
    log.info("layer %d: held-out explained variance %.3f, L0 %.1f, dead %.1f%% (%d tokens)", numbers["layer"],
             rec["explained_variance"], rec["l0"], 100 * rec["dead_fraction"], rec["n_tokens"])
    for name, a in numbers["alignment"].items():
        log.info("%s: best feature %d, |cos| %.3f (isotropic p=%.3f, covariance p=%.3f)", name, a["best_feature"],
                 a["max_abs_cos"], a["baselines"]["isotropic"]["p_baseline_ge_real"],
                 a["baselines"]["covariance"]["p_baseline_ge_real"])


def _report_transfer(numbers: dict) -> None:
    s = numbers["scores"]
    log.info("ridge A layer %d -> B layer %d: held-out R2 %.3f", numbers["layer_a"], numbers["layer_b"],
             numbers["ridge"]["r2_heldout"])
    for key in ("transferred", "a_native", "b_native"):
        log.info("%s AUROC %.3f [%.3f, %.3f]", key, s[key]["auroc"], s[key]["lo"], s[key]["hi"])
    for key, c in s["controls"].items():
        log.info("control %s: mean separation %.3f, p(control >= transferred) = %.3f", key, c["mean_separation"],
                 c["p_control_ge_transfer"])


_REPORT = {"magnitude": _report_magnitude, "clustering": _report_clustering, "drift": _report_drift,
           "triggered_axis": _report_triggered_axis, "persona_vectors": _report_persona_vectors, "sae": _report_sae,
           "transfer": _report_transfer}
