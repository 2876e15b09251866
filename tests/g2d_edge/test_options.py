"""One way to validate options (issue 21): every options dataclass of g2d_edge, found by walking the package (a new
one is covered without touching this file), is frozen and checks itself when it is made: a value of the wrong type,
NaN or infinity, or outside the field's bounds raises InputError naming `Class.field`."""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, List, Tuple

import numpy as np
import pytest

from g2d_edge.errors import InputError, check_value, field_types, option_rule
from runtime_helpers import bad_option_values, options_classes, without_none

#: Options classes that must be found (so that a broken walk cannot pass by finding nothing).
KNOWN = {"RecognizerOptions", "DetectorOptions", "TrackingOptions", "CaptureOptions", "VideoOptions", "DrawOptions",
         "MaskOptions", "OrtOptions", "OpenVinoOptions", "TrtRuntimeOptions", "TritonOptions", "BackendOptions",
         "MilvusGalleryOptions", "TrtBuildOptions"}


CLASSES = options_classes()


def test_the_walk_finds_every_known_options_class():
    assert KNOWN <= {cls.__name__ for cls in CLASSES}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_options_are_frozen_and_made_with_their_defaults(cls):
    assert cls.__dataclass_params__.frozen, f"{cls.__name__} must be @dataclass(frozen=True)"
    options = cls()
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(options, name, getattr(options, name))
    assert "__post_init__" in vars(cls), f"{cls.__name__} must check itself in __post_init__"
    assert not hasattr(cls, "validate"), f"{cls.__name__}: no .validate() for callers to remember"


def cases() -> List[Tuple[type, str, Any]]:
    out = []
    for cls in CLASSES:
        hints = field_types(cls)
        for f in dataclasses.fields(cls):
            for value in bad_option_values(hints[f.name], option_rule(f)):
                out.append((cls, f.name, value))
    return out


CASES = cases()


def test_every_field_of_every_options_class_gets_bad_values():
    fields = {(cls.__name__, f.name) for cls in CLASSES for f in dataclasses.fields(cls)}
    assert fields == {(cls.__name__, name) for cls, name, _ in CASES}
    assert len(CASES) > 4 * len(fields)


@pytest.mark.parametrize("cls,name,value", CASES,
                         ids=[f"{c.__name__}.{n}={v!r}"[:80] for c, n, v in CASES])
def test_a_bad_value_is_an_input_error_naming_the_field(cls, name, value):
    with pytest.raises(InputError) as caught:
        cls(**{name: value})
    assert f"{cls.__name__}.{name}" in str(caught.value)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_numpy_numbers_are_taken_and_stored_as_python_numbers(cls):
    hints = field_types(cls)
    defaults = cls()
    given = {}
    for f in dataclasses.fields(cls):
        value = getattr(defaults, f.name)
        if without_none(hints[f.name]) is int and isinstance(value, int) and not isinstance(value, bool):
            given[f.name] = np.int64(value)
        elif without_none(hints[f.name]) is float and isinstance(value, float):
            given[f.name] = np.float32(value)
    options = cls(**given)
    for name in given:
        assert type(getattr(options, name)) in (int, float), (cls.__name__, name)
        assert math.isclose(getattr(options, name), getattr(defaults, name), rel_tol=1e-6)


def test_check_value_is_the_rule_for_free_arguments_too():
    assert check_value("max_pixels", np.int32(5), int, low=1) == 5
    with pytest.raises(InputError, match="max_pixels must be a whole number >= 1, got 0"):
        check_value("max_pixels", 0, int, low=1)
    with pytest.raises(InputError, match="x must be one of 'a', 'b' or None"):
        check_value("x", "c", typing.Optional[str], choices=("a", "b"))
