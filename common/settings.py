"""A stage's settings as one frozen dataclass, and its absl flags generated from the fields.

Every entry point declares what it can be told once, as fields made by ``setting``; the flags
(``--help``, ``--flagfile``), the typed configuration object and the JSON written beside the
stage's output all come from those fields, so none is retyped. A field's type (``str``, ``int``,
``float``, ``bool``, ``tuple[str, ...]`` for a comma-separated list, any of them ``| None``)
chooses the flag's kind; ``choices`` or ``registry`` make it an enum. No TensorFlow import here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from absl import flags

# The flags defined below belong to the module that calls define_flags: its --help lists them.
flags.disclaim_key_flags()

Config = TypeVar("Config")

# The kinds a field's annotation may name, most specific first ("tuple" before "str": a list's
# annotation names both).
KINDS = ("tuple", "bool", "int", "float", "str")


def setting(
    default: Any,
    help: str,
    *,
    choices: Iterable[str] | None = None,
    registry: bool = False,
    lower: float | None = None,
    upper: float | None = None,
    aliases: Iterable[str] = (),
    required: bool = False,
) -> Any:
    """A settings field: its default and help, and what its flag accepts. ``registry``: the
    choices are a registry's names, filled in by the stage that imports the registry."""
    metadata = {
        "help": help,
        "choices": tuple(choices) if choices else None,
        "registry": registry,
        "lower": lower,
        "upper": upper,
        "aliases": tuple(aliases),
        "required": required,
    }
    return dataclasses.field(default=default, metadata=metadata)


def kind(field: dataclasses.Field) -> str:
    """The flag kind a field's annotation names: one of ``KINDS``."""
    annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    return next(k for k in KINDS if k in str(annotation))


def names(config_type: type) -> tuple[str, ...]:
    """Every flag name a stage accepts: the fields and their aliases."""
    fields = dataclasses.fields(config_type)
    return tuple(f.name for f in fields) + tuple(a for f in fields for a in f.metadata["aliases"])


def define_flags(
    config_type: type,
    flag_values: flags.FlagValues,
    registries: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """One absl flag per field of ``config_type`` on ``flag_values``, listed by ``--help`` as the
    calling module's own. A registry's entries give the choices, and their ``description`` the
    help's second half."""
    for field in dataclasses.fields(config_type):
        meta, name, default = field.metadata, field.name, field.default
        help_text, choices = meta["help"], meta["choices"]
        if meta["registry"]:
            registry = (registries or {})[name]
            choices = tuple(sorted(registry))
            help_text += " " + "; ".join(f"{k}: {v.description}" for k, v in registry.items())
        common = {"help": help_text, "flag_values": flag_values}
        bounds = {"lower_bound": meta["lower"], "upper_bound": meta["upper"]}
        field_kind = kind(field)
        if choices:
            flags.DEFINE_enum(name, default, list(choices), **common)
        elif field_kind == "tuple":
            flags.DEFINE_list(name, list(default or ()), **common)
        elif field_kind == "bool":
            flags.DEFINE_bool(name, default, **common)
        elif field_kind == "int":
            flags.DEFINE_integer(name, default, **bounds, **common)
        elif field_kind == "float":
            flags.DEFINE_float(name, default, **bounds, **common)
        else:
            flags.DEFINE_string(name, default, **common)
        for alias in meta["aliases"]:
            flags.DEFINE_alias(alias, name, flag_values=flag_values)
        if meta["required"]:
            flags.mark_flag_as_required(name, flag_values=flag_values)


def values(config_type: type, flag_values: flags.FlagValues) -> dict[str, Any]:
    """The parsed flags of ``config_type``'s fields, typed as the fields are (lists as tuples)."""
    parsed = {}
    for field in dataclasses.fields(config_type):
        value = flag_values[field.name].value
        parsed[field.name] = tuple(value) if kind(field) == "tuple" else value
    return parsed


def given(config_type: type, flag_values: flags.FlagValues) -> set[str]:
    """The fields whose flags were on the command line (or an alias of them was)."""
    return {f.name for f in dataclasses.fields(config_type) if flag_values[f.name].present}


def from_flags(config_type: type[Config], flag_values: flags.FlagValues) -> Config:
    """The configuration the parsed flags describe."""
    return config_type(**values(config_type, flag_values))


def parse_value(field: dataclasses.Field, raw: str) -> Any:
    """A ``--name=value`` line's value (as a flags file holds it) typed as ``field`` is;
    ``ValueError`` when it is not one."""
    field_kind = kind(field)
    if raw in ("", "None") and field_kind in ("int", "float") and field.default is None:
        return None
    if field_kind == "bool":
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"--{field.name}={raw} is not a bool")
        return raw.lower() in ("true", "1")
    if field_kind == "tuple":
        return tuple(item for item in raw.split(",") if item)
    try:
        return {"int": int, "float": float}.get(field_kind, str)(raw)
    except ValueError as e:
        raise ValueError(f"--{field.name}={raw} is not a valid {field_kind}") from e


def to_json(config: object) -> str:
    """The resolved configuration, written beside a stage's output: every field, by name."""
    return json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True) + "\n"
