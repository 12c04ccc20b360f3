"""The one config loader: YAML (``yaml.safe_load``) plus ``key=value`` overrides into typed, validated dataclasses.

Unknown keys and bad values raise `ConfigError` naming the dotted key and the valid choices (or the key meant);
every problem of a file and its overrides is collected and raised at once, so one run shows them all.
This module and the config dataclasses import no torch: a command checks its config before torch loads.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file, key or value that cannot be used. ``problems``: every one found; the message has them all on
    one line (a command prints it as its one ``error:`` line)."""

    def __init__(self, problem: str, *more: str) -> None:
        self.problems = [problem, *more]
        super().__init__(problem if not more else f"{len(self.problems)} config errors: " + "; ".join(self.problems))


def validate(*rules: tuple[bool, str]) -> None:
    """Raise one `ConfigError` naming every rule (``(ok, message)``) that fails: a config dataclass's
    ``__post_init__`` reports all its bad values at once, not only the first."""
    problems = [message for ok, message in rules if not ok]
    if problems:
        raise ConfigError(*problems)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["model.top_n=100", ...]`` -> ``{"model.top_n": 100}``; values are parsed as YAML scalars."""
    out, problems = _parse_overrides(pairs)
    if problems:
        raise ConfigError(*problems)
    return out


def _parse_overrides(pairs: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The well-formed overrides parsed, and a problem line for each that is not ``key=value``."""
    out: dict[str, Any] = {}
    problems = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            problems.append(f"override '{pair}' is not key=value")
            continue
        try:
            out[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out, problems


def _set_dotted(data: dict, key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"'{key}': '{part}' is not a section")
        node = child
    node[leaf] = value


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a section (mapping), got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"'{key}' = {value!r} is not valid; valid values: {', '.join(map(str, typing.get_args(tp)))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[-1])
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{key}' must be a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        return _coerce_items(item_tp, [(key, v) for v in value])
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a mapping, got {value!r}")
        _, val_tp = typing.get_args(tp)
        return dict(zip(map(str, value), _coerce_items(val_tp, [(f"{key}.{k}", v) for k, v in value.items()])))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{key}' must be true or false, got {value!r}")
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    if tp is Any:
        return value
    raise ConfigError(f"'{key}' must be {getattr(tp, '__name__', tp)}, got {value!r}")


def _coerce_items(tp: Any, items: list[tuple[str, Any]]) -> list[Any]:
    """Each ``(key, value)`` coerced to ``tp``, or one `ConfigError` with the problems of all that are not."""
    out, problems = [], []
    for key, value in items:
        try:
            out.append(_coerce(tp, value, key))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(*problems)
    return out


def unknown_key(key: str, valid: list[str]) -> str:
    """The problem line for an unknown dotted ``key``: the valid key it most likely meant, else all of them."""
    section, _, leaf = key.rpartition(".")
    leaves = [v.rpartition(".")[2] for v in valid]
    close = difflib.get_close_matches(leaf, leaves, n=1)
    if close:
        return f"unknown key '{key}' (did you mean '{section + '.' if section else ''}{close[0]}'?)"
    return f"unknown key '{key}'; valid keys: {', '.join(valid)}"


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping; missing keys keep their defaults.

    Every unknown key and bad value is collected and raised as one `ConfigError`; a bad key keeps its default
    meanwhile, so the dataclass's own checks (``__post_init__``) still run on the rest and add theirs.
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    problems: list[str] = []
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            problems.append(unknown_key(f"{prefix}{key}", [prefix + n for n in names]))
            continue
        try:
            kwargs[key] = _coerce(hints[key], value, f"{prefix}{key}")
        except ConfigError as exc:
            problems += exc.problems
    try:
        obj = cls(**kwargs)
    except ConfigError as exc:
        problems += exc.problems
    except (TypeError, ValueError) as exc:
        problems.append(f"{prefix.rstrip('.') or cls.__name__}: {exc}")
    if problems:
        raise ConfigError(*problems)
    return obj


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Load ``cls`` from a YAML file (optional) with dotted ``key=value`` overrides applied on top.

    A file that cannot be read or parsed is one error; otherwise every bad override, key and value of the file
    and the overrides together is reported in one `ConfigError`.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config '{path}': {exc.strerror or exc}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config '{path}' is not valid YAML: {exc}".splitlines()[0]) from None
        if not isinstance(data, dict):
            raise ConfigError(f"config '{path}' must be a mapping of sections")
    return _build(cls, data, overrides or [])


def with_overrides(cfg: T, overrides: list[str]) -> T:
    """``cfg`` (a config dataclass, e.g. one a command built from its flags) with dotted ``key=value`` overrides
    applied, checked and reported like a loaded config's."""
    return _build(type(cfg), dataclasses.asdict(cfg), overrides)


def _build(cls: type[T], data: dict[str, Any], overrides: list[str]) -> T:
    """``cls`` from ``data`` with the overrides set in it; one `ConfigError` lists every problem of both."""
    parsed, problems = _parse_overrides(overrides)
    for key, value in parsed.items():
        try:
            _set_dotted(data, key, value)
        except ConfigError as exc:
            problems += exc.problems
    try:
        cfg = from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(*problems, *exc.problems) from None
    if problems:
        raise ConfigError(*problems)
    return cfg


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass config as plain data, for benchmark records and written configs; a set field marked
    ``metadata={"secret": True}`` (a token) reads ``***``, so no record or written config holds it."""
    data = dataclasses.asdict(obj)
    _mask_secrets(obj, data)
    return data


def _mask_secrets(obj: Any, data: dict[str, Any]) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("secret") and value is not None:
            data[f.name] = "***"
        elif dataclasses.is_dataclass(value):
            _mask_secrets(value, data[f.name])
