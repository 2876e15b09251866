"""benchmarks/pipeline.py end to end on real photos (a subprocess, as a user would run it)."""
import json
import os
import subprocess
import sys

import pytest

from runtime_helpers import REPO


def run(args, cwd, timeout=180):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def test_pipeline_benchmark_json(tmp_path, tiny_onnx_model, celeba_dir):
    res = run([REPO / "benchmarks" / "pipeline.py", "--model", tiny_onnx_model, "--data", celeba_dir, "--faces",
               "1,4", "--frames", "4", "--warmup", "1", "--distinct", "2", "--gallery-size", "50",
               "--backends", "cpu", "--json"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    rows = report["rows"]
    assert [r["faces_per_frame"] for r in rows] == [1, 4]
    for r in rows:
        assert r["frames"] == 4 and r["fps"] > 0 and r["backend"] == "onnxruntime"
        assert r["faces_found"] == pytest.approx(r["faces_per_frame"], abs=1.0)
        stages = [r[f"{s}_ms"] for s in ("capture", "detection", "tracking", "alignment", "inference", "matching")]
        assert all(v >= 0 for v in stages) and r["detection_ms"] > 0 and r["inference_ms"] > 0
        assert sum(stages) <= r["total_ms"] * 1.05
        assert r["tracking"] == "-" and r["embedded"] == pytest.approx(r["faces_found"])


def test_pipeline_video_mode_tracks_and_embeds_less(tmp_path, tiny_onnx_model, celeba_dir):
    res = run([REPO / "benchmarks" / "pipeline.py", "--model", tiny_onnx_model, "--data", celeba_dir, "--faces", "4",
               "--frames", "12", "--warmup", "1", "--gallery-size", "20", "--backends", "cpu", "--video", "--json"],
              cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = {r["tracking"]: r for r in json.loads(res.stdout)["rows"]}
    assert set(rows) == {"off", "on"}
    assert rows["off"]["embedded"] == pytest.approx(rows["off"]["faces_found"])
    assert rows["on"]["embedded"] < rows["on"]["faces_found"] / 2  # tracks are re-recognised every 20th frame
