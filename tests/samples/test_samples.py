"""The samples run end to end on real photos (subprocesses, as a user would run them)."""
import re
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from runtime_helpers import REPO, read, read_video, tile, write_video


def run(args, cwd, timeout=180):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


@pytest.fixture(scope="module")
def people_dir(tmp_path_factory, people):
    root = tmp_path_factory.mktemp("people")
    for name, photos in people.items():
        (root / name).mkdir()
        for p in photos[:2]:
            (root / name / p.name).write_bytes(p.read_bytes())
    return root


def test_webcam_sample_headless_on_a_video(tmp_path, tiny_onnx_model, people, people_dir):
    photos = [read(p[0]) for p in people.values()]
    frames = []
    for i in range(12):  # a 'camera' panning over the people
        frame = np.full((240, 320, 3), 60, np.uint8)
        x = 10 + 10 * i
        frame[40:184, x:x + 144] = photos[i % len(photos)]
        frames.append(frame)
    video = write_video(tmp_path / "camera.avi", frames, fps=12)
    out = tmp_path / "annotated.avi"
    res = run([REPO / "samples" / "webcam.py", "--source", video, "--enroll", people_dir, "--model", tiny_onnx_model,
               "--headless", "--output", out, "--max-frames", "10", "--masked-templates", "1"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "10 frames" in res.stdout and f"wrote {out}" in res.stdout
    for name in people:
        assert f"enrolled {name}: 4 template(s) (2 of them synthetic masked), 0 photo(s) skipped" in res.stdout
    # a video source is tracked: every face line carries its track id; the clean faces are not tagged masked
    face_lines = [line for line in res.stdout.splitlines() if line.startswith("frame ") and "no face" not in line]
    assert face_lines and all(re.search(r" #\d+", line) for line in face_lines)
    assert not any("[mask]" in line for line in face_lines)
    written = read_video(out)
    assert len(written) == 10 and written[0].shape == (240, 320, 3)
    # annotations were drawn: the output differs from the input around the face
    assert np.abs(written[0].astype(int) - frames[0]).mean() > 1.0


def test_webcam_sample_needs_headless_without_display(tmp_path, tiny_onnx_model):
    res = run([REPO / "samples" / "webcam.py", "--source", tmp_path, "--model", tiny_onnx_model], cwd=tmp_path)
    assert res.returncode == 1 and "--headless" in res.stderr and "Traceback" not in res.stderr


def test_enroll_and_identify_sample(tmp_path, tiny_onnx_model, people, people_dir):
    group = tmp_path / "group.jpg"
    cv2.imwrite(str(group), tile([read(p[0]) for p in people.values()], cell=200))
    res = run([REPO / "samples" / "enroll_and_identify.py", people_dir, group, tiny_onnx_model], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == len(people)
    # every tile is an enrolled photo, so every face is named after its own person
    assert {line.split()[0] for line in lines} == set(people)
    assert (tmp_path / "identified.jpg").is_file()


def test_runtime_does_not_import_torch(tmp_path):
    code = ("import sys, g2d_edge, g2d_edge.cli, g2d_edge.video.capture, g2d_edge.draw, g2d_edge.gallery, "
            "g2d_edge.recognizer, g2d_edge.backends; "
            "bad = [m for m in ('torch', 'train', 'export') if m in sys.modules]; "
            "assert not bad, bad; print('ok')")
    res = run(["-c", code], cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
