"""benchmarks/model_cost.py: configs with overrides, and the ONNX Runtime timing in turns with a reference model."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.model_cost import config_of, onnx_vs
from train.model import ModelConfig


def test_a_config_is_a_preset_with_optional_overrides() -> None:
    assert config_of("tiny") == ModelConfig.preset("tiny")
    cfg = config_of("sface:width=0.5,sface_stem_stride=2")
    assert (cfg.encoder, cfg.width, cfg.sface_stem_stride, cfg.descriptor_channels) == ("sface", 0.5, 2, 512)
    with pytest.raises(SystemExit, match="field=value"):
        config_of("sface:width")


def test_onnx_timing_reports_each_config_against_the_reference(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from export.onnx import trace_to_onnx
    from train.model import InferenceModel, build_model

    reference = tmp_path / "ref.onnx"
    reference.write_bytes(trace_to_onnx(InferenceModel(build_model(ModelConfig.preset("tiny")).eval()))
                          .SerializeToString())
    out = onnx_vs({"tiny:width=0.5": config_of("tiny:width=0.5")}, reference, threads=1, warmup=1, repeats=3)
    row = out["tiny:width=0.5"]
    assert row["onnx_ms"] > 0 and row["reference_ms"] > 0
    assert row["speedup"] == pytest.approx(row["reference_ms"] / row["onnx_ms"], rel=1e-9)
