"""The TensorRT build and runtime code run end to end against a CPU stand-in of `tensorrt` + `pycuda`
(tests/export/fake_tensorrt.py): buffer handling, batching, sidecars, compatibility checks, engine cache,
INT8 calibration cache, CLI and benchmark wiring. Whether real TensorRT accepts the graph is tested by the GPU-only
tests in test_export_tensorrt.py."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from export.cli import main as export_main
from g2d_edge.backends.engine_build import TrtBuildOptions, build_engine, build_engine_if_missing
from g2d_edge.backends.faces import synthetic_faces
from g2d_edge.backends import BackendOptions, find_cached_engine, load_backend
from g2d_edge.backends import TensorRTBackend, engine_cache_path
from g2d_edge.errors import EngineBuildError, InputError, ModelError, ParityError
from g2d_edge.sidecar import ModelSidecar

import fake_tensorrt  # tests/export/fake_tensorrt.py (see tests/conftest.py)

FAST = dict(max_batch=4, opt_batch=2, workspace_mib=64)


@pytest.fixture()
def fake_trt(monkeypatch):
    fake_tensorrt.install(monkeypatch)
    return fake_tensorrt


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return synthetic_faces(11, np.random.default_rng(2))


def test_build_writes_engine_sidecar_and_timing_cache(fake_trt, tiny_model_copy: Path):
    engine = tiny_model_copy.with_name("tiny.fp16.engine")
    sidecar = build_engine(tiny_model_copy, engine, TrtBuildOptions(precision="fp16", **FAST))
    assert engine.is_file() and engine.with_suffix(".json").is_file()
    info = ModelSidecar.load(engine.with_suffix(".json")).engine
    assert info == sidecar.engine
    assert info["gpu"] == fake_trt.GPU_NAME and info["compute_capability"] == "9.0"
    assert info["tensorrt"] == fake_trt.__version__ and info["precision"] == "fp16"
    assert (info["min_batch"], info["opt_batch"], info["max_batch"]) == (1, 2, 4)
    assert info["onnx"] == "tiny.onnx" and len(info["onnx_sha256"]) == 64
    assert info["parity"]["min_cosine"] > 0.9999 and info["parity"]["threshold"] == 0.999
    assert sidecar.embedding_space == ModelSidecar.load(tiny_model_copy.with_suffix(".json")).embedding_space
    assert len(list(tiny_model_copy.parent.glob("tiny.fake-gpu-9000.trt10.3.0.trtcache"))) == 1
    assert not list(tiny_model_copy.parent.glob("*.tmp*"))


def test_engine_backend_matches_onnxruntime_and_splits_batches(fake_trt, tiny_model_copy: Path, faces: np.ndarray):
    engine = tiny_model_copy.with_name("tiny.fp32.engine")
    build_engine(tiny_model_copy, engine, TrtBuildOptions(precision="fp32", **FAST))
    backend = load_backend(engine)
    assert isinstance(backend, TensorRTBackend) and backend.name == "tensorrt" and backend.max_batch == 4
    backend.warmup()
    emb, logits = backend.infer(faces)  # 11 faces -> 4 + 4 + 3
    ref_emb, ref_logits = load_backend(tiny_model_copy, "onnxruntime").infer(faces)
    np.testing.assert_allclose(emb, ref_emb, atol=1e-5)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-5)
    np.testing.assert_allclose(backend.infer(faces[3:4])[0], ref_emb[3:4], atol=1e-5)
    assert backend.infer(faces[:0])[0].shape == (0, 512) and backend.infer(faces[:0])[1].shape == (0, 5)
    with pytest.raises(InputError):
        backend.infer(faces.astype(np.float32))
    capped = load_backend(engine, options=BackendOptions.of(max_batch=3))
    assert capped.max_batch == 3
    np.testing.assert_allclose(capped.infer(faces)[0], ref_emb, atol=1e-5)
    backend.close()
    backend.close()  # twice is fine
    with pytest.raises(ModelError, match="closed"):
        backend.infer(faces[:1])
    assert not fake_trt._Context.stack  # every push was popped


def test_engine_from_another_machine_is_refused_before_deserialising(fake_trt, tiny_model_copy: Path, monkeypatch):
    engine = tiny_model_copy.with_name("tiny.fp16.engine")
    build_engine(tiny_model_copy, engine, TrtBuildOptions(precision="fp16", verify=False, **FAST))
    side = engine.with_suffix(".json")
    data = json.loads(side.read_text())

    def boom(self, blob):
        raise AssertionError("must not deserialise an engine for another machine")

    monkeypatch.setattr(fake_trt.Runtime, "deserialize_cuda_engine", boom)
    for key, value, fragment in [("tensorrt", "8.6.1.6", "TensorRT 8.6.1.6"),
                                 ("gpu", "Orin", "built on a Orin"),
                                 ("compute_capability", "8.7", "compute capability 8.7")]:
        side.write_text(json.dumps({**data, "engine": {**data["engine"], key: value}}))
        with pytest.raises(ModelError) as info:
            load_backend(engine)
        assert fragment in str(info.value)
        assert "g2d-export trt tiny.onnx --precision fp16 --max-batch 4" in str(info.value)
    side.write_text(json.dumps({**data, "engine": None}))
    with pytest.raises(ModelError, match="no `engine` section"):
        load_backend(engine)


def test_truncated_or_unsidecared_engine(fake_trt, tiny_model_copy: Path):
    engine = tiny_model_copy.with_name("tiny.fp16.engine")
    build_engine(tiny_model_copy, engine, TrtBuildOptions(precision="fp16", verify=False, **FAST))
    cut = tiny_model_copy.with_name("cut.engine")
    cut.write_bytes(engine.read_bytes()[:300])
    shutil.copy(engine.with_suffix(".json"), cut.with_suffix(".json"))
    with pytest.raises(ModelError, match="could not deserialize .*magicTag.*rebuild"):
        load_backend(cut)
    engine.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="sidecar not found"):
        load_backend(engine)
    assert not fake_trt._Context.stack


def test_build_engine_option_and_engine_cache(fake_trt, tiny_model_copy: Path, faces: np.ndarray):
    backend = load_backend(tiny_model_copy, options=BackendOptions.of(build_engine=True, precision="fp16", max_batch=4))
    cached = engine_cache_path(tiny_model_copy, fake_trt.GPU_NAME, fake_trt.__version__, "fp16")
    assert backend.name == "tensorrt" and backend.engine_path == cached and cached.is_file()
    assert find_cached_engine(tiny_model_copy, "fp16") == cached
    assert build_engine_if_missing(tiny_model_copy, "fp16") == cached  # no rebuild
    again = load_backend(tiny_model_copy)  # auto: the cached engine wins over ONNX Runtime
    assert again.name == "tensorrt"
    assert find_cached_engine(tiny_model_copy, "fp32") is None
    # a re-exported ONNX (different bytes) makes the cached engine stale
    model = onnx.load(str(tiny_model_copy))
    model.doc_string += " (re-exported)"
    onnx.save(model, str(tiny_model_copy))
    assert find_cached_engine(tiny_model_copy, "fp16") is None
    assert load_backend(tiny_model_copy).name in ("onnxruntime", "openvino")  # a CPU runtime: no stale engine
    with pytest.raises(ModelError, match="build_engine=True"):
        load_backend(tiny_model_copy, "tensorrt")
    rebuilt = load_backend(tiny_model_copy, "tensorrt", BackendOptions.of(build_engine=True, max_batch=4))
    assert rebuilt.engine_path == cached and find_cached_engine(tiny_model_copy, "fp16") == cached


def test_int8_calibrates_once_then_reuses_the_cache(fake_trt, tiny_model_copy: Path, tmp_path: Path):
    calib = tmp_path / "calib.npz"
    np.savez(calib, images=synthetic_faces(40, np.random.default_rng(0)))
    opts = TrtBuildOptions(precision="int8", calib_data=calib, calib_batch=16, calib_max_faces=40, **FAST)
    sidecar = build_engine(tiny_model_copy, tmp_path / "a.engine", opts)
    caches = list(tiny_model_copy.parent.glob("tiny.*.int8.calib"))
    assert len(caches) == 1 and b"faces=32" in caches[0].read_bytes()  # two full batches of 16
    assert sidecar.engine["calibration"] == {"source": str(calib), "faces": 40}
    again = build_engine(tiny_model_copy, tmp_path / "b.engine", replace(opts, calib_data=None))
    assert again.engine["calibration"]["faces"] == 0 and "cache" in again.engine["calibration"]["source"]
    caches[0].unlink()
    with pytest.raises(EngineBuildError, match="--calib"):
        build_engine(tiny_model_copy, tmp_path / "c.engine", replace(opts, calib_data=None))
    few = tmp_path / "few.npz"
    np.savez(few, images=synthetic_faces(3, np.random.default_rng(0)))
    with pytest.raises(EngineBuildError, match="fewer than one batch"):
        build_engine(tiny_model_copy, tmp_path / "d.engine", replace(opts, calib_data=few))


def test_build_failures_are_reported(fake_trt, tiny_model_copy: Path, tmp_path: Path, monkeypatch):
    import g2d_edge.backends.engine_build as engine_build

    monkeypatch.setattr(engine_build, "verify_engine", lambda *a, **k: {"min_cosine": 0.5, "mean_cosine": 0.7,
                                                                       "max_abs_logits_diff": 1.0, "num_faces": 8})
    engine = tmp_path / "bad.engine"
    with pytest.raises(ParityError, match="0.50000"):
        build_engine(tiny_model_copy, engine, TrtBuildOptions(precision="fp16", **FAST))
    assert not engine.exists() and not engine.with_suffix(".json").exists()
    monkeypatch.undo()
    fake_tensorrt.install(monkeypatch)

    def fail(self, network, config):
        self.logger.log(fake_trt._Severity.ERROR, "could not find any implementation for node X")
        return None

    monkeypatch.setattr(fake_trt.Builder, "build_serialized_network", fail)
    with pytest.raises(EngineBuildError, match="could not find any implementation"):
        build_engine(tiny_model_copy, engine, TrtBuildOptions(precision="fp32", **FAST))
    monkeypatch.delattr(fake_trt.BuilderFlag, "FP16")  # TensorRT 11: no weak typing
    with pytest.raises(EngineBuildError, match="fp32"):
        build_engine(tiny_model_copy, engine, TrtBuildOptions(precision="fp16", **FAST))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"garbage")
    shutil.copy(tiny_model_copy.with_suffix(".json"), broken.with_suffix(".json"))
    with pytest.raises(EngineBuildError, match="cannot parse"):
        build_engine(broken, engine, TrtBuildOptions(precision="fp32", **FAST))
    assert not fake_trt._Context.stack


def test_cli_trt_builds_each_precision(fake_trt, tiny_model_copy: Path, capsys):
    code = export_main(["trt", str(tiny_model_copy), "--precision", "fp32", "fp16", "--max-batch", "4",
                        "--opt-batch", "2", "--workspace-mib", "64"])
    assert code == 0
    built = json.loads(capsys.readouterr().out)
    assert [b["precision"] for b in built] == ["fp32", "fp16"]
    for b in built:
        assert Path(b["engine"]).is_file() and b["parity"]["min_cosine"] > 0.999
        assert Path(b["engine"]) == engine_cache_path(tiny_model_copy, fake_trt.GPU_NAME, fake_trt.__version__,
                                                      b["precision"])


def test_latency_benchmark_lists_tensorrt_rows(fake_trt, tiny_model_copy: Path, load_script):
    latency = load_script("benchmarks/latency.py", "g2d_latency_bench_fake")
    settings = latency.LatencySettings(batches=(1, 4), iters=3, warmup=1, min_seconds=0.01,
                                       precisions=("fp32", "fp16", "int8"))
    result = latency.run_benchmark(tiny_model_copy, None, (), settings)
    rows = {r["label"]: r for r in result["rows"]}
    assert rows["TensorRT fp16"]["device"] == fake_trt.GPU_NAME and rows["TensorRT fp32"]["precision"] == "fp32"
    assert result["machine"]["gpu"]
    assert any(s["label"] == "TensorRT int8" and "--calib" in s["reason"] for s in result["skipped"])
    assert "| TensorRT fp16 | Fake GPU 9000 | fp16 |" in latency.format_markdown(result)


def test_building_an_engine_needs_neither_tqdm_nor_torch(fake_trt, tiny_model_copy: Path, tmp_path: Path,
                                                         celeba_people: dict, monkeypatch):
    """The runtime builds engines on a `[tensorrt]`-only box: no tqdm (a `[train]` extra), torch, train or export.
    Before the builder moved into the runtime, `build_engine=True` failed there on tqdm's ImportError."""
    import sys

    from g2d_edge.backends.faces import align_folder

    for name in ("tqdm", "torch", "train", "export"):
        monkeypatch.setitem(sys.modules, name, None)  # `import tqdm` etc. now raise ImportError
    calib = tmp_path / "calib.npz"
    np.savez(calib, images=synthetic_faces(32, np.random.default_rng(0)))
    backend = load_backend(tiny_model_copy, options=BackendOptions.of(build_engine=True, precision="int8",
                                                                      calib_data=calib, max_batch=4))
    assert backend.name == "tensorrt" and backend.sidecar.engine["calibration"]["faces"] == 32
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, paths in enumerate(celeba_people.values()):
        (photos / f"{i}.jpg").write_bytes(paths[0].read_bytes())
    assert len(align_folder(photos, max_faces=2)) == 2
