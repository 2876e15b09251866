"""Shared pytest fixtures. Real photos come from ../shared/ beside the repo (as on every dev machine and in CI)."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
CELEBA_DIR = SHARED_DIR / "data" / "celeba-train"
POOL_DIR = SHARED_DIR / "data" / "faces-pool"


@pytest.fixture(scope="session")
def celeba_dir() -> Path:
    """The labelled real photos (<identity>/<file>.jpg) of ../shared/data/celeba-train."""
    if not CELEBA_DIR.is_dir():
        pytest.skip(f"real photos not found at {CELEBA_DIR} (../shared/ beside the repo)")
    return CELEBA_DIR


@pytest.fixture(scope="session")
def celeba_people(celeba_dir: Path) -> dict:
    """A few real people: {identity: [photo paths]} (sorted, first 4 identities with >= 3 photos)."""
    people = {}
    for ident in sorted(p for p in celeba_dir.iterdir() if p.is_dir()):
        photos = sorted(ident.glob("*.jpg"))
        if len(photos) >= 3:
            people[ident.name] = photos
        if len(people) == 4:
            break
    return people


# ---------------------------------------------------------------------------------------------- exported tiny model
TINY_CLASS_NAMES = ["alice", "bob", "carol", "dave", "erin"]


@pytest.fixture(scope="session")
def tiny_onnx_model(tmp_path_factory) -> Path:
    """Path of a tiny exported model `tiny.onnx` with its sidecar `tiny.json` (random weights, seed 0, edge "tiny"
    preset, 512-d embeddings, 5 classes named TINY_CLASS_NAMES, threshold 0.42), exported with `export.onnx.export_onnx`
    from the g2d-train checkpoint `tiny.pt` that sits next to it. Read-only: copy it before modifying."""
    import torch

    from export.onnx import ParityOptions, export_onnx
    from train.checkpoint import save_checkpoint
    from train.model import ModelConfig, build_model

    folder = tmp_path_factory.mktemp("tiny-model")
    cfg = ModelConfig.preset("tiny", num_classes=len(TINY_CLASS_NAMES))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(cfg).eval()
    checkpoint = save_checkpoint(folder / "tiny.pt", stage="classifier", model_config=cfg,
                                 state={"model": model.state_dict()}, epoch=1, step=1, finished=True,
                                 meta={"class_names": TINY_CLASS_NAMES, "threshold": 0.42,
                                       "trained_on": "random weights (tests)",
                                       "data_summary": {"identities": len(TINY_CLASS_NAMES)}})
    onnx_path = folder / "tiny.onnx"
    export_onnx(checkpoint, onnx_path, parity=ParityOptions(num_real=4))
    return onnx_path
