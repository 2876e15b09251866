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
    assert {"TensorRT fp32", "TensorRT fp16", "TensorRT int8"} <= labels


def test_benchmark_without_model_says_what_to_pass(latency, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(latency, "SHIPPED_MODEL", tmp_path / "g2d-edge-s.onnx")
    assert latency.main([]) == 2
    assert "--model" in capsys.readouterr().err
