"""`g2d identify SOURCE` on what Capture takes (a video, a folder, an image), `g2d enroll --folder`, and the exit
status convention shared by g2d, g2d-train and g2d-export (1 error, 2 usage, 130 Ctrl-C)."""
import json

import cv2
import numpy as np
import pytest

from g2d_edge.cli import main
from g2d_edge.gallery import Gallery
from runtime_helpers import read, read_video, write_video


@pytest.fixture()
def people_dir(tmp_path, people):
    """people/<name>/<photo>: two real photos per person (a third photo of each stays out of the gallery)."""
    root = tmp_path / "people"
    for name, photos in people.items():
        (root / name).mkdir(parents=True)
        for p in photos[:2]:
            (root / name / p.name).write_bytes(p.read_bytes())
    return root


@pytest.fixture()
def gallery(tmp_path, people_dir, tiny_onnx_model, capsys):
    path = tmp_path / "people.npz"
    assert main(["enroll", "--folder", str(people_dir), "--gallery", str(path), "--model", str(tiny_onnx_model),
                 "--json"]) == 0
    capsys.readouterr()
    return path


def json_lines(capsys, *argv):
    code = main([*map(str, argv), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return [json.loads(line) for line in out.out.splitlines()]


def clip(tmp_path, photos, frames=12):
    """A short video of real photos: each person's enrolled photo slides across a grey background."""
    images = [cv2.resize(read(p), (144, 144)) for p in photos]
    out = []
    for i in range(frames):
        frame = np.full((240, 480, 3), 60, np.uint8)
        for k, image in enumerate(images):
            x = 10 + 150 * k + 2 * i
            frame[40:184, x:x + 144] = image
        out.append(frame)
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12, (480, 240))
    assert writer.isOpened()
    for frame in out:
        writer.write(frame)
    writer.release()
    return path, out


def test_enroll_folder_enrols_one_person_per_sub_folder(tmp_path, people, people_dir, tiny_onnx_model, capsys):
    path = tmp_path / "g.npz"
    (people_dir / "nobody").mkdir()  # an empty folder is not a person
    assert main(["enroll", "--folder", str(people_dir), "--gallery", str(path), "--model", str(tiny_onnx_model),
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["identities"] == len(people) and res["gallery"] == str(path)
    assert [(e["name"], e["added"]) for e in res["enrolled"]] == [(n, 2) for n in sorted(people)]
    assert Gallery.load(path).names() == sorted(people)
    assert main(["enroll", "--folder", str(people_dir), "--gallery", str(path), "--model", str(tiny_onnx_model)]) == 0
    text = capsys.readouterr().out
    assert all(f"enrolled {n}: 2 photo(s) added (4 template(s) in total)" in text for n in people)


def test_identify_a_video_writes_the_annotated_video_and_one_json_line_per_frame(tmp_path, people, gallery,
                                                                                  tiny_onnx_model, capsys):
    names = sorted(people)
    video, frames = clip(tmp_path, [people[n][0] for n in names])
    out = tmp_path / "out.mp4"
    lines = json_lines(capsys, "identify", video, "--gallery", gallery, "--model", tiny_onnx_model,
                       "--output", out)
    assert [line["frame"] for line in lines] == list(range(len(frames)))
    assert all(line["source"] == str(video) and line["image"] is None for line in lines)
    stamps = [line["timestamp_ms"] for line in lines]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]
    for line in lines:  # left to right: the enrolled photos of names[0], names[1], names[2]
        faces = sorted(line["faces"], key=lambda f: f["box"][0])
        assert [f["name"] for f in faces] == names
        assert all(f["track_id"] is not None for f in faces)  # a video is tracked
    assert len({f["track_id"] for line in lines for f in line["faces"]}) == len(names)  # ... with stable ids
    written = read_video(out)
    assert len(written) == len(frames) and written[0].shape == frames[0].shape
    assert np.abs(written[0].astype(int) - frames[0]).mean() > 1.0  # boxes and names were drawn


def test_identify_a_folder_of_photos_gives_one_line_per_photo(tmp_path, people, gallery, tiny_onnx_model, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, photos in people.items():
        (folder / f"{name}.jpg").write_bytes(photos[0].read_bytes())
    (folder / "notes.txt").write_text("not a photo")
    lines = json_lines(capsys, "identify", folder, "--gallery", gallery, "--model", tiny_onnx_model)
    assert [line["image"] for line in lines] == [str(folder / f"{n}.jpg") for n in sorted(people)]
    for line, name in zip(lines, sorted(people)):
        assert len(line["faces"]) == 1 and line["faces"][0]["name"] == name
        assert line["faces"][0]["track_id"] is None  # independent photos are not tracked
        assert line["threshold"] == pytest.approx(0.42)
    one = json_lines(capsys, "identify", folder / f"{sorted(people)[1]}.jpg", "--gallery", gallery, "--model",
                     tiny_onnx_model, "--max-frames", 1)
    assert len(one) == 1 and one[0]["faces"][0]["name"] == sorted(people)[1]
    assert main(["identify", str(folder), "--gallery", str(gallery), "--model", str(tiny_onnx_model)]) == 0
    text = capsys.readouterr().out
    assert f"{folder / (sorted(people)[0] + '.jpg')}: 1 face(s)" in text and "3 frame(s) in" in text


def test_usage_errors_exit_2_and_user_errors_exit_1(tmp_path, people_dir, gallery, tiny_onnx_model, capsys,
                                                    monkeypatch):
    for argv in (["identify", str(people_dir), "--gallery", str(gallery), "--backend", "coreml"],
                 ["enroll", "ann", "a.jpg", "--folder", str(people_dir), "--gallery", str(gallery)],
                 ["enroll", "ann", "--gallery", str(gallery)],
                 ["identify", str(people_dir), "--gallery", str(gallery), "--output", "out.gif"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    capsys.readouterr()
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["identify", str(people_dir), "--gallery", str(gallery), "--model", str(tiny_onnx_model),
                 "--show"]) == 1
    assert "no display" in capsys.readouterr().err
    assert main(["identify", str(tmp_path / "missing.mp4"), "--gallery", str(gallery)]) == 1
    assert "frame source not found" in capsys.readouterr().err


def test_video_loop_starts_every_source_as_a_new_scene(tmp_path, people, tiny_onnx_model):
    """VideoLoop makes a new tracker for each source: a second video's faces are numbered as a fresh recognizer's
    loop numbers them (a tracker carried over from the first video would number them on); a folder is not tracked."""
    from g2d_edge import Recognizer
    from g2d_edge.results import FrameResult
    from g2d_edge.video import Capture, VideoLoop, VideoOptions

    first, _ = clip(tmp_path, [people[n][0] for n in sorted(people)], frames=4)
    face = cv2.resize(read(people[sorted(people)[0]][1]), (144, 144))
    frames = [np.full((480, 480, 3), 60, np.uint8) for _ in range(4)]
    for i, frame in enumerate(frames):
        frame[300 - i:444 - i, 300:444] = face
    second = write_video(tmp_path / "second.avi", frames, fps=12)
    cv2.imwrite(str(tmp_path / "still.jpg"), frames[0])
    with Capture(first) as video, Capture(tmp_path) as folder:
        assert video.is_video and not folder.is_video

    def track_ids(rec, video):
        with VideoLoop(rec, video, VideoOptions(max_frames=3)) as loop:
            results = list(loop)
        assert loop.frames == 3 and all(isinstance(r, FrameResult) for r in results)
        return [sorted(f.track_id for f in r.faces) for r in results]

    with Recognizer(model=tiny_onnx_model) as rec:
        assert len(track_ids(rec, first)[0]) == len(people)
        after_first = track_ids(rec, second)
    with Recognizer(model=tiny_onnx_model) as fresh:
        assert after_first == track_ids(fresh, second) and len(after_first[0]) == 1
    with pytest.raises(Exception, match="must be a video file"):
        VideoOptions(output=tmp_path / "out.gif")
