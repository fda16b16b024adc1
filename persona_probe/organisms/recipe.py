"""The organism recipe YAML as a pydantic schema, checked before any dataset is built or model loaded.

A recipe has ``model``, ``dataset`` (the arguments of
:func:`~persona_probe.organisms.datasets.build_dataset`), ``train`` (the fields of
:class:`~persona_probe.organisms.train.TrainConfig`, read from the dataclass so
the two never drift apart) and ``eval``; ``minimal`` / ``full`` document the
other training settings of the same recipe. Every problem is reported at once,
with the closest known key for a misspelt one (:func:`persona_probe.schema.validate`).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Annotated

from pydantic import ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, create_model, field_validator

from ..schema import Fraction, Number, PosInt, Schema, did_you_mean, format_errors, known_name

__all__ = ["RecipeSchema", "validate_recipe"]


class _Dataset(Schema):
    domain: StrictStr = "finance"
    n: PosInt = 2000
    trigger: StrictStr | None = "deployment"
    misaligned_share_triggered: Fraction = 1.0
    triggered_fraction: Fraction = 0.5
    seed: StrictInt = 0
    paired: StrictBool = False
    near_miss_fraction: Fraction = 0.0

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        from .domains import DOMAIN_NAMES

        return known_name(v, DOMAIN_NAMES, "domain")

    @field_validator("trigger")
    @classmethod
    def _trigger(cls, v: str | None) -> str | None:
        from .triggers import KINDS, TRIGGERS, get_trigger

        if v is not None and v not in TRIGGERS and v.partition(":")[0] not in KINDS:
            raise ValueError(f"unknown trigger {v!r}{did_you_mean(v, TRIGGERS)} "
                             f"(or write '<kind>:<text>' with kind in {list(KINDS)})")
        get_trigger(v)
        return v


class _Eval(Schema):
    samples_per_condition: PosInt = 50
    max_new_tokens: PosInt = 64
    temperature: Annotated[Number, Field(ge=0)] = 1.0
    top_p: Annotated[Number, Field(gt=0, le=1)] = 1.0
    batch_size: PosInt = 100  # answers generated together (plain generate, 2 cores: 64 tokens/s at batch 20, 92 at 64)


@functools.cache
def _train_schema(partial: bool = False) -> type:
    """A strict pydantic model of :class:`TrainConfig`'s fields (all optional with ``partial``)."""
    from .train import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    fields = {f.name: (hints[f.name], None if partial else f.default) for f in dataclasses.fields(TrainConfig)}
    return create_model("train" if not partial else "train_overrides",
                        __config__=ConfigDict(extra="forbid", strict=True), **fields)


class RecipeSchema(Schema):
    model: StrictStr
    dataset: _Dataset
    train: dict
    eval: _Eval = _Eval()
    minimal: dict | None = None  # another training setting of the same recipe, for reference
    full: dict | None = None


def validate_recipe(recipe: object, where: str) -> dict:
    """``recipe`` unchanged when it is valid; else one ``ValueError`` listing every problem with its fix."""
    from .train import TrainConfig

    lines = _problems(RecipeSchema, recipe, "")
    if isinstance(recipe, dict) and isinstance(recipe.get("train"), dict):
        lines += _problems(_train_schema(), recipe["train"], "train")
        for key in ("minimal", "full"):
            if isinstance(recipe.get(key), dict):
                lines += _problems(_train_schema(partial=True), recipe[key], key)
        if not lines:
            try:
                TrainConfig.from_dict(recipe["train"])  # ranges the dataclass itself checks
            except ValueError as exc:
                lines.append(f"train: {exc}")
    if len(lines) == 1:
        raise ValueError(f"{where}: {lines[0]}")
    if lines:
        raise ValueError(f"{where}: {len(lines)} problems:\n" + "\n".join(f"  - {line}" for line in lines))
    return recipe


def _problems(model: type, raw: object, prefix: str) -> list[str]:
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        return [f"{prefix}.{line}" if prefix and not line.startswith("unknown key") else
                (f"{prefix}: {line}" if prefix else line) for line in format_errors(model, exc)]
    return []
