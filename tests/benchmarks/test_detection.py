"""benchmarks/detection.py: how faces are matched and summarised, the issue-11 bar, and a small end-to-end run on real
photos (rmfd-real, generated frames, masked pairs through a tiny model)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def detection(load_script):
    return load_script("benchmarks/detection.py", "g2d_detection_bench")


def test_a_detection_finds_a_face_by_centre_and_size(detection):
    from benchmarks._frames import match_faces

    truth = np.array([[0, 0, 40, 40], [100, 100, 140, 140], [200, 0, 240, 40]], np.float32)
    found = np.array([[2, 2, 42, 44],        # face 0
                      [5, 5, 38, 38],        # face 0 again: a duplicate is a false positive
                      [60, 60, 200, 200],    # centre inside face 1 but 3.5x as wide: false positive
                      [300, 300, 340, 340]],  # nowhere: false positive
                     np.float32)
    hit, false_pos = match_faces(found, truth)
    assert hit.tolist() == [True, False, False] and false_pos == 3
    hit, false_pos = match_faces(np.zeros((0, 4), np.float32), truth)
    assert not hit.any() and false_pos == 0


def test_smallest_reliable_size_and_pooled_recall(detection):
    def row(clean, masked):
        return {"clean": {"faces": clean[0], "found": clean[1], "recall": clean[1] / max(clean[0], 1)},
                "masked": {"faces": masked[0], "found": masked[1], "recall": masked[1] / max(masked[0], 1)}}

    by_size = {16: row((10, 9), (10, 2)), 24: row((10, 8), (10, 6)), 48: row((10, 10), (10, 10)),
               96: row((0, 0), (2, 2))}
    out = detection.summarise_sizes(by_size, frames=200, false_pos=3)
    assert out["fp_per_100_frames"] == pytest.approx(1.5)
    assert out["clean"]["smallest_reliable_px"] == 48  # 16 px reaches 0.9 but 24 px does not: not reliable
    assert out["masked"]["smallest_reliable_px"] == 48
    assert out["clean"]["recall_from_24px"] == pytest.approx(18 / 20)
    assert out["masked"]["recall_from_24px"] == pytest.approx(18 / 22)


def test_issue_11_bar(detection):
    def row(rmfd, recall, fp, mu, mm):
        acc = {c: {"accuracy": a, "accuracy_std": 0.0158} for c, a in (("masked-unmasked", mu), ("masked-masked", mm))}
        return {"rmfd": {"rate": rmfd}, "generated": {"1080p": {"clean": {"recall_from_24px": recall},
                                                                "fp_per_100_frames": fp}},
                "verification": {"results": acc}}

    base = row(0.8, 0.1, 0.0, 0.768, 0.746)
    assert all(detection.meets_bar(row(0.96, 0.97, 0.8, 0.765, 0.75), base).values())  # 0.003 < std error 0.005
    bar = detection.meets_bar(row(0.94, 0.97, 1.7, 0.74, 0.75), base)
    assert bar == {"rmfd": False, "recall_24px_1080p": True, "fp_1080p": False, "masked_pairs": False}


def test_configuration_names(detection):
    opts = detection.detector_options("yunet:every:detector")
    assert (opts.model, opts.every_scale, opts.keypoints) == ("yunet", True, "detector")
    opts = detection.detector_options("short:one")
    assert (opts.model, opts.every_scale, opts.keypoints) == ("short", False, "blazeface")
    with pytest.raises(SystemExit):
        detection.detector_options("yunet:sometimes")


def test_end_to_end_on_real_photos(detection, tiny_onnx_model: Path, celeba_people, celeba_dir, tmp_path: Path):
    if not detection.DEFAULT_RMFD.is_dir():
        pytest.skip(f"real masked photos not found at {detection.DEFAULT_RMFD}")
    cfg = detection.DetectionConfig(
        configs=["short:one", "yunet:every"], model=tiny_onnx_model, data=celeba_dir, rmfd_limit=12,
        source_faces=10, frames_per_size={"1080p": 1}, sizes={"1080p": (64, 400)}, timing_cases=(("1080p", 4),),
        timing_frames=1, timing_repeats=1, identities=list(celeba_people)[:3], pairs=24, limit_per_identity=3,
        folds=2)
    out = detection.run(cfg, json_path=tmp_path / "det.json")
    short, yunet = out["rows"]
    assert (short["detector"], yunet["detector"]) == ("blazeface-short", "yunet every-scale + blazeface keypoints")
    assert yunet["sdk_default"] and not short["sdk_default"]
    # 64 px faces in a 1080p frame: the old front end finds none of them, the default nearly all
    small_old = short["generated"]["1080p"]["by_size"][64]
    small_new = yunet["generated"]["1080p"]["by_size"][64]
    assert small_old["clean"]["found"] + small_old["masked"]["found"] == 0
    faces = small_new["clean"]["faces"] + small_new["masked"]["faces"]
    assert faces >= 20 and small_new["clean"]["found"] + small_new["masked"]["found"] >= faces - 2
    assert yunet["rmfd"]["rate"] >= 0.8 and yunet["rmfd"]["photos"] == 12
    for row in out["rows"]:
        assert set(row["verification"]["results"]) == {"unmasked-unmasked", "masked-unmasked", "masked-masked"}
        assert row["ms_per_frame"]["1080p"][4]["ms"] > 0
        assert set(row["meets_issue_11_bar"]) == {"rmfd", "recall_24px_1080p", "fp_1080p", "masked_pairs"}
    assert "| yunet every-scale + blazeface keypoints (default) |" in out["text"]
    saved = json.loads((tmp_path / "det.json").read_text())
    assert saved["meta"]["eval_photos"] == 9 and len(saved["rows"]) == 2


def test_interleaved_timing_takes_turns(detection):  # the fixture puts the repo on sys.path
    from benchmarks._timing import interleaved_median_seconds

    calls = []
    out = interleaved_median_seconds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 1, 3)
    assert calls == ["a", "b"] * 4 and set(out) == {"a", "b"} and all(v >= 0 for v in out.values())
