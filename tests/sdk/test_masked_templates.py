"""Synthetic masked templates at enrolment (opt-in): deterministic, aligned masked views of the enrolment face."""
from __future__ import annotations

import numpy as np
import pytest

from g2d_edge import Recognizer, RecognizerOptions
from g2d_edge.errors import InputError
from g2d_edge.io import read_image


def test_masked_templates_are_added_per_photo_and_are_deterministic(celeba_people):
    name, photos = next(iter(celeba_people.items()))
    with Recognizer(options=RecognizerOptions(masked_templates=2)) as rec:
        result = rec.enroll(name, photos[:2])
        first = rec.gallery.templates(name).copy()
    assert result.added == 6 and result.templates == 6  # each photo: the face and 2 masked views of it
    with Recognizer(options=RecognizerOptions(masked_templates=2)) as rec:
        rec.enroll(name, photos[:2])
        np.testing.assert_allclose(rec.gallery.templates(name), first, atol=1e-6)
    # a masked view is the same person wearing a mask: close to the clean template, not identical to it
    clean, masked = first[0], first[1:3]
    assert np.all(masked @ clean > 0.4) and np.all(masked @ clean < 0.999)


def test_masked_templates_are_off_by_default_and_checked(celeba_people):
    name, photos = next(iter(celeba_people.items()))
    with Recognizer() as rec:
        assert rec.enroll(name, read_image(photos[0])).added == 1
    with pytest.raises(InputError, match="masked_templates"):
        Recognizer(options=RecognizerOptions(masked_templates=-1))
