"""Exceptions raised by g2d-edge (runtime, training and export tools). Every one of them says what the user can do
about it; one `except G2DError` covers them all."""
from __future__ import annotations

import collections.abc
import dataclasses
import math
import numbers
import os
import typing
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union


class G2DError(Exception):
    """Base class of every error g2d-edge raises on purpose."""


class ImageReadError(G2DError):
    """An image file is missing, unreadable or not an image, or an array is not a valid BGR frame."""


class NoFaceError(G2DError):
    """No face was found where one was required (enrolment, verification)."""


class ModelError(G2DError):
    """A model file (ONNX, TensorRT engine, sidecar) is missing, corrupt or does not match this build."""


class ServerReplyError(ModelError):
    """A model server (Triton) answered, but not with a valid reply for this model: garbage, invalid JSON, a malformed
    model configuration, or outputs of the wrong shape or with NaN. The server is at fault, not the local model
    file."""


class BackendUnavailableError(ModelError):
    """The requested inference backend cannot run here (a package or a GPU is missing)."""


class InputError(G2DError, ValueError):
    """A batch or argument handed to the SDK has the wrong dtype, shape or value."""


class GalleryError(G2DError):
    """A gallery is empty, corrupt, or was made with another model's embedding space."""


class CaptureError(G2DError):
    """A frame source (camera, file, URL, folder) cannot be opened, does not answer in time, or has ended for good."""


class ClosedError(G2DError):
    """An object (a `Recognizer`) was used after `close()`: create a new one."""


class GalleryUnavailableError(GalleryError, BackendUnavailableError):
    """A gallery database cannot be reached (server down or unreachable, wrong address, local database held by
    another process) or its client package is not installed. Both a GalleryError and a BackendUnavailableError."""


class ExportError(G2DError):
    """An export or engine-build step failed (model cannot be loaded or traced, the graph is invalid, a file cannot be
    written)."""


class ParityError(ExportError):
    """An exported graph or a built engine does not reproduce its reference closely enough; nothing was written.

    `report` is the `ParityReport` (or engine check) that failed.
    """

    def __init__(self, message: str, report: Optional[Any] = None) -> None:
        super().__init__(message)
        self.report = report


class EngineBuildError(ExportError):
    """TensorRT could not parse the ONNX graph or build an engine (its error messages are quoted)."""


# ------------------------------------------------------------------------------------------------ option checks
# The one way an options dataclass validates itself: it is `@dataclass(frozen=True)`, declares bounds and choices
# with `option(...)`, and calls `check_fields(self)` (plus its own cross-field rules) in `__post_init__`. The type
# of each field comes from its annotation. Consumers never re-check. Free arguments (`read_image(max_pixels=...)`)
# use `check_value`, the same rule.

_CHECK = "g2d_check"
_HINTS: Dict[type, Dict[str, Any]] = {}


def option(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, low: Optional[float] = None,
           high: Optional[float] = None, above: Optional[float] = None, below: Optional[float] = None,
           choices: Optional[Sequence[Any]] = None, non_empty: bool = False, unit: Optional[str] = None) -> Any:
    """A dataclass field whose value must lie in [low, high] (or (above, below)), be one of `choices`, or (text,
    sequence) not be empty (the items of a tuple: each one of `choices`, each within the bounds); `check_fields`
    enforces it along with the field's annotated type. `unit` ("seconds", "pixels") is only for the message."""
    rule = {"low": low, "high": high, "above": above, "below": below,
            "choices": tuple(choices) if choices is not None else None, "non_empty": non_empty, "unit": unit}
    return dataclasses.field(default=default, default_factory=factory, metadata={_CHECK: rule})


def option_rule(f: dataclasses.Field) -> Dict[str, Any]:
    """The bounds and choices `option(...)` gave a field ({} for a plain field)."""
    return dict(f.metadata.get(_CHECK, {}))


def field_types(cls: type) -> Dict[str, Any]:
    """{field name: its annotated type, resolved} of a dataclass (cached)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def check_fields(options: Any) -> None:
    """Check every field of the options dataclass `options` against its annotation and its `option(...)` rule.

    Raises InputError naming the first bad field (`RecognizerOptions.top_k must be a whole number from 1 to 1000,
    got '3'`). numpy numbers are stored as int / float / bool, a text given for a `Path` field as a `Path`.
    """
    hints = field_types(type(options))
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        checked = check_value(f"{type(options).__name__}.{f.name}", value, hints[f.name], **option_rule(f))
        if checked is not value:
            object.__setattr__(options, f.name, checked)


def check_value(label: str, value: Any, kind: Any, low: Optional[float] = None, high: Optional[float] = None,
                above: Optional[float] = None, below: Optional[float] = None,
                choices: Optional[Sequence[Any]] = None, non_empty: bool = False, unit: Optional[str] = None) -> Any:
    """`value` (numpy scalars as Python ones) if it is of type `kind` (int, float, bool, str, Path, Optional[...],
    Tuple[...], Sequence[...], Mapping, Callable, an Enum or a class) within the bounds; else InputError saying
    what `label` must be."""
    optional = _allows_none(kind)
    if value is None and optional:
        return None
    kind = _without_none(kind)
    converted = _converted(value, kind)
    rule = {"low": low, "high": high, "above": above, "below": below, "choices": choices, "non_empty": non_empty,
            "unit": unit}
    if converted is _WRONG or _out_of_rule(converted, rule):
        raise InputError(f"{label} must be {_describe(kind, rule)}{' or None' if optional else ''}, "
                         f"got {value!r}")
    return converted


_WRONG = object()


def _allows_none(kind: Any) -> bool:
    return kind is type(None) or kind is Any or \
        (typing.get_origin(kind) is Union and type(None) in typing.get_args(kind))


def _without_none(kind: Any) -> Any:
    if typing.get_origin(kind) is Union:
        arms = [a for a in typing.get_args(kind) if a is not type(None)]
        return arms[0] if len(arms) == 1 else Union[tuple(arms)]
    return kind


def _converted(value: Any, kind: Any) -> Any:
    """`value` as `kind` holds it, or _WRONG."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if origin is Union:
        for arm in args:
            out = _converted(value, arm)
            if out is not _WRONG:
                return out
        return _WRONG
    if kind is bool:
        return bool(value) if type(value).__name__ in ("bool", "bool_") else _WRONG
    if kind is int:
        return int(value) if isinstance(value, numbers.Integral) and not _is_bool(value) else _WRONG
    if kind is float:
        if not isinstance(value, numbers.Real) or _is_bool(value) or not math.isfinite(float(value)):
            return _WRONG
        return float(value)
    if kind is str:
        return value if isinstance(value, str) else _WRONG
    if kind is Path or kind is os.PathLike:
        if isinstance(value, (str, os.PathLike)) and "\x00" not in os.fspath(value):
            return Path(value) if kind is Path else value
        return _WRONG
    if origin in (tuple, collections.abc.Sequence):
        if not isinstance(value, (tuple, list)):
            return _WRONG
        kinds = [args[0]] * len(value) if (origin is not tuple or (len(args) == 2 and args[1] is Ellipsis)) else args
        if len(kinds) != len(value):
            return _WRONG
        items = [_converted(v, k) for v, k in zip(value, kinds)]
        return _WRONG if any(i is _WRONG for i in items) else tuple(items)
    if origin in (dict, collections.abc.Mapping):
        return value if isinstance(value, collections.abc.Mapping) else _WRONG
    if origin is collections.abc.Callable:
        return value if callable(value) else _WRONG
    if isinstance(kind, type):
        return value if isinstance(value, kind) else _WRONG
    return value


def _is_bool(value: Any) -> bool:
    return type(value).__name__ in ("bool", "bool_")


def _out_of_rule(value: Any, rule: Dict[str, Any]) -> bool:
    if rule["choices"] is not None and any(v not in rule["choices"] for v in
                                           (value if isinstance(value, tuple) else (value,))):
        return True
    if rule["non_empty"] and len(value) == 0:
        return True
    numbers_ = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else \
        [v for v in value if isinstance(v, (int, float))] if isinstance(value, tuple) else []
    for v in numbers_:
        if (rule["low"] is not None and v < rule["low"]) or (rule["high"] is not None and v > rule["high"]) \
                or (rule["above"] is not None and v <= rule["above"]) \
                or (rule["below"] is not None and v >= rule["below"]):
            return True
    return False


_KIND_WORDS = {bool: "True or False", int: "a whole number", float: "a finite number", str: "a text",
               Path: "a path", os.PathLike: "a path"}


def _describe(kind: Any, rule: Dict[str, Any]) -> str:
    """"a whole number from 1 to 1000", "one of 'yunet', 'short', 'full'", ..."""
    if rule["choices"] is not None:
        choices = ", ".join(repr(c) for c in rule["choices"])
        tuple_of = typing.get_origin(kind) in (tuple, collections.abc.Sequence)
        return (f"a tuple of values from {choices}{', not empty' if rule['non_empty'] else ''}" if tuple_of
                else f"one of {choices}")
    origin = typing.get_origin(kind)
    if origin is Union:
        words = " or ".join(_describe(a, {k: None for k in rule}) for a in typing.get_args(kind))
    elif origin in (tuple, collections.abc.Sequence):
        words = f"a tuple of ({_describe(typing.get_args(kind)[0], {k: None for k in rule})})"
    elif origin in (dict, collections.abc.Mapping):
        words = "a mapping (dict)"
    elif origin is collections.abc.Callable:
        words = "a callable"
    else:
        words = _KIND_WORDS.get(kind, f"a {getattr(kind, '__name__', kind)}")
    if rule.get("unit"):
        words = f"{words} of {rule['unit']}"
    bounds = []
    if rule["low"] is not None and rule["high"] is not None:
        bounds.append(f"from {rule['low']:g} to {rule['high']:g}")
    else:
        bounds += [f">= {rule['low']:g}"] if rule["low"] is not None else []
        bounds += [f"<= {rule['high']:g}"] if rule["high"] is not None else []
    bounds += [f"> {rule['above']:g}"] if rule["above"] is not None else []
    bounds += [f"< {rule['below']:g}"] if rule["below"] is not None else []
    bounds += ["not empty"] if rule["non_empty"] else []
    return words + (" " + ", ".join(bounds) if bounds else "")
