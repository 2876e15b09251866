"""Issue 22, class "batch runs": `g2d identify FOLDER` skips an image too small or too narrow to hold a face as it
skips an unreadable one (and says how many it skipped); `g2d enroll --folder` skips a person without a usable photo
instead of enrolling no one, and sums up in ONE line what it skipped (people, empty folders, stray files) and why."""
import json

import cv2
import numpy as np
import pytest

from g2d_edge.cli import main
from g2d_edge.gallery import Gallery


@pytest.fixture()
def gallery(tmp_path, people, tiny_onnx_model, capsys):
    path = tmp_path / "people.npz"
    for name, photos in people.items():
        assert main(["enroll", name, str(photos[0]), "--gallery", str(path), "--model", str(tiny_onnx_model)]) == 0
    capsys.readouterr()
    return path


def png(path, height, width):
    ok, data = cv2.imencode(".png", np.full((height, width, 3), 90, np.uint8))
    path.write_bytes(data.tobytes())
    return path


def test_identify_a_folder_skips_images_too_small_or_too_narrow(tmp_path, people, gallery, tiny_onnx_model, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    names = sorted(people)
    for name in names:
        (folder / f"{name}.jpg").write_bytes(people[name][1].read_bytes())
    png(folder / "a-tiny.png", 4, 4)
    png(folder / "b-strip.png", 8, 400)
    (folder / "c-broken.jpg").write_bytes(b"\xff\xd8 not really")
    code = main(["identify", str(folder), "--gallery", str(gallery), "--model", str(tiny_onnx_model), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert [line["image"] for line in lines] == [str(folder / f"{n}.jpg") for n in names]
    assert all(name in out.err for name in ("a-tiny.png", "b-strip.png", "c-broken.jpg"))
    code = main(["identify", str(folder), "--gallery", str(gallery), "--model", str(tiny_onnx_model)])
    out = capsys.readouterr()
    assert code == 0 and f"{len(names)} frame(s) in" in out.out and "skipped 3 image(s)" in out.out


def test_enroll_folder_skips_a_person_without_a_usable_photo_and_says_so_once(tmp_path, people, tiny_onnx_model,
                                                                             capsys):
    root = tmp_path / "people"
    names = sorted(people)
    for name in names:
        (root / name).mkdir(parents=True)
        for photo in people[name][:2]:
            (root / name / photo.name).write_bytes(photo.read_bytes())
    (root / names[0] / "notes.txt").write_text("taken in 2019")
    png(root / names[1] / "wall.png", 200, 200)  # a good person's photo without a face: that photo is skipped
    (root / "zoe").mkdir()
    png(root / "zoe" / "wall.png", 200, 200)  # no face in it
    png(root / "zoe" / "tiny.png", 4, 4)
    (root / "empty").mkdir()
    (root / "README.txt").write_text("one folder per person")
    (root / ".DS_Store").write_bytes(b"\0")  # hidden: not worth a word
    path = tmp_path / "g.npz"
    argv = ["enroll", "--folder", str(root), "--gallery", str(path), "--model", str(tiny_onnx_model)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert Gallery.load(path).names() == names
    summary = [line for line in text.splitlines() if line.startswith("skipped")]
    assert len(summary) == 1, text
    for words in ("1 person(s) without a usable photo (zoe)", "1 photo(s) without a usable face",
                  "1 empty folder(s) (empty)", "1 stray file(s) beside the person folders (README.txt)",
                  "1 file(s) that are not images (notes.txt)"):
        assert words in summary[0], summary[0]
    assert ".DS_Store" not in text
    assert main(argv + ["--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in res["skipped_people"]] == ["zoe"]
    assert {p["reason"] for p in res["skipped_paths"]} == {"no photos", "not a person folder", "not an image file"}


def test_enroll_folder_with_no_usable_person_fails_and_writes_nothing(tmp_path, tiny_onnx_model, capsys):
    root = tmp_path / "people"
    (root / "zoe").mkdir(parents=True)
    png(root / "zoe" / "wall.png", 200, 200)
    path = tmp_path / "g.npz"
    assert main(["enroll", "--folder", str(root), "--gallery", str(path), "--model", str(tiny_onnx_model)]) == 1
    assert "no one could be enrolled" in capsys.readouterr().err and not path.exists()
