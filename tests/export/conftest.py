"""Fixtures of the export tests: tiny in-memory networks (random weights, CPU, fast)."""
from __future__ import annotations

import pytest


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
