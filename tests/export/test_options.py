"""The options classes of the training and export tools follow the runtime's one style (issue 21): frozen, checked
in `__post_init__` by `g2d_edge.errors.check_fields`, InputError naming the field. Found by walking `train` and
`export`, as `tests/g2d_edge/test_options.py` walks the runtime."""
from __future__ import annotations

import dataclasses

import pytest

from g2d_edge.errors import InputError, field_types, option_rule
from runtime_helpers import bad_option_values, options_classes

CLASSES = options_classes("train") + options_classes("export")
CASES = [(cls, f.name, value) for cls in CLASSES for f in dataclasses.fields(cls)
         for value in bad_option_values(field_types(cls)[f.name], option_rule(f))]


def test_the_walk_finds_the_tools_options_classes():
    assert {"MaskFlagOptions", "AugmentOptions", "ParityOptions", "TorchOptions", "TritonRepoOptions"} <= \
        {cls.__name__ for cls in CLASSES}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_tools_options_are_frozen_and_check_themselves(cls):
    assert cls.__dataclass_params__.frozen and "__post_init__" in vars(cls)
    cls()


@pytest.mark.parametrize("cls,name,value", CASES, ids=[f"{c.__name__}.{n}={v!r}"[:80] for c, n, v in CASES])
def test_a_bad_tools_option_is_an_input_error_naming_the_field(cls, name, value):
    with pytest.raises(InputError) as caught:
        cls(**{name: value})
    assert f"{cls.__name__}.{name}" in str(caught.value)
