"""TensorRT export / runtime logic that runs without a GPU, plus GPU-only end-to-end tests (skipped here)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from export.cli import main as export_main
from g2d_edge.backends.engine_build import TrtBuildOptions, build_engine
from g2d_edge.backends import BackendOptions, load_backend
from g2d_edge.backends import engine_cache_path
from g2d_edge.backends.engine_cache import engine_cache_candidates
from g2d_edge.backends.tensorrt import check_engine_compat, rebuild_hint
from g2d_edge.backends.tensorrt_env import GpuInfo, tensorrt_available
from g2d_edge.errors import BackendUnavailableError, InputError, ModelError

TRT_REASON = tensorrt_available()
needs_gpu = pytest.mark.skipif(TRT_REASON is not None, reason=f"needs TensorRT + pycuda + an NVIDIA GPU: {TRT_REASON}")
no_trt_here = pytest.mark.skipif(TRT_REASON is None, reason="TensorRT is available on this machine")

ORIN = GpuInfo("Orin", "8.7")
ENGINE = {"tensorrt": "10.3.0.26", "gpu": "Orin", "compute_capability": "8.7", "precision": "fp16", "max_batch": 16,
          "onnx": "g2d-edge-s.onnx"}


def test_engine_cache_path_is_next_to_the_model_and_distinct():
    p = engine_cache_path("/m/g2d-edge-s.onnx", "NVIDIA H100 80GB HBM3", "10.3.0.26", "fp16")
    assert p == Path("/m/g2d-edge-s.fp16.nvidia-h100-80gb-hbm3.trt10.3.0.engine")
    assert p.with_suffix(".json").name == "g2d-edge-s.fp16.nvidia-h100-80gb-hbm3.trt10.3.0.json"
    others = {engine_cache_path("/m/g2d-edge-s.onnx", g, v, pr) for g, v, pr in
              [("Orin", "10.3.0", "fp16"), ("NVIDIA H100 80GB HBM3", "8.6.1", "fp16"),
               ("NVIDIA H100 80GB HBM3", "10.3.0", "int8")]}
    assert p not in others and len(others) == 3
    with pytest.raises(ValueError):
        engine_cache_path("/m/x.onnx", "Orin", "10.3", "bf16")
    primary, fallback = engine_cache_candidates("/m/x.onnx", "Orin", "10.3.0", "fp32")
    assert primary.parent == Path("/m") and fallback.name == primary.name and fallback.parent.name == "engines"


def test_engine_compat_accepts_matching_machine():
    check_engine_compat(ENGINE, ORIN, "10.3.0.30")  # build number may differ, release must not


@pytest.mark.parametrize("gpu, trt_version, fragment", [
    (ORIN, "10.4.0", "TensorRT 10.3.0.26"),
    (ORIN, "8.6.1", "this machine has TensorRT 8.6.1"),
    (GpuInfo("NVIDIA H100 80GB HBM3", "9.0"), "10.3.0", "compute capability 8.7"),
    (GpuInfo("Orin (nvgpu)", "8.7"), "10.3.0", "strict_gpu=False"),
])
def test_engine_compat_mismatch_says_how_to_rebuild(gpu, trt_version, fragment):
    with pytest.raises(ModelError) as info:
        check_engine_compat(ENGINE, gpu, trt_version, engine_path="m.fp16.engine")
    msg = str(info.value)
    assert fragment in msg
    assert "g2d-export trt g2d-edge-s.onnx --precision fp16 --max-batch 16" in msg
    assert "build_engine=True" in msg


def test_engine_compat_non_strict_gpu_name_and_missing_section():
    check_engine_compat(ENGINE, GpuInfo("Orin (nvgpu)", "8.7"), "10.3.0", strict_gpu=False)
    with pytest.raises(ModelError, match="no `engine` section"):
        check_engine_compat(None, ORIN, "10.3.0")
    assert "g2d-export trt <model>.onnx" in rebuild_hint(None)


def test_build_options_validation():
    TrtBuildOptions()
    for bad in (dict(precision="bf16"), dict(opt_batch=64, max_batch=32), dict(min_batch=0),
                dict(calib_batch=32, calib_max_faces=8), dict(optimization_level=7)):
        with pytest.raises(InputError, match="TrtBuildOptions"):
            TrtBuildOptions(**bad)


@no_trt_here
def test_build_and_load_without_tensorrt_name_the_missing_packages(tiny_onnx_model: Path, tmp_path: Path):
    with pytest.raises(BackendUnavailableError, match="pip install g2d-edge\\[tensorrt\\]"):
        build_engine(tiny_onnx_model, tmp_path / "x.engine", TrtBuildOptions(precision="fp32"))
    with pytest.raises(ModelError, match="not found"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "x.engine")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not an engine")
    shutil.copy(tiny_onnx_model.with_suffix(".json"), engine.with_suffix(".json"))
    with pytest.raises(BackendUnavailableError, match="tensorrt"):
        load_backend(engine)
    assert export_main(["trt", str(tiny_onnx_model), "--precision", "fp32"]) == 1
    assert export_main(["trt", str(tiny_onnx_model), "-o", str(engine), "--precision", "fp16", "int8"]) == 1


# ------------------------------------------------------------------------------------------------ GPU only
@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_build_load_and_match_onnxruntime(tiny_model_copy: Path, tmp_path: Path, precision: str):
    engine = tmp_path / f"tiny.{precision}.engine"
    sidecar = build_engine(tiny_model_copy, engine, TrtBuildOptions(precision=precision, max_batch=8, opt_batch=4))
    assert sidecar.engine["precision"] == precision and sidecar.engine["max_batch"] == 8
    assert sidecar.engine["parity"]["min_cosine"] >= 0.999
    assert json.loads(engine.with_suffix(".json").read_text())["engine"]["gpu"]
    trt_backend = load_backend(engine)
    ort_backend = load_backend(tiny_model_copy, "onnxruntime", BackendOptions.of(providers=["cpu"]))
    faces = np.random.default_rng(0).integers(0, 256, (19, 112, 112, 3), dtype=np.uint8)  # > max_batch: split
    e_trt, l_trt = trt_backend.infer(faces)
    e_ort, l_ort = ort_backend.infer(faces)
    assert e_trt.shape == (19, 512) and l_trt.shape == (19, 5)
    assert ((e_trt * e_ort).sum(1) > 0.999).all()
    assert trt_backend.infer(faces[:0])[0].shape == (0, 512)
    trt_backend.close()


@needs_gpu
@pytest.mark.gpu
def test_engine_for_another_gpu_or_version_is_refused(tiny_model_copy: Path, tmp_path: Path):
    engine = tmp_path / "tiny.fp32.engine"
    build_engine(tiny_model_copy, engine, TrtBuildOptions(precision="fp32", max_batch=4, opt_batch=2))
    data = json.loads(engine.with_suffix(".json").read_text())
    data["engine"]["tensorrt"] = "7.0.0"
    engine.with_suffix(".json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="rebuild"):
        load_backend(engine)
    data["engine"]["tensorrt"], data["engine"]["gpu"] = "x", "Some Other GPU"
    truncated = tmp_path / "cut.engine"
    truncated.write_bytes(engine.read_bytes()[:1000])
    shutil.copy(tiny_model_copy.with_suffix(".json"), truncated.with_suffix(".json"))
    good = json.loads(engine.with_suffix(".json").read_text())
    good["engine"]["tensorrt"] = __import__("tensorrt").__version__
    truncated.with_suffix(".json").write_text(json.dumps(good))
    with pytest.raises(ModelError, match="deserialize"):
        load_backend(truncated)


@needs_gpu
@pytest.mark.gpu
def test_int8_calibration_cache_is_written_and_reused(tiny_model_copy: Path, tmp_path: Path):
    calib = tmp_path / "calib.npz"
    from g2d_edge.backends.faces import synthetic_faces

    np.savez(calib, images=synthetic_faces(64, np.random.default_rng(0)))
    cache = tmp_path / "tiny.calib"
    opts = TrtBuildOptions(precision="int8", max_batch=8, opt_batch=4, calib_data=calib, calib_cache=cache,
                           calib_batch=16, calib_max_faces=64, min_cosine=0.9)
    build_engine(tiny_model_copy, tmp_path / "a.engine", opts)
    assert cache.is_file() and cache.stat().st_size > 0
    from dataclasses import replace

    sidecar = build_engine(tiny_model_copy, tmp_path / "b.engine", replace(opts, calib_data=None))  # from the cache
    assert sidecar.engine["calibration"]["faces"] == 0


@needs_gpu
@pytest.mark.gpu
def test_build_engine_option_caches_next_to_the_model(tiny_model_copy: Path, tmp_path: Path):
    backend = load_backend(tiny_model_copy, options=BackendOptions.of(build_engine=True, precision="fp16", max_batch=4))
    assert backend.name == "tensorrt"
    engines = list(tmp_path.glob("tiny.fp16.*.engine"))
    assert len(engines) == 1
    backend.close()
    again = load_backend(tiny_model_copy)  # auto now finds the cached engine
    assert again.name == "tensorrt" and again.engine_path == engines[0]
    again.close()
