"""Config schemas: pydantic models checked before any compute, with errors that name the fix.

Every YAML a command reads (stress configs, organism recipes) is validated by a
pydantic model (``extra="forbid"``, strict numbers) in one pass, so *all* of a
config's problems are reported together, in a second, before a model loads.
:func:`validate` turns pydantic's messages into ones a user can act on:

* an unknown key suggests the closest known one (``max_new_token`` ->
  ``did you mean 'max_new_tokens'?``);
* a string where a list belongs says so (``conditions: no_trigger`` would
  otherwise be read letter by letter);
* an unknown name lists the known ones, closest first.

The models validate; callers keep the raw values they hash, so adding a
schema changes no stored key.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Iterable, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

__all__ = ["Schema", "did_you_mean", "validate", "format_errors", "Number", "PosInt", "NonNegInt", "Fraction",
           "known_name", "positive_int", "non_negative_int", "non_negative_float", "share", "top_p"]

M = TypeVar("M", bound=BaseModel)

Number = StrictInt | StrictFloat
PosInt = Annotated[StrictInt, Field(ge=1)]
NonNegInt = Annotated[StrictInt, Field(ge=0)]
Fraction = Annotated[Number, Field(ge=0, le=1)]


class Schema(BaseModel):
    """Base of every config section: unknown keys are errors, values are not coerced from strings."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, else ``"; known: a, b, c"``."""
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(word), choices, n=2, cutoff=0.6)
    ratio = lambda c: difflib.SequenceMatcher(None, str(word), c).ratio()
    if len(close) == 2 and ratio(close[0]) - ratio(close[1]) < 0.05:
        return f"; did you mean {close[0]!r} or {close[1]!r}?"
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known: {', '.join(choices)}" if choices else ""


def known_name(value: str, known: Iterable[str], what: str) -> str:
    """``value`` if it is in ``known``, else a ``ValueError`` naming the closest known ``what``."""
    known = list(known)
    if value not in known:
        raise ValueError(f"unknown {what} {value!r}{did_you_mean(value, known)}")
    return value


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the (sub)model that holds ``loc``'s last key."""
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(str(part))
        model = _submodel(field.annotation) if field is not None else None
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        sub = _submodel(arg)
        if sub is not None:
            return sub
    return None


def _message(model: type[BaseModel], err: dict) -> str:
    loc, kind, value = tuple(err["loc"]), err["type"], err.get("input")
    # unions report one error per member (loc ends in the member's type name): keep the first readable one
    if kind == "extra_forbidden":
        key, parent = loc[-1], _loc(loc[:-1])
        return f"{parent + ': ' if parent else ''}unknown key {key!r}" + did_you_mean(key, _fields_at(model, loc))
    where = _loc(loc) or "config"
    if kind == "list_type" and isinstance(value, str):
        return (f"{where}: must be a list, e.g. [{value}], not the string {value!r} "
                f"(a string would be read letter by letter)")
    if kind == "missing":
        return f"{where}: required"
    if kind in ("int_type", "int_parsing", "float_type", "float_parsing", "string_type", "bool_type", "dict_type",
                "list_type", "model_type", "model_attributes_type"):
        wanted = {"int": "an integer", "float": "a number", "string": "a string", "bool": "true or false",
                  "dict": "a mapping", "list": "a list", "model": "a mapping",
                  "model_attributes": "a mapping"}[kind.rsplit("_", 1)[0]]
        return f"{where}: must be {wanted}, got {value!r}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
        return f"{_loc(loc) + ': ' if loc else ''}{msg}"
    bounds = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}
    if kind in bounds:
        limit = next(iter(err.get("ctx", {}).values()), "?")
        return f"{where}: must be {bounds[kind]} {limit}, got {value!r}"
    if kind == "literal_error":
        expected = [e.strip(" '") for e in err.get("ctx", {}).get("expected", "").replace(" or ", ", ").split(",")]
        return f"{where}: {value!r} is not allowed{did_you_mean(value, [e for e in expected if e])}"
    return f"{where}: {msg}" + (f" (got {value!r})" if kind == "too_short" else "")


def format_errors(model: type[BaseModel], exc: ValidationError) -> list[str]:
    """One line per problem, deduplicated, in the order pydantic found them."""
    lines: list[str] = []
    seen_locs: set[tuple] = set()
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in _TYPE_TAGS)))
        if loc in seen_locs and err["type"] != "extra_forbidden":
            continue  # a union member's second complaint about the same value
        seen_locs.add(loc)
        line = _message(model, {**err, "loc": loc})
        if line not in lines:
            lines.append(line)
    return lines


# pydantic tags union members in the location (``int``, ``str``, ``list[int]``, ``function-after[...]``)
_TYPE_TAGS = {"int", "float", "str", "bool", "dict", "list", "none", "function-after", "function-plain",
              "constrained-int", "constrained-float", "constrained-str", "literal"}


def validate(model: type[M], raw: Any, where: str) -> M:
    """``model.model_validate(raw)``, or one ``ValueError`` listing every problem with its fix."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = format_errors(model, exc)
    if len(lines) == 1:
        raise ValueError(f"{where}: {lines[0]}")
    raise ValueError(f"{where}: {len(lines)} problems:\n" + "\n".join(f"  - {line}" for line in lines))


# ------------------------------------------------------------------ argparse types: the same ranges on the command line
def _arg(convert, check, wanted: str):
    def parse(text: str):
        import argparse

        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text} is out of range: expected {wanted}")
        return value

    parse.__name__ = wanted
    return parse


positive_int = _arg(int, lambda v: v >= 1, "an integer >= 1")
non_negative_int = _arg(int, lambda v: v >= 0, "an integer >= 0")
non_negative_float = _arg(float, lambda v: v >= 0, "a number >= 0")
share = _arg(float, lambda v: 0 <= v <= 1, "a share in [0, 1]")
top_p = _arg(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
