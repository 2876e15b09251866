"""The one face aligner shared by training and the SDK.

Keypoints -> least-squares similarity transform (Umeyama) onto the standard ArcFace 112x112 template -> warped crop.
`train/` imports this module, so training crops and deployment crops are made by the same function.
"""
from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

from .errors import InputError

ALIGNED_SIZE = 112

#: ArcFace template for a 112x112 crop, in image coordinates: the eye on the image's left, the eye on the image's
#: right, nose tip, mouth corner on the image's left, mouth corner on the image's right.
ARCFACE_TEMPLATE_5 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)

#: The 4 points MediaPipe's face detector gives that the template also has: both eyes, nose tip, mouth centre.
ARCFACE_TEMPLATE_4 = np.vstack([ARCFACE_TEMPLATE_5[:3], ARCFACE_TEMPLATE_5[3:].mean(axis=0, keepdims=True)])


def keypoints_to_template_points(keypoints: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Pair keypoints with the template points they correspond to.

    Accepts 5 ArcFace-style points (eyes, nose, mouth corners, image-left first) or MediaPipe's 6 face-detector
    keypoints (eye, eye, nose tip, mouth centre, ear, ear; ears are ignored as they are unreliable on turned heads).
    The two eyes are ordered by x so that the image-left eye always maps to the template's left eye.
    Returns (source points, template points), both float64 (K, 2).
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    if kps.ndim != 2 or kps.shape[1] != 2 or kps.shape[0] not in (5, 6):
        raise InputError(f"keypoints must be a (5, 2) or (6, 2) array, got shape {kps.shape}")
    if not np.all(np.isfinite(kps)):
        raise InputError("keypoints contain NaN or infinity")
    if kps.shape[0] == 5:
        src = kps.copy()
        if src[0, 0] > src[1, 0]:
            src[[0, 1]] = src[[1, 0]]
        if src[3, 0] > src[4, 0]:
            src[[3, 4]] = src[[4, 3]]
        return src, ARCFACE_TEMPLATE_5
    src = kps[:4].copy()
    if src[0, 0] > src[1, 0]:
        src[[0, 1]] = src[[1, 0]]
    return src, ARCFACE_TEMPLATE_4


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst (Umeyama 1991).

    Returns the 2x3 matrix M with dst ~= M @ [x, y, 1].
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = src.shape[0]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c ** 2).sum() / n
    if var_s < 1e-12:
        raise InputError("keypoints are degenerate (all at one place); cannot align")
    cov = d_c.T @ s_c / n
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def estimate_alignment(keypoints: np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """2x3 matrix taking frame coordinates to the `size` x `size` aligned crop (template scaled from 112)."""
    src, dst = keypoints_to_template_points(keypoints)
    return similarity_transform(src, dst * (size / ALIGNED_SIZE))


def align_face(image: np.ndarray, keypoints: np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """Warp the face given by `keypoints` (frame pixels) in `image` (HxWx3 uint8) to a size x size aligned crop."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must be an HxWx3 array, got {getattr(image, 'shape', type(image))}")
    matrix = estimate_alignment(keypoints, size)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (K, 2) points."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]
