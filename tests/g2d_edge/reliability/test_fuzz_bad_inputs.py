"""Issue 12, fuzz: a few hundred generated bad inputs (truncated and garbled images, crafted headers, odd arrays,
damaged galleries and sidecars) go through `enroll`, `identify`, `verify`, `Gallery.load`, `ModelSidecar.load` and
the CLI. Each call may succeed or fail, but every failure must be a G2DError (CLI: exit 1 with one `g2d: error:`
line, no traceback). Deterministic (fixed seed) and bounded: every input is a small file or array."""
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Callable, List, Tuple

import cv2
import numpy as np
import pytest

from g2d_edge.cli import main
from g2d_edge.errors import G2DError
from g2d_edge.gallery import Gallery
from g2d_edge.sidecar import ModelSidecar
from g2d_edge.video import PushedFrames
from runtime_helpers import gray_png, jpeg_header

SEED = 12
SIGNATURES = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"II*\x00",
              b"MM\x00*", b"II+\x00", b"P6\n", b"P5 #c\n", b"PK\x03\x04"]
ODD_VALUES = [None, True, -1, 0, 3.5, 10 ** 30, float("nan"), float("inf"), "", "x", "\x00", [], [1, "a"], {},
              {"a": [None]}]


class Failures:
    """Collects every call that failed with something other than a G2DError."""

    def __init__(self) -> None:
        self.found: List[str] = []
        self.calls = 0

    def call(self, label: str, fn: Callable[[], object]) -> None:
        self.calls += 1
        try:
            fn()
        except G2DError:
            pass
        except Exception as exc:  # the bug this test hunts
            self.found.append(f"{label}: {type(exc).__name__}: {str(exc)[:200]}")


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(SEED)


def bad_image_files(folder: Path, rng, photo: bytes) -> List[Path]:
    folder.mkdir()
    png = cv2.imencode(".png", rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))[1].tobytes()
    blobs: List[Tuple[str, bytes]] = []
    for i in range(20):
        blobs.append((f"cut{i}.jpg", photo[:int(rng.integers(0, len(photo)))]))
        blobs.append((f"cut{i}.png", png[:int(rng.integers(0, len(png)))]))
    for i in range(25):
        for name, good in (("jpg", photo), ("png", png)):
            garbled = bytearray(good)
            for pos in rng.integers(0, len(garbled), int(rng.integers(1, 40))):
                garbled[pos] = int(rng.integers(0, 256))
            blobs.append((f"flip{i}.{name}", bytes(garbled)))
    for i, sig in enumerate(SIGNATURES):
        for k in range(4):
            blobs.append((f"sig{i}_{k}.img", sig + rng.bytes(int(rng.integers(0, 400)))))
    for i in range(10):
        w, h = (int(v) for v in rng.integers(1, 70000, 2))
        blobs.append((f"hdr{i}.png", gray_png(w, h, body=False)))
        blobs.append((f"hdr{i}.jpg", jpeg_header(min(w, 65535), min(h, 65535))))
        blobs.append((f"hdr{i}.bmp", b"BM" + struct.pack("<IHHIIii", 54, 0, 0, 54, 40, w, -h) + bytes(28)))
    paths = []
    for name, data in blobs:
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    (folder / "dir.jpg").mkdir()
    os.symlink(folder / "loop.jpg", folder / "loop.jpg")  # a symlink to itself
    os.symlink(folder / "missing-target.jpg", folder / "dangling.jpg")
    return paths + [folder / "dir.jpg", folder / "loop.jpg", folder / "dangling.jpg", folder / "nul\0byte.jpg"]


def odd_arrays(rng) -> list:
    frame = rng.integers(0, 255, (120, 100, 3), dtype=np.uint8)
    out = [np.zeros((0, 0, 3), np.uint8), np.zeros((7, 7, 3), np.uint8), np.zeros((100, 100), np.uint8),
           np.zeros((100, 100, 4), np.uint8), np.zeros((100, 100, 1), np.uint8), np.zeros((1, 100, 100, 3), np.uint8),
           frame.astype(np.float32), frame.astype(np.float64) / 255, frame.astype(np.int16), frame.astype(bool),
           np.full((100, 100, 3), np.nan), frame[::2, ::3], frame[::-1, ::-1], frame[:, :, ::-1],
           np.asfortranarray(frame), frame.transpose(1, 0, 2), np.broadcast_to(frame[:1], (120, 100, 3)),
           np.zeros((3, 100, 100), np.uint8), np.zeros((100, 100, 3), np.uint8)[..., None], np.array(5, np.uint8),
           np.array(["a"]), np.empty((2, 2), object), np.zeros(100000, np.uint8), np.zeros((2000, 8, 3), np.uint8),
           np.zeros((8, 2000, 3), np.uint8), None, 5, 3.5, "no/such/photo.jpg", b"bytes", [[1, 2, 3]], {"a": 1},
           object()]
    return out


def crafted_galleries(folder: Path, rng) -> List[Path]:
    folder.mkdir()
    g = Gallery(embedding_space="space", threshold=0.3)
    g.add("ann", rng.standard_normal((2, 8)).astype(np.float32))
    g.add("bob", rng.standard_normal(8).astype(np.float32))
    good_path = g.save(folder / "good.npz")
    with np.load(good_path) as data:
        good = {k: data[k] for k in data.files}
    meta = json.loads(str(good["meta"]))
    arrays = [np.array(v) for v in (1, "x", [1, 2], [[1.0]], [["a"]], [np.nan])] + [
        np.zeros((3, 8), np.float16), np.zeros((0,), np.int64), np.array([-1, 4]), np.zeros((3, 0), np.float32),
        np.array([True, False]), np.array(["", "ann"]), np.array(["ann", "ann "])]
    paths = []
    for i in range(40):
        case = dict(good)
        key = str(rng.choice(["meta", "names", "counts", "embeddings"]))
        if i % 2 == 0:
            changed = dict(meta)
            field = str(rng.choice(list(meta) + ["extra"]))
            changed[field] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
            case["meta"] = np.array(json.dumps(changed))
        elif i % 5 == 1:
            del case[key]
        else:
            case[key] = arrays[int(rng.integers(len(arrays)))]
        path = folder / f"g{i}.npz"
        np.savez(path, **case)
        paths.append(path)
    raw = good_path.read_bytes()
    for i in range(20):
        damaged = bytearray(raw[:int(rng.integers(0, len(raw)))] if i % 2 else raw)
        for pos in rng.integers(0, len(damaged), 8) if damaged else []:
            damaged[pos] = int(rng.integers(0, 256))
        (folder / f"raw{i}.npz").write_bytes(bytes(damaged))
        paths.append(folder / f"raw{i}.npz")
    with zipfile.ZipFile(folder / "pickle.npz", "w") as zf:  # an object array needs pickle: never loaded
        with zf.open("meta.npy", "w") as fh:
            np.save(fh, np.array([{"format": 1}], dtype=object), allow_pickle=True)
    return paths + [folder / "pickle.npz", folder / "missing.npz", folder]


def crafted_sidecars(folder: Path, source: Path, rng) -> List[Path]:
    folder.mkdir()
    data = json.loads(source.read_text())
    paths = []
    for i in range(50):
        changed = json.loads(json.dumps(data))
        field = str(rng.choice(list(data) + ["extra"]))
        if field == "input" and i % 2:
            changed["input"] = dict(changed["input"])
            changed["input"][str(rng.choice(list(data["input"])))] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
        else:
            changed[field] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
        if i % 7 == 0:
            del changed[str(rng.choice(list(data)))]
        paths.append(folder / f"s{i}.json")
        paths[-1].write_text(json.dumps(changed))
    for name, text in [("list.json", "[]"), ("text.json", '"x"'), ("bad.json", "{"), ("deep.json", "[" * 100000),
                       ("bin.json", "\udcff")]:
        (folder / name).write_text(text, errors="surrogateescape")
        paths.append(folder / name)
    return paths


def test_every_bad_input_is_a_g2d_error(recognizer, people, tmp_path, rng, tiny_onnx_model, capsys):
    photo = next(iter(people.values()))[0]
    images = bad_image_files(tmp_path / "images", rng, photo.read_bytes())
    arrays = odd_arrays(rng)
    galleries = crafted_galleries(tmp_path / "galleries", rng)
    sidecars = crafted_sidecars(tmp_path / "sidecars", tiny_onnx_model.with_suffix(".json"), rng)
    recognizer.gallery = Gallery()
    recognizer.enroll("ann", photo)
    f = Failures()
    for item in [*images, *arrays]:
        f.call(f"enroll({item!r:.80})", lambda: recognizer.enroll("x", item))
        f.call(f"verify({item!r:.80})", lambda: recognizer.verify(item, photo))
        f.call(f"identify({item!r:.80})", lambda: recognizer.identify(item))
    for value in ODD_VALUES + [2, -2, "0.5"]:
        f.call(f"threshold={value!r}", lambda: setattr(recognizer, "threshold", value))
        f.call(f"PushedFrames.push ts={value!r}", lambda: PushedFrames().push(arrays[1], value))
    recognizer.threshold = None
    for path in galleries:
        f.call(f"Gallery.load({path.name})", lambda: Gallery.load(path).search(np.ones(8, np.float32)))
    for path in sidecars:
        f.call(f"ModelSidecar.load({path.name})", lambda: ModelSidecar.load(path))
    good_gallery = recognizer.gallery.save(tmp_path / "good.npz")
    cli_runs = [["gallery", "list", "--gallery", str(p)] for p in galleries[::3]]
    cli_runs += [["identify", str(p), "--gallery", str(good_gallery)] for p in images[::6]]
    cli_runs += [["gallery", "rename", "ann", bad, "--gallery", str(good_gallery)] for bad in ("", "a\nb", "x" * 300)]
    for argv in cli_runs:
        f.calls += 1
        try:
            code = main(argv)
        except (Exception, SystemExit) as exc:
            f.found.append(f"g2d {argv}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        err = capsys.readouterr().err
        if code not in (0, 1) or (code == 1 and (err.count("\n") != 1 or not err.startswith("g2d: error: "))):
            f.found.append(f"g2d {argv}: exit {code}, stderr {err!r:.300}")
    assert f.calls > 400
    assert not f.found, f"{len(f.found)} of {f.calls} calls failed without a G2DError:\n" + "\n".join(f.found)
