"""benchmarks/yunet_runtimes.py: how two runtimes' faces are compared, and a small end-to-end run on real photos."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from g2d_edge.detectors import Detection


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("benchmarks/yunet_runtimes.py", "g2d_yunet_runtimes_bench")


def _face(x: float, y: float, side: float = 40.0) -> Detection:
    kps = np.array([[x + 10, y + 12], [x + 30, y + 12], [x + 20, y + 22], [x + 12, y + 30], [x + 28, y + 30]],
                   np.float32)
    return Detection(box=np.array([x, y, x + side, y + side], np.float32), keypoints=kps, score=0.9)


def test_agreement_matches_faces_and_reports_the_largest_differences(bench):
    ref = [_face(0, 0), _face(100, 100), _face(300, 0)]
    moved = _face(100.5, 100)
    got = [_face(0, 0), moved, _face(600, 600)]
    out = bench.agreement(ref, got)
    assert out == {"found": 3, "missed": 1, "max_box_px": 0.5, "max_keypoint_px": 0.5}
    assert bench.agreement(ref, [])["missed"] == 3


def test_small_run_on_real_photos(bench, celeba_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "yunet.json"
    assert bench.main(["--data", str(celeba_dir), "--sizes", "360p", "--faces", "4", "--repeats", "1",
                       "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| 360p (4) | one-pass |" in text and "onnxruntime vs opencv" in text
    result = json.loads(out.read_text())
    per = result["sizes"]["360p"]["runtimes"]
    assert set(per) == set(result["runtimes"]) >= {"opencv", "onnxruntime"}
    for runtime, r in per.items():
        assert r["one_pass_ms"] > 0 and r["every_scale_ms"] > 0
        assert r["one_pass"]["found"] == per["opencv"]["one_pass"]["found"] >= 3  # the same faces
        assert r["one_pass"]["missed"] == 0 and r["one_pass"]["max_keypoint_px"] < 1.0
