"""Helpers shared by the runtime tests (real-photo frames, masks, videos, subprocesses, crafted image files)."""
from __future__ import annotations

import collections.abc
import dataclasses
import os
import struct
import subprocess
import sys
import typing
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]


def repo_env() -> Dict[str, str]:
    """The environment for a subprocess that must import this checkout's g2d_edge (first on PYTHONPATH)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def start_python(code: str, *args: object) -> subprocess.Popen:
    """A real Python process running `code` with `args` as sys.argv[1:] (this checkout importable), talking
    text lines over stdin/stdout."""
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=repo_env())


#: Code for `start_python(LOCK_HOLDER, lock_file)`: takes an exclusive flock on the file, prints "locked", and holds
#: it until a line arrives on stdin.
LOCK_HOLDER = """
import fcntl, sys
fh = open(sys.argv[1], "a")
fcntl.flock(fh, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
"""


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def gray_png(width: int, height: int, body: bool = True) -> bytes:
    """A valid 8-bit grayscale PNG of black pixels, compressed row by row (a 12000x12000 one takes ~0.1 s and
    600 KB); body=False leaves out the pixel data (a header that claims the size, nothing behind it)."""
    idat = b""
    if body:
        comp = zlib.compressobj(1)
        row = b"\x00" * (width + 1)  # filter byte + pixels
        idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))


def jpeg_header(width: int, height: int) -> bytes:
    """The start of a baseline JPEG whose frame header (SOF0) claims width x height, without image data."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"".join(bytes([i, 0x11, 0]) for i in (1, 2, 3))
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


def draw_mask(image: np.ndarray, keypoints: np.ndarray, color=(235, 200, 150)) -> np.ndarray:
    """A surgical-mask-like filled polygon over nose, mouth and chin, placed from detector keypoints: BlazeFace's 6
    (eyes, nose, mouth centre, ears) or YuNet's 5 (eyes, nose, mouth corners; the ears are put 0.6 eye distances
    outside the eyes)."""
    kps = np.asarray(keypoints, dtype=np.float64)
    eyes, nose = kps[:2], kps[2]
    if len(kps) == 6:
        mouth, ear_l, ear_r = kps[3], kps[4], kps[5]
    else:
        mouth = kps[3:5].mean(axis=0)
        left, right = sorted(eyes, key=lambda p: p[0])
        span = 0.6 * (right[0] - left[0])
        ear_l, ear_r = left - [span, 0], right + [span, 0]
    top_y = (eyes[:, 1].mean() + nose[1]) / 2
    chin_y = mouth[1] + (mouth[1] - nose[1]) * 2.0
    half = abs(ear_r[0] - ear_l[0]) * 0.2
    poly = np.array([[ear_l[0], top_y], [ear_r[0], top_y], [ear_r[0], mouth[1]], [mouth[0] + half, chin_y],
                     [mouth[0] - half, chin_y], [ear_l[0], mouth[1]]], np.int32)
    masked = image.copy()
    cv2.fillPoly(masked, [poly], color)
    return masked


def place_in_frame(images: List[np.ndarray], frame_size=(1080, 1920), cell: int = 64, seed: int = 0,
                   margin: Optional[int] = None):
    """Real photos resized to `cell` px, spread over a noisy grey frame of `frame_size` (h, w) three cells apart,
    `margin` (default: one cell) from the top-left corner.
    Returns (frame, boxes): the (N, 4) cells (x1, y1, x2, y2) the photos were put in."""
    h, w = frame_size
    margin = cell if margin is None else margin
    rng = np.random.default_rng(seed)
    frame = np.clip(110 + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    per_row = max(1, (w - cell) // (3 * cell))
    boxes = []
    for k, image in enumerate(images):
        r, c = divmod(k, per_row)
        x, y = margin + 3 * c * cell, margin + 3 * r * cell
        assert y + cell <= h, "frame too small for the photos"
        frame[y:y + cell, x:x + cell] = cv2.resize(image, (cell, cell), interpolation=cv2.INTER_AREA)
        boxes.append((x, y, x + cell, y + cell))
    return frame, np.array(boxes, np.float32)


def faces_in_cells(faces, boxes: np.ndarray) -> int:
    """How many cells hold the centre of a detected face (each cell counted once)."""
    hit = np.zeros(len(boxes), bool)
    for face in faces:
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        hit |= (boxes[:, 0] <= cx) & (cx <= boxes[:, 2]) & (boxes[:, 1] <= cy) & (cy <= boxes[:, 3])
    return int(hit.sum())


def tile(images: List[np.ndarray], cell: int = 144) -> np.ndarray:
    """Images side by side in a square grid (the multi-face test frames)."""
    side = int(np.ceil(np.sqrt(len(images))))
    frame = np.zeros((side * cell, side * cell, 3), np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, side)
        frame[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = cv2.resize(im, (cell, cell))
    return frame


def write_video(path: Path, frames: List[np.ndarray], fps: float = 10.0) -> Path:
    """Write frames as an MJPG .avi (always available in OpenCV builds)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def read_video(path: Path) -> List[np.ndarray]:
    """Every frame of a video file."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


def numbered_frames(n: int, size=(96, 128)) -> List[np.ndarray]:
    """Frames whose mean brightness encodes their number (5 * i + 10, so at most 49 frames), robust to JPEG."""
    assert n <= 49
    return [np.full((size[0], size[1], 3), 10 + 5 * i, np.uint8) for i in range(n)]


def frame_number(image: np.ndarray) -> int:
    return int(round((float(image.mean()) - 10) / 5))


def options_classes(package: str = "g2d_edge") -> List[type]:
    """Every dataclass named `...Options` defined in a module of `package` (found by walking the package, so that a
    new one is covered by the options tests without being listed anywhere)."""
    import importlib
    import pkgutil

    found: Dict[str, type] = {}
    for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__ \
                    and name.endswith("Options"):
                found[name] = obj
    return [found[name] for name in sorted(found)]


def without_none(kind: Any) -> Any:
    """The annotation without its Optional."""
    if typing.get_origin(kind) is Union:
        arms = [a for a in typing.get_args(kind) if a is not type(None)]
        return arms[0] if len(arms) == 1 else Union[tuple(arms)]
    return kind


def bad_option_values(kind: Any, rule: Dict[str, Any]) -> List[Any]:
    """Values a field of annotation `kind` and rule `rule` must refuse."""
    base = without_none(kind)
    out: List[Any] = [object()]
    origin = typing.get_origin(base)
    if base is int:
        out += ["3", 2.5, True, float("nan")]
    elif base is float:
        out += ["0.5", float("nan"), float("inf"), -float("inf"), True]
    elif base is bool:
        out += ["true", "no", 1, None if kind is bool else object()]
    elif base is str:
        out += [3, b"bytes"]
    elif base is Path:
        out += [3, "a\x00b"]
    elif origin is tuple and typing.get_args(base)[0] is str:  # a tuple of texts (sources, origins)
        out += ["abc", (3, 3, 3), (b"x",)]
    elif origin is tuple:
        out += ["abc", ("x",) * 3, (float("nan"),) * 3]
    elif origin is collections.abc.Sequence:
        out += ["cpu", [3]]
    elif origin in (dict, collections.abc.Mapping):
        out += [[("a", 1)]]
    elif dataclasses.is_dataclass(base):
        out += [{}, "x"]
    if rule.get("choices"):
        out.append("no-such-choice")
    numbers = base in (int, float) or (origin is tuple and base is not str)
    if numbers:
        for key, step in (("low", -1), ("high", 1), ("above", 0), ("below", 0)):
            if rule.get(key) is not None:
                bound = rule[key] + step
                value = bound if base is not int or key in ("above", "below") else int(bound)
                if origin is tuple:
                    args = typing.get_args(base)
                    value = (value,) * (3 if len(args) == 3 else 2 if args[-1] is not Ellipsis else 4)
                out.append(value)
    return [v for v in out if not (kind is not bool and v is None and _allows_none(kind))]


def _allows_none(kind: Any) -> bool:
    return typing.get_origin(kind) is Union and type(None) in typing.get_args(kind)
