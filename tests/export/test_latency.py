"""benchmarks/latency.py on the tiny model: rows, PyTorch baseline, Markdown + JSON, the no-model message."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def latency(load_script):
    return load_script("benchmarks/latency.py", "g2d_latency_bench")


def test_benchmark_rows_markdown_and_json(latency, exported_tiny_model: Path, tmp_path: Path, capsys):
    out = tmp_path / "lat.json"
    code = latency.main(["--model", str(exported_tiny_model), "--checkpoint", str(exported_tiny_model.with_suffix(".pt")),
                         "--iters", "5", "--warmup", "1", "--batches", "1", "4", "--min-seconds", "0.05",
                         "--threads", "1", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "| PyTorch eager |" in text and "| ONNX Runtime CPU |" in text and "faces/s b=4" in text
    assert "cores" in text.splitlines()[0]
    result = json.loads(out.read_text())
    rows = {r["label"]: r for r in result["rows"]}
    assert {"PyTorch eager", "ONNX Runtime CPU"} <= set(rows)
    for r in rows.values():
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert set(r["throughput"]) == {"1", "4"} and all(v > 0 for v in r["throughput"].values())
    assert rows["PyTorch eager"]["speedup_vs_torch"] == pytest.approx(1.0)
    assert result["machine"]["cpu"] and result["machine"]["cores"]
    labels = {s["label"] for s in result["skipped"]} | set(rows)
    assert {"TensorRT fp32", "TensorRT fp16", "TensorRT int8", "OpenVINO CPU"} <= labels


def test_cpu_runtimes_are_also_timed_in_turns(latency, tiny_onnx_model: Path, tmp_path: Path, capsys):
    pytest.importorskip("openvino")
    out = tmp_path / "lat.json"
    assert latency.main(["--model", str(tiny_onnx_model), "--iters", "3", "--warmup", "1", "--batches", "1", "2",
                         "--min-seconds", "0.02", "--threads", "1", "--turns", "3", "--precisions", "fp32",
                         "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| OpenVINO CPU |" in text and "timed in turns (threads: 1;" in text
    result = json.loads(out.read_text())
    assert set(result["in_turns"]) == {"1", "2"}
    for ms in result["in_turns"].values():
        assert set(ms) == {"ONNX Runtime CPU", "OpenVINO CPU"} and all(v > 0 for v in ms.values())
    assert {r["label"]: r["device"] for r in result["rows"]}["OpenVINO CPU"] == "CPU"


def test_benchmark_without_model_says_what_to_pass(latency, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(latency, "SHIPPED_MODEL", tmp_path / "g2d-edge-s.onnx")
    assert latency.main([]) == 2
    assert "--model" in capsys.readouterr().err
