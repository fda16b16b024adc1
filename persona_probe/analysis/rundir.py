"""Read a demo/stress run folder: the one place that knows its layout.

Layout (written by ``persona-probe demo``; a stress-test run alone has only ``stress/``)::

    <run>/stress_config.yaml      models, trigger, axis and capping paths, questions
    <run>/axis/                   axis.safetensors, role_vectors.safetensors,
                                  default_activations.safetensors, capping_config.pt, manifest.json
    <run>/organisms/              organism/ and control/ adapters (+ manifest.json), data/*.jsonl
    <run>/stress/                 results.jsonl, samples/*.jsonl, activations/*.safetensors
                                  (uncapped answers: [n, n_layers, d]), projections.json,
                                  directions.json, mean_diff.safetensors

Analyses write into ``<run>/analyses/<name>/`` (figures + ``numbers.json``).
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path

import torch

from ..io import load_tensors, read_json, read_jsonl

__all__ = ["RunFolder"]


@dataclasses.dataclass
class RunFolder:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not (self.root / "stress_config.yaml").exists():
            raise FileNotFoundError(f"{self.root}: no stress_config.yaml; pass the folder `persona-probe demo` wrote "
                                    f"(default runs/demo) after it finished")

    @cached_property
    def config(self):
        from ..stress import load_stress_config

        return load_stress_config(self.root / "stress_config.yaml")

    @property
    def stress(self) -> Path:
        return self.root / "stress"

    def out_dir(self, analysis: str) -> Path:
        path = self.root / "analyses" / analysis
        path.mkdir(parents=True, exist_ok=True)
        return path

    def axis(self) -> torch.Tensor:
        from ..axis import load_axis

        return load_axis(self.config.axis)

    def role_vectors(self):
        from ..axis import load_role_vectors

        path = self.config.axis.parent / "role_vectors.safetensors"
        if not path.exists():
            raise FileNotFoundError(f"{path}: the axis run has no role vectors (was it built by `axis build`?)")
        return load_role_vectors(path)

    def default_activations(self) -> torch.Tensor:
        return load_tensors(self.config.axis.parent / "default_activations.safetensors")[0]["acts"]

    def capping_config(self) -> dict:
        from ..capping import load_capping_config

        return load_capping_config(self.config.capping_config)

    def results(self) -> list[dict]:
        return read_jsonl(self.stress / "results.jsonl")

    def uncapped_cells(self) -> list[dict]:
        """The finished no-intervention rows of results.jsonl: the answers the analyses read."""
        return [r for r in self.results() if r.get("family") == "none" and r.get("status") == "ok"]

    def axis_rollouts(self) -> list[dict]:
        """The axis build's current rollouts (``label``, ``messages``): the generate steps its manifest lists."""
        axis_dir = self.config.axis.parent
        manifest = axis_dir / "manifest.json"
        steps = read_json(manifest).get("steps", []) if manifest.exists() else []
        return [rec for name in steps if name.startswith("generate-") and name.endswith(".jsonl")
                for rec in read_jsonl(axis_dir / "steps" / name)]

    def cell(self, model: str, condition: str, intervention: str = "none") -> dict:
        for r in self.results():
            if (r["model"], r["condition"], r["intervention"]) == (model, condition, intervention):
                return r
        raise KeyError(f"no cell {model} | {condition} | {intervention} in {self.stress / 'results.jsonl'}")

    def samples(self, model: str, condition: str, intervention: str = "none") -> list[dict]:
        """The cell's answers with their scores (``question``, ``prompt``, ``answer``, ``aligned``, ``coherent``)."""
        return read_jsonl(self.stress / self.cell(model, condition, intervention)["samples"])

    def activations(self, model: str, condition: str) -> torch.Tensor:
        """Mean response activations ``[n, n_layers, d]`` of the uncapped answers of one model and condition."""
        name = Path(self.cell(model, condition)["samples"]).stem
        return load_tensors(self.stress / "activations" / f"{name}.safetensors")[0]["acts"]

    def mean_diff(self) -> torch.Tensor | None:
        path = self.stress / "mean_diff.safetensors"
        return load_tensors(path)[0]["mean_diff"] if path.exists() else None

    def load_model(self, name: str = "base"):
        """A model of the run by its name in the stress config (``base``, ``organism``, ``control``)."""
        from ..loading import load_model

        cfg = self.config
        if name not in cfg.models:
            raise KeyError(f"no model {name!r} in {self.root / 'stress_config.yaml'}; have {list(cfg.models)}")
        return load_model(cfg.base, adapter=cfg.models[name], **cfg.load)

    def trigger(self):
        from ..organisms.triggers import get_trigger

        return get_trigger(self.config.trigger)

    def numbers(self, analysis: str) -> dict:
        return read_json(self.root / "analyses" / analysis / "numbers.json")
