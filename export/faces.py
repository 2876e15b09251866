"""Aligned face batches for export checks and INT8 calibration, kept importable here; they live in the runtime,
`g2d_edge.backends.faces` (the engine builder calibrates with them on the target box)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Union

from g2d_edge.backends.faces import (DEFAULT_FACE_CACHE, align_folder, load_cached_faces, load_calibration_faces,
                                     synthetic_faces)
from g2d_edge.io import list_images

__all__ = ["DEFAULT_FACE_CACHE", "align_folder", "list_image_files", "load_cached_faces", "load_calibration_faces",
           "synthetic_faces"]


def list_image_files(root: Union[str, Path]) -> List[Path]:
    """Image files under `root`, recursively and sorted (`g2d_edge.io.list_images(root, recursive=True)`)."""
    return list_images(root, recursive=True)
