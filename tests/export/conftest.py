"""Fixtures of the export tests: tiny in-memory networks and a tiny model exported here (random weights, CPU, fast)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def exported_tiny_model(tmp_path_factory) -> Path:
    """The tiny test model exported here through train and export (`make_tiny_model`, tests/fixtures/): tiny.onnx with
    its sidecar tiny.json and the g2d-train checkpoint tiny.pt next to it. Read-only."""
    from make_tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("exported-tiny-model"))


@pytest.fixture()
def make_tiny_model():
    """Factory: a tiny G2DModel in eval mode (seeded) with `num_classes` classes."""
    import torch

    from train.model import ModelConfig, build_model

    def make(num_classes: int = 5, seed: int = 0):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return build_model(ModelConfig.preset("tiny", num_classes=num_classes)).eval()

    return make
