"""Shared pytest fixtures. Real photos come from ../shared/ beside the repo (as on every dev machine and in CI)."""
from __future__ import annotations

import importlib.abc
import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

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


@pytest.fixture()
def tiny_model_copy(tiny_onnx_model: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny model: `tmp_path`/tiny.onnx with its sidecar tiny.json."""
    dst = tmp_path / "tiny.onnx"
    shutil.copy(tiny_onnx_model, dst)
    shutil.copy(tiny_onnx_model.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


# ---------------------------------------------------------------------------------------------- modules loaded by path
# pytest runs with --import-mode=importlib, which keeps the test folders and the benchmark scripts off sys.path.
REPO_DIR = Path(__file__).resolve().parents[1]
TESTS_DIR = REPO_DIR / "tests"
TEST_HELPERS = {  # importable by these names from any test (each loaded on its first import)
    "sdk_helpers": TESTS_DIR / "sdk" / "sdk_helpers.py",
    "tiny_faces": TESTS_DIR / "train" / "tiny_faces.py",
    "fake_tensorrt": TESTS_DIR / "export" / "fake_tensorrt.py",
    "serve_helpers": TESTS_DIR / "g2d_edge" / "serve" / "serve_helpers.py",
}


class _TestHelperFinder(importlib.abc.MetaPathFinder):
    """Finds the TEST_HELPERS modules by name."""

    def find_spec(self, name, path=None, target=None):
        if name in TEST_HELPERS:
            return importlib.util.spec_from_file_location(name, TEST_HELPERS[name])
        return None


sys.meta_path.insert(0, _TestHelperFinder())


@pytest.fixture(scope="session")
def load_script():
    """Factory: load_script(path, name) runs the repo file `path` (relative to the repo, e.g. "benchmarks/latency.py")
    as a fresh module registered in sys.modules as `name`, and returns it."""
    def load(path: str, name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, REPO_DIR / path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    return load
