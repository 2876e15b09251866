"""Fixtures of the SDK tests: the tiny exported model (tests/conftest.py), a recognizer on it, real photos. Helpers:
`import sdk_helpers` (tests/sdk/sdk_helpers.py, made importable by tests/conftest.py)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import pytest


@pytest.fixture(scope="session")
def other_space_model(tiny_onnx_model: Path, tmp_path_factory) -> Path:
    """The tiny graph re-stamped (ONNX metadata and sidecar) with another embedding space, as a differently trained
    model would be."""
    onnx = pytest.importorskip("onnx")
    folder = tmp_path_factory.mktemp("other-model")
    onnx_path = folder / "other.onnx"
    space = "g2d-edge-512d-some-other-model"
    model = onnx.load(str(tiny_onnx_model))
    for prop in model.metadata_props:
        if prop.key == "embedding_space":
            prop.value = space
    onnx.save(model, str(onnx_path))
    meta = json.loads(tiny_onnx_model.with_suffix(".json").read_text())
    meta["embedding_space"] = space
    meta["name"] = "other"
    onnx_path.with_suffix(".json").write_text(json.dumps(meta))
    return onnx_path


@pytest.fixture(scope="session")
def people(celeba_people: Dict[str, List[Path]]) -> Dict[str, List[Path]]:
    """Three real people with at least 3 photos each: {name: [photo paths]}."""
    names = sorted(celeba_people)[:3]
    return {n: celeba_people[n] for n in names}


@pytest.fixture(scope="module")
def recognizer(tiny_onnx_model: Path):
    """A Recognizer on the tiny model with an empty in-memory gallery (tests clear or replace it)."""
    from g2d_edge import Recognizer

    with Recognizer(model=tiny_onnx_model) as rec:
        yield rec
