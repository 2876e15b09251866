"""Fixtures of the runtime's tests: a model of another embedding space and a recognizer on the tiny model (the tiny
model and the real photos are tests/conftest.py's). Helpers: `import runtime_helpers` (tests/g2d_edge/runtime_helpers.py,
made importable by tests/conftest.py). Nothing here needs torch, train or export."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def other_space_model(tiny_onnx_model: Path, tmp_path_factory) -> Path:
    """The tiny graph re-stamped (ONNX metadata and sidecar) with another embedding space, as a differently trained
    model would be. The ONNX file is re-stamped in its bytes, without the onnx package: the new space name has the
    length of the old one, so the protobuf's length-prefixed metadata string stays valid."""
    folder = tmp_path_factory.mktemp("other-model")
    onnx_path = folder / "other.onnx"
    meta = json.loads(tiny_onnx_model.with_suffix(".json").read_text())
    old = meta["embedding_space"]
    space = old[:old.rindex("-") + 1] + "0" * (len(old) - old.rindex("-") - 1)
    data = tiny_onnx_model.read_bytes()
    assert space != old and data.count(old.encode()) == 1, "the embedding space appears once in the ONNX metadata"
    onnx_path.write_bytes(data.replace(old.encode(), space.encode()))
    meta["embedding_space"] = space
    meta["name"] = "other"
    onnx_path.with_suffix(".json").write_text(json.dumps(meta))
    return onnx_path


@pytest.fixture(scope="module")
def recognizer(tiny_onnx_model: Path):
    """A Recognizer on the tiny model with an empty in-memory gallery (tests clear or replace it)."""
    from g2d_edge import Recognizer

    with Recognizer(model=tiny_onnx_model) as rec:
        yield rec
