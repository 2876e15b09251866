"""Config dataclasses to and from plain mappings (`to_dict`, `from_dict`): recursive, with the keys and value types
checked, and a `ConfigError` naming the offending key (dotted path) and the nearest known one."""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Union

from g2d_edge.errors import G2DError

from .model import ModelConfig


class ConfigError(G2DError, ValueError):
    """A training config file or override is malformed (unknown key, wrong type, invalid value)."""


def to_dict(cfg: Any) -> Dict[str, Any]:
    """A plain (JSON/YAML-able) dict of a config dataclass."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: Mapping[str, Any], where: str = "") -> Any:
    """Build dataclass `cls` from a mapping, recursively, checking keys and value types.

    Raises ConfigError naming the offending key (dotted path) for unknown keys, wrong types and invalid values.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'} must be a mapping of keys to values, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {_join(where, close[0])!r}?" if close else ""
            raise ConfigError(f"unknown config key {_join(where, key)!r}{hint} (known keys here: {', '.join(known)})")
    kwargs = {key: _convert(hints[key], value, _join(where, key)) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {where or 'config'}: {exc}") from exc


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if tp is ModelConfig and isinstance(value, Mapping) and "preset" in value:
        return _model_preset(value, where)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin is Union or (hasattr(types, "UnionType") and isinstance(tp, types.UnionType)):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}")
    if origin in (list, List, Sequence) or tp is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__} {value!r}")
        item = args[0] if args else Any
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__} {value!r}")
        vtype = args[1] if len(args) == 2 else Any
        return {str(k): _convert(vtype, v, f"{where}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {list(args)}, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, Path):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise ConfigError(f"{where} must be {tp.__name__}, got {value!r}")
        return value
    return value


def _model_preset(value: Mapping[str, Any], where: str) -> ModelConfig:
    """`model: {preset: tiny, embedding_dim: 64}`: a named `ModelConfig.preset` with field overrides."""
    rest = {k: v for k, v in value.items() if k != "preset"}
    base = from_dict(ModelConfig, rest, where)  # checks keys and types of the overrides
    try:  # the overrides go through the preset, which derives what depends on them (the sface width's channels)
        preset = ModelConfig.preset(str(value["preset"]), **{k: getattr(base, k) for k in rest})
    except ValueError as exc:
        raise ConfigError(f"{where}.preset: {exc}") from exc
    return from_dict(ModelConfig, preset.to_dict(), where)


def _type_name(tp: Any) -> str:
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin is Union or (hasattr(types, "UnionType") and isinstance(tp, types.UnionType)):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin in (list, List) and args:
        return f"a list of {_type_name(args[0])}"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
