"""Shared pytest fixtures and hooks. Real photos come from the shared folder: $G2D_SHARED_DATA, else ../shared/ beside
the repo (as on every dev machine and in CI; `tests/shared_data.py`). Tests that skip for want of it are counted: one
line at the end of the run says so, and under CI (CI=true) the run fails."""
from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

_spec = importlib.util.spec_from_file_location("shared_data", Path(__file__).resolve().parent / "shared_data.py")
shared_data = importlib.util.module_from_spec(_spec)
sys.modules["shared_data"] = shared_data  # importable by the tests as `import shared_data`
_spec.loader.exec_module(shared_data)
SHARED_DIR = shared_data.SHARED_DIR
CELEBA_DIR = SHARED_DIR / "data" / "celeba-train"
POOL_DIR = SHARED_DIR / "data" / "faces-pool"


@pytest.fixture(scope="session")
def celeba_dir() -> Path:
    """The labelled real photos (<identity>/<file>.jpg) of ../shared/data/celeba-train."""
    if not CELEBA_DIR.is_dir():
        pytest.skip(shared_data.missing("real photos", CELEBA_DIR))
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


@pytest.fixture(scope="session")
def people(celeba_people: dict) -> dict:
    """Three real people with at least 3 photos each: {name: [photo paths]}."""
    names = sorted(celeba_people)[:3]
    return {n: celeba_people[n] for n in names}



# ---------------------------------------------------------------------------------------------- the tiny test model
TINY_MODEL = Path(__file__).resolve().parent / "fixtures" / "tiny.onnx"
TINY_CLASS_NAMES = ["alice", "bob", "carol", "dave", "erin"]


@pytest.fixture(scope="session")
def tiny_onnx_model(tmp_path_factory) -> Path:
    """Path of a tiny exported model `tiny.onnx` with its sidecar `tiny.json` (random weights, seed 0, edge "tiny"
    preset, 512-d embeddings, 5 classes named TINY_CLASS_NAMES, threshold 0.42): a session copy of the committed
    tests/fixtures/tiny.onnx (made by tests/fixtures/make_tiny_model.py), so no torch is needed. Read-only: copy it
    before modifying (`tiny_model_copy`)."""
    folder = tmp_path_factory.mktemp("tiny-model")
    for source in (TINY_MODEL, TINY_MODEL.with_suffix(".json")):
        shutil.copy(source, folder / source.name)
    return folder / TINY_MODEL.name


@pytest.fixture()
def m_sidecar_holding_out(tmp_path: Path):
    """A factory: `make(people)` saves g2d-edge-m's sidecar with only `people` held out (`val_identities`) as
    `tmp_path`/fewer.json and returns the model path beside it, fewer.onnx (the weights are not copied: for checks
    that read the sidecar first)."""
    import dataclasses

    from g2d_edge.shipped import shipped_model_path
    from g2d_edge.sidecar import ModelSidecar

    def make(people) -> Path:
        sidecar = ModelSidecar.load(shipped_model_path("g2d-edge-m").with_suffix(".json"))
        dataclasses.replace(sidecar, data_summary={**sidecar.data_summary, "val_identities": list(people)}).save(
            tmp_path / "fewer.json")
        return tmp_path / "fewer.onnx"
    return make


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
    "runtime_helpers": TESTS_DIR / "g2d_edge" / "runtime_helpers.py",
    "make_tiny_model": TESTS_DIR / "fixtures" / "make_tiny_model.py",
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


# ---------------------------------------------------------------------------------------------- end of the run
_data_skips = []


def pytest_runtest_logreport(report):
    """Count the tests skipped because the shared data is missing (their reason names G2D_SHARED_DATA)."""
    if report.skipped and shared_data.DATA_ENV in str(report.longrepr):
        _data_skips.append(report.nodeid)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line when tests skipped for want of the shared data (and why the run fails under CI)."""
    if _data_skips:
        ci = "; CI=true, so the run fails" if _in_ci() else ""
        terminalreporter.write_line(
            f"{len(_data_skips)} test(s) skipped: the shared data was not found at {SHARED_DIR} (set "
            f"{shared_data.DATA_ENV}=/path/to/shared){ci}", yellow=not ci, red=bool(ci))


def pytest_sessionfinish(session, exitstatus):
    """Under CI a skip for want of data is a failure; and Milvus Lite's in-process servers are stopped here, while
    the streams its logger may have been pointed at (by a test's logging.basicConfig) are still open, instead of at
    interpreter exit, where its "server stopped" line became a `--- Logging error ---` traceback after the summary."""
    if _data_skips and _in_ci() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    manager = sys.modules.get("milvus_lite.server_manager")
    if manager is not None:
        quiet = logging.getLogger(manager.__name__)
        was, quiet.disabled = quiet.disabled, True
        try:
            manager.server_manager_instance.release_all()
        finally:
            quiet.disabled = was
