"""Tiny generated training data for the pipeline tests: face-like 112x112 drawings of a few "people".

Each identity has its own face shape, skin / hair / eye colours and mouth; each photo adds a small shift, lighting
change, background and noise. Keypoints are the ArcFace template (shifted with the face), the mesh is NaN (masks
are placed from keypoints), exactly as an `AlignedCache` from `prepare` would hold them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import cv2
import numpy as np

from g2d_edge.align import ARCFACE_TEMPLATE_5
from g2d_edge.masks.facemesh import MESH_POINTS
from train.prepare import AlignedCache


def _identity(k: int, seed: int) -> Dict[str, Any]:
    rng = np.random.default_rng([seed, k])
    return {
        "skin": rng.uniform(60, 230, 3), "hair": rng.uniform(0, 255, 3), "eye": rng.uniform(0, 255, 3),
        "face_w": int(rng.integers(28, 40)), "face_h": int(rng.integers(38, 48)), "eye_r": int(rng.integers(3, 8)),
        "mouth_w": int(rng.integers(6, 16)), "hair_h": int(rng.integers(8, 30)), "brow": int(rng.integers(0, 3)),
    }


def draw_face(ident: Dict[str, Any], rng: np.random.Generator) -> tuple:
    """One photo of an identity: (112x112x3 uint8 BGR image, (6, 2) keypoints: eyes, nose, mouth, ears)."""
    img = np.empty((112, 112, 3), np.uint8)
    img[:] = rng.uniform(0, 255, 3).astype(np.uint8)
    dx, dy = rng.integers(-3, 4, 2)
    light = rng.uniform(0.8, 1.2)
    cx, cy = 56 + dx, 66 + dy
    col = lambda c: tuple(float(np.clip(v * light, 0, 255)) for v in c)  # noqa: E731
    cv2.ellipse(img, (cx, cy - 18), (ident["face_w"] + 4, ident["hair_h"] + 14), 0, 180, 360, col(ident["hair"]), -1)
    cv2.ellipse(img, (cx, cy), (ident["face_w"], ident["face_h"]), 0, 0, 360, col(ident["skin"]), -1)
    tpl = ARCFACE_TEMPLATE_5 + np.array([dx, dy])
    for x, y in tpl[:2]:
        cv2.circle(img, (int(x), int(y)), ident["eye_r"], col(ident["eye"]), -1)
        cv2.circle(img, (int(x), int(y)), 2, (10, 10, 10), -1)
        if ident["brow"]:
            cv2.line(img, (int(x) - 6, int(y) - 9), (int(x) + 6, int(y) - 9 - ident["brow"]), (30, 30, 30), 2)
    nose = tpl[2]
    cv2.line(img, (int(nose[0]), int(nose[1]) - 12), (int(nose[0]) + 3, int(nose[1])), col(ident["skin"] * 0.6), 2)
    mouth = tpl[3:].mean(axis=0)
    cv2.ellipse(img, (int(mouth[0]), int(mouth[1])), (ident["mouth_w"], 3), 0, 0, 360, (40, 40, 160), -1)
    noise = rng.normal(0, 5, img.shape)
    img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    kps = np.vstack([tpl[:3], mouth[None], [[cx - ident["face_w"], cy - 5], [cx + ident["face_w"], cy - 5]]])
    return img, kps.astype(np.float32)


def make_tiny_cache(path: Path, identities: int = 6, photos: int = 6, seed: int = 0, labelled: bool = True,
                    name_prefix: str = "person") -> AlignedCache:
    """Write and return a generated `AlignedCache` of `identities` x `photos` faces."""
    rng = np.random.default_rng(seed + 1000)
    images, kps, labels, paths = [], [], [], []
    names = [f"{name_prefix}{k:02d}" for k in range(identities)]
    for k, name in enumerate(names):
        ident = _identity(k, seed)
        for j in range(photos):
            img, kp = draw_face(ident, rng)
            images.append(img)
            kps.append(kp)
            labels.append(k if labelled else -1)
            paths.append(f"{name}/{j}.png")
    n = len(images)
    cache = AlignedCache(
        images=np.stack(images), labels=np.array(labels, np.int64),
        identities=np.array(names if labelled else [], dtype=str), paths=np.array(paths, dtype=str),
        keypoints=np.stack(kps), mesh=np.full((n, MESH_POINTS, 2), np.nan, np.float32),
        boxes=np.tile(np.array([[14, 14, 98, 98]], np.float32), (n, 1)),
        matrices=np.tile(np.array([[[1, 0, 0], [0, 1, 0]]], np.float32), (n, 1, 1)),
        summary={"root": "generated", "labelled": labelled, "images_found": n, "images_kept": n},
    )
    cache.save(path)
    return cache


def tiny_teacher(cache_path: Path, out: Path, nan_rows: Optional[list] = None) -> np.ndarray:
    """A teacher cache from `RandomConvTeacher` (a fixed function of the clean face); `nan_rows` mark failures."""
    from train.teacher import build_teacher_cache

    emb = build_teacher_cache(cache_path, out, teacher="random")
    if nan_rows:
        emb[nan_rows] = np.nan
        np.save(out, emb)
    return emb


def tiny_config(tmp: Path, epochs: int = 4, **stage_overrides: Any) -> Dict[str, Any]:
    """A config dict for the tiny data in `tmp` (labelled `celeb.npz` + unlabelled `pool.npz` with teachers).

    The reformer and classifier stages are cheap per step and get more epochs (their per-epoch loss is noisier).
    """
    stage = {"epochs": epochs, "batch_size": 12, "num_workers": 0, "log_every": 2, "warmup": 0.3, "amp": False,
             **stage_overrides}
    return {
        "name": "tiny",
        "run_dir": str(tmp / "run"),
        "device": "cpu",
        "model": {"preset": "tiny", "embedding_dim": 32},
        "data": {
            "sources": [
                {"name": "celeb", "cache": str(tmp / "celeb.npz"), "teacher": str(tmp / "celeb_teacher.npy")},
                {"name": "pool", "cache": str(tmp / "pool.npz"), "teacher": str(tmp / "pool_teacher.npy"),
                 "labelled": False},
            ],
            "val_identities": 2,
            "split_seed": 0,
        },
        "stages": {
            "inpaint": {**stage, "lr": 3e-3},
            "encoder": {**stage, "lr": 1e-3},
            "reformer": {**stage, "epochs": 2 * epochs + 2, "batch_size": 16, "lr": 1e-2},
            "classifier": {**stage, "epochs": 2 * epochs + 2, "lr": 5e-2},
        },
        "eval": {"pairs": 60, "folds": 3, "far": [0.1]},
    }


def make_tiny_data(tmp: Path) -> Path:
    """Labelled (6 people x 6 photos, teacher row 1 failed) and unlabelled (36 faces) caches with teacher caches."""
    make_tiny_cache(tmp / "celeb.npz", identities=6, photos=6, seed=0)
    make_tiny_cache(tmp / "pool.npz", identities=36, photos=1, seed=7, labelled=False, name_prefix="pool")
    tiny_teacher(tmp / "celeb.npz", tmp / "celeb_teacher.npy", nan_rows=[1])
    tiny_teacher(tmp / "pool.npz", tmp / "pool_teacher.npy")
    return tmp
