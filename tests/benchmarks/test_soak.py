"""benchmarks/soak.py: a short run on the tiny model gives the figures the README quotes (RSS, threads, file
descriptors after warm-up, with their slope), and the scene makes tracks end and start."""
from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def soak(load_script):
    return load_script("benchmarks/soak.py", "g2d_soak_bench")


def test_the_scene_moves_faces_and_sends_one_away(soak):
    faces = [np.full((soak.FACE_PX, soak.FACE_PX, 3), 50 * (k + 1), np.uint8) for k in range(3)]
    base = np.zeros((*soak.FRAME_SIZE, 3), np.uint8)
    first, later, away = (soak.scene_frame(base, faces, i) for i in (150, 160, 10))
    assert not np.array_equal(first, later)  # moving
    assert all((first == 50 * (k + 1)).all(axis=2).sum() > 0 for k in range(3))  # all there
    assert (away == 50).all(axis=2).sum() == 0  # frame 10: face 0 is away


def test_slope_and_summary(soak):
    assert soak.slope_per_1000([0, 1000, 2000], [10.0, 11.0, 12.0]) == pytest.approx(1.0)
    samples = [{"frame": f, "rss_mb": 100.0 + f / 1000, "threads": 8, "fds": 9} for f in range(0, 3000, 250)]
    out = soak.summarise(samples, warmup=1000)
    assert out["rss_mb"]["first"] == 101.0 and out["rss_mb"]["slope_per_1000_frames"] == pytest.approx(1.0)
    assert out["threads"]["max"] == 8 and out["fds"]["slope_per_1000_frames"] == pytest.approx(0.0)


def test_a_short_soak_reports_flat_threads_and_descriptors(soak, tiny_onnx_model, celeba_dir, tmp_path, capsys):
    assert soak.main(["--data", str(celeba_dir), "--frames", "30", "--sample-every", "10", "--warmup", "10",
                      "--people", "3", "--model", str(tiny_onnx_model), "--out", str(tmp_path / "soak.json")]) == 0
    result = json.loads((tmp_path / "soak.json").read_text())
    assert result["frames"] == 30 and result["tracking"] is True and len(result["samples"]) == 4
    assert result["faces_per_frame"] > 1 and result["after_warmup"]["threads"]["max"] >= 1
    assert all(s["rss_mb"] > 0 and s["fds"] > 0 for s in result["samples"])
    assert "RSS MB" in capsys.readouterr().out
