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


def face_search(seen, embeddings, masked):
    """Record the mask flags of a search for the frame's faces; the open-set rule's own searches of its stranger
    cohort (hundreds of photos, `g2d_edge.openset.cohort`) are left aside."""
    if len(np.atleast_2d(embeddings)) < 100:
        seen.append(masked)


def test_masked_templates_are_tagged_and_identify_passes_the_mask_flags(celeba_people):
    name, photos = next(iter(celeba_people.items()))
    with Recognizer(options=RecognizerOptions(masked_templates=2)) as rec:
        result = rec.enroll(name, photos[:2])
        assert (result.added, result.masked) == (6, 4)
        assert rec.gallery.template_tags(name).tolist() == [False, True, True, False, True, True]
        seen = []
        search = rec.gallery.search
        rec.gallery.search = lambda emb, top_k=1, masked=None, fusion="max": face_search(seen, emb, masked) or \
            search(emb, top_k, masked, fusion)
        faces = rec.identify(read_image(photos[2]))
        assert seen == [[f.masked for f in faces]] and faces[0].masked is False and faces[0].name == name
    with Recognizer(options=RecognizerOptions(mask_flag=False)) as rec:
        rec.enroll(name, photos[0])
        seen.clear()
        search = rec.gallery.search
        rec.gallery.search = lambda emb, top_k=1, masked=None, fusion="max": face_search(seen, emb, masked) or \
            search(emb, top_k, masked, fusion)
        rec.identify(read_image(photos[2]))
        assert seen == [None]  # no mask flag: every template is compared


def test_a_real_masked_photo_is_tagged_masked_and_needs_a_clean_one_first(celeba_people):
    name, photos = next(iter(celeba_people.items()))
    with Recognizer(options=RecognizerOptions(masked_templates=2)) as rec:
        with pytest.raises(InputError, match="masked templates only"):
            rec.enroll(name, photos[0], masked=True)
        assert name not in rec.gallery
        rec.enroll(name, photos[0])
        result = rec.enroll(name, photos[1], masked=True)  # no synthetic masks drawn over a masked face
        assert (result.added, result.masked, result.templates) == (1, 1, 4)
        assert rec.gallery.template_tags(name).tolist() == [False, True, True, True]
        with pytest.raises(InputError, match="masked must be True"):
            rec.enroll(name, photos[1], masked="yes")
