"""Typed configs: dataclasses with defaults, strict overrides from YAML files and ``--set key=value``.

An unknown key is an error that lists the valid ones; values are coerced to the field's type (a
``--set`` value is parsed as a YAML scalar first, so ``lr=1e-3`` and ``bf16=true`` work). YAML is read
with ``yaml.safe_load`` only: a config file can never run code.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import DfkdError

C = TypeVar("C")


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except DfkdError as exc:
                errors.append(str(exc))
        raise DfkdError(errors[0] if errors else f"config key '{key}': invalid value {value!r}")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise DfkdError(f"config key '{key}' needs a list, got {value!r}")
        args = [a for a in typing.get_args(hint) if a is not Ellipsis] or [Any]
        return origin(_coerce(v, args[0], key) for v in value)
    if hint is Any:
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise DfkdError(f"config key '{key}' needs a mapping (e.g. {{output: sigmoid}}), got {value!r}")
        return {str(k): v for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise DfkdError(f"config key '{key}' needs true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise DfkdError(f"config key '{key}' needs an integer, got {value!r}")
        try:
            f = float(value)
        except ValueError:
            raise DfkdError(f"config key '{key}' needs an integer, got {value!r}") from None
        if f != int(f):
            raise DfkdError(f"config key '{key}' needs an integer, got {value!r}")
        return int(f)
    if hint is float:
        if isinstance(value, bool):
            raise DfkdError(f"config key '{key}' needs a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise DfkdError(f"config key '{key}' needs a number, got {value!r}") from None
    if hint is str:
        return str(value)
    return value


def update_config(cfg: C, overrides: dict[str, Any], where: str = "config") -> C:
    """A copy of dataclass ``cfg`` with ``overrides`` applied; unknown keys are an error."""
    hints = typing.get_type_hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            raise DfkdError(f"unknown {where} key '{key}'; valid keys: {', '.join(names)}")
        changes[key] = _coerce(value, hints[key], key)
    return dataclasses.replace(cfg, **changes)


def parse_set_options(items: list[str] | None) -> dict[str, Any]:
    """``["lr=0.1", "bf16=true"]`` -> ``{"lr": 0.1, "bf16": True}`` (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise DfkdError(f"--set needs key=value, got '{item}'")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise DfkdError(f"config file '{p}' does not exist") from None
    except (OSError, yaml.YAMLError) as exc:
        raise DfkdError(f"cannot read config file '{p}': {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DfkdError(f"config file '{p}' must hold a mapping of key: value, got {type(data).__name__}")
    return data


def to_plain(cfg: Any) -> dict[str, Any]:
    """A dataclass (or a dict) as plain YAML/JSON/weights_only-safe values (tuples become lists)."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    items = cfg.items() if isinstance(cfg, dict) else dataclasses.asdict(cfg).items()
    return {k: plain(v) for k, v in items}


def write_yaml(data: dict[str, Any], path: str | os.PathLike) -> None:
    from .io_utils import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(data, sort_keys=False))
