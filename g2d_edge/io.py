"""Reading images from disk (or taking arrays) with errors a user can act on, and the one check of a BGR frame
(`check_bgr_frame`, used by detection, drawing, masks and video alike).

OpenCV's `cv2.imread` returns `None` for a missing file, a directory or corrupt bytes alike; these helpers tell the
cases apart and raise `ImageReadError` with the path and what to do, instead of letting a `None` travel on until
NumPy or OpenCV fails far away. They also refuse what would hang or exhaust the machine: a FIFO or device path
(never opened for reading), and an image whose header claims more than `max_pixels` pixels (checked before
decoding, see `g2d_edge.imagesize`).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import cv2
import numpy as np

from .errors import ImageReadError, InputError, check_value
from .files import read_regular_file
from .imagesize import DEFAULT_MAX_IMAGE_PIXELS, PIXEL_LIMIT, SUPPORTED_FORMATS, image_size
from .text import printable

#: File suffixes treated as images when a folder is scanned (lower case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

#: What `read_image` / `load_image` accept: a path, or an HxWx3 uint8 BGR array.
ImageLike = Union[str, os.PathLike, np.ndarray]

#: Widest frame (longer side / shorter side) the SDK takes; a frame beyond it is an InputError. 20:1 holds every
#: camera and panorama format in use (a 360-degree strip is 4:1 to 8:1) and keeps a strip of a few pixels from
#: costing gigabytes in detection.
MAX_ASPECT_RATIO = 20.0


def check_bgr_frame(frame: np.ndarray) -> np.ndarray:
    """Return `frame` if it is a valid HxWx3 uint8 BGR image, else raise InputError saying what is wrong."""
    if not isinstance(frame, np.ndarray):
        raise InputError(f"expected a BGR image as a numpy array (as cv2.imread gives), got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"expected a uint8 BGR image, got dtype {frame.dtype}; convert with frame.astype(np.uint8)")
    if frame.ndim == 2:
        raise InputError("expected a colour BGR image (H, W, 3), got a grayscale (H, W) array; "
                         "use cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"expected a BGR image of shape (H, W, 3), got {frame.shape}")
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise InputError(f"image is too small to hold a face: {frame.shape[1]}x{frame.shape[0]} px")
    long_side, short_side = max(frame.shape[:2]), min(frame.shape[:2])
    if long_side > MAX_ASPECT_RATIO * short_side:
        raise InputError(f"image is too narrow to hold a face: {frame.shape[1]}x{frame.shape[0]} px, an aspect ratio "
                         f"of {long_side / short_side:.0f}:1 (at most {MAX_ASPECT_RATIO:g}:1); crop it to the part "
                         "with the faces")
    return frame


def read_image(path: Union[str, os.PathLike], max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 BGR array.

    Grayscale and alpha images are converted to 3-channel BGR. Non-ASCII paths work (the bytes are read with
    Python and decoded by OpenCV). Formats: JPEG, PNG, BMP, WebP, TIFF, PBM/PGM/PPM.

    Args:
        path: the image file.
        max_pixels: refuse images whose header claims more than this many pixels (width x height), before
            decoding them.

    Raises:
        ImageReadError: the file is missing, is a directory or not a regular file (FIFO, device), cannot be read,
            is larger than `max_pixels`, or is not a decodable image.
        InputError: `max_pixels` is not a positive whole number.
    """
    max_pixels = check_value("max_pixels", max_pixels, int, **PIXEL_LIMIT)
    p = Path(path)
    return decode_image(_read_bytes(p), max_pixels, str(p))


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, label: str = "image") -> np.ndarray:
    """Decode an encoded image (the bytes of a JPEG, PNG, BMP, WebP, TIFF or PBM/PGM/PPM file) as HxWx3 uint8 BGR,
    with `read_image`'s checks: its header's size is read first and more than `max_pixels` pixels is refused before
    anything is decoded. `label` names the image in messages (a file name, "upload").

    Raises:
        ImageReadError: empty data, an unknown or corrupt format, or more than `max_pixels` pixels.
        InputError: `max_pixels` is not a positive whole number.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise InputError(f"max_pixels must be a positive whole number, got {max_pixels!r}")
    p = printable(label)
    if not data:
        raise ImageReadError(f"image {p} is empty (0 bytes)")
    size = image_size(data)
    if size is None:
        raise ImageReadError(f"cannot decode {p}: not an image or the file is corrupt "
                             f"(supported: {', '.join(SUPPORTED_FORMATS)})")
    _check_pixels(p, size, int(max_pixels))
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV's own limits and decoder failures
        raise ImageReadError(f"cannot decode {p}: {str(exc).strip().splitlines()[-1]}") from None
    if image is None:
        raise ImageReadError(f"cannot decode {p}: not an image or the file is corrupt "
                             f"(supported: {', '.join(SUPPORTED_FORMATS)})")
    if image.shape[:2] != (size[1], size[0]):  # the header lied (e.g. a TIFF tag listed twice): the decoded size counts
        _check_pixels(p, (image.shape[1], image.shape[0]), int(max_pixels))
    return image


def _read_bytes(p: Path) -> bytes:
    """The file's bytes; ImageReadError for a missing path, a directory, a FIFO/device or a read error."""
    try:
        return read_regular_file(p)
    except ValueError:
        raise ImageReadError(f"{printable(p)} is not a valid path (it contains a NUL character)") from None
    except FileNotFoundError:
        raise ImageReadError(f"image not found: {p}; check the path") from None
    except IsADirectoryError:
        raise ImageReadError(f"{p} is a directory, not an image file; pass the image files inside it") from None
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise ImageReadError(f"{p} is not a regular file (a FIFO, socket or device); pass an image file") \
                from None
        raise ImageReadError(f"cannot read image {p}: {exc.strerror or exc}") from exc


def _check_pixels(p: str, size: tuple, max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageReadError(
            f"image {p} is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels), above the limit of "
            f"{max_pixels / 1e6:g} megapixels (max_pixels={max_pixels}); downscale it, or if you trust it raise "
            "the limit: read_image(..., max_pixels=N), RecognizerOptions(max_image_pixels=N), "
            "CaptureOptions(max_image_pixels=N) or `g2d ... --max-pixels N`")


def load_image(image: ImageLike, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Return a BGR uint8 image from a path (read with `read_image`, refusing more than `max_pixels` pixels) or
    an array (validated, not copied).

    Raises:
        ImageReadError: a path that cannot be read as an image.
        InputError: an array that is not HxWx3 uint8.
    """
    if isinstance(image, np.ndarray):
        return check_bgr_frame(image)
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, max_pixels)
    raise ImageReadError(f"expected an image path or a BGR numpy array, got {type(image).__name__}")


def describe(image: ImageLike, index: int = 0) -> str:
    """A short human label for an image argument, used in error messages ("photo.jpg", "image #2 (array)")."""
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    return f"image #{index} (array)"


def is_image_file(path: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> bool:
    """Whether a folder scan takes `path`: a file with an image suffix whose name is not hidden (".x.jpg", e.g. the
    "._x.jpg" resource forks macOS leaves, is not an image)."""
    return path.suffix.lower() in suffixes and not path.name.startswith(".") and path.is_file()


def list_images(folder: Union[str, os.PathLike], recursive: bool = False,
                suffixes: Sequence[str] = IMAGE_SUFFIXES) -> List[Path]:
    """The image files of `folder` (with `recursive`, of its sub-folders too, except hidden ones), sorted by path.

    The one image-folder reader of the SDK, training (`train.prepare`, evaluation) and INT8 calibration: one list of
    suffixes (`IMAGE_SUFFIXES`), hidden files skipped.

    Raises:
        ImageReadError: the folder does not exist or is not a directory.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError(f"image folder not found: {root}")
    wanted = tuple(s.lower() for s in suffixes)
    if not recursive:
        return sorted(p for p in root.iterdir() if is_image_file(p, wanted))
    return sorted(p for p in root.rglob("*") if is_image_file(p, wanted)
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def list_people(folder: Union[str, os.PathLike],
                suffixes: Sequence[str] = IMAGE_SUFFIXES) -> List[Tuple[str, List[Path]]]:
    """`(name, photos)` of every person of a `folder/<person>/<photo>` tree: one sub-folder per person (hidden ones
    skipped), its images as `list_images` finds them; sorted by name, people without a photo left out (see
    `scan_people` for what was left out and why).

    Raises:
        ImageReadError: the folder does not exist or is not a directory.
    """
    return scan_people(folder, suffixes)[0]


def scan_people(folder: Union[str, os.PathLike], suffixes: Sequence[str] = IMAGE_SUFFIXES
                ) -> Tuple[List[Tuple[str, List[Path]]], List[Tuple[Path, str]]]:
    """`list_people`'s people, and `(path, reason)` of everything else in the tree that is not hidden: a file beside
    the person folders ("not a person folder"), a person folder without a photo ("no photos"), a file in a person
    folder that is not an image ("not an image file")."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError(f"image folder not found: {root} (expected one sub-folder of photos per person)")
    wanted = tuple(s.lower() for s in suffixes)
    people: List[Tuple[str, List[Path]]] = []
    left_out: List[Tuple[Path, str]] = []
    for entry in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        if not entry.is_dir():
            left_out.append((entry, "not a person folder"))
            continue
        photos = list_images(entry, suffixes=wanted)
        left_out += [(f, "not an image file") for f in sorted(entry.iterdir())
                     if not f.name.startswith(".") and f not in photos]
        if photos:
            people.append((entry.name, photos))
        else:
            left_out.append((entry, "no photos"))
    return people, left_out
