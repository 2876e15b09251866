"""Reading images from disk (or taking arrays) with errors a user can act on.

OpenCV's `cv2.imread` returns `None` for a missing file, a directory or corrupt bytes alike; these helpers tell the
three apart and raise `ImageReadError` with the path and what to do, instead of letting a `None` travel on until
NumPy or OpenCV fails far away.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Union

import cv2
import numpy as np

from .detect import check_bgr_frame
from .errors import ImageReadError

#: File suffixes treated as images when a folder is scanned (lower case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

#: What `read_image` / `load_image` accept: a path, or an HxWx3 uint8 BGR array.
ImageLike = Union[str, os.PathLike, np.ndarray]


def read_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 BGR array.

    Grayscale and alpha images are converted to 3-channel BGR. Non-ASCII paths work (the bytes are read with
    Python and decoded by OpenCV).

    Raises:
        ImageReadError: the file is missing, is a directory, cannot be read, or is not a decodable image.
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"image not found: {p}; check the path")
    if p.is_dir():
        raise ImageReadError(f"{p} is a directory, not an image file; pass the image files inside it")
    try:
        data = np.fromfile(str(p), dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"cannot read image {p}: {exc.strerror or exc}") from exc
    if data.size == 0:
        raise ImageReadError(f"image file {p} is empty (0 bytes)")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(f"cannot decode {p}: not an image or the file is corrupt "
                             f"(supported: {', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)})")
    return image


def load_image(image: ImageLike) -> np.ndarray:
    """Return a BGR uint8 image from a path (read with `read_image`) or an array (validated, not copied).

    Raises:
        ImageReadError: a path that cannot be read as an image.
        InputError: an array that is not HxWx3 uint8.
    """
    if isinstance(image, np.ndarray):
        return check_bgr_frame(image)
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    raise ImageReadError(f"expected an image path or a BGR numpy array, got {type(image).__name__}")


def describe(image: ImageLike, index: int = 0) -> str:
    """A short human label for an image argument, used in error messages ("photo.jpg", "image #2 (array)")."""
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    return f"image #{index} (array)"


def list_images(folder: Union[str, os.PathLike]) -> List[Path]:
    """Image files directly inside `folder`, sorted by name.

    Raises:
        ImageReadError: the folder does not exist or is not a directory.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError(f"image folder not found: {root}")
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
