"""Shared pytest fixtures. Real photos come from ../shared/ beside the repo (as on every dev machine and in CI)."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
CELEBA_DIR = SHARED_DIR / "data" / "celeba-train"
POOL_DIR = SHARED_DIR / "data" / "faces-pool"


@pytest.fixture(scope="session")
def celeba_dir() -> Path:
    """The labelled real photos (<identity>/<file>.jpg) of ../shared/data/celeba-train."""
    if not CELEBA_DIR.is_dir():
        pytest.skip(f"real photos not found at {CELEBA_DIR} (../shared/ beside the repo)")
    return CELEBA_DIR


@pytest.fixture(scope="session")
def celeba_people(celeba_dir: Path) -> dict:
    """A few real people: {identity: [photo paths]} (sorted, first 4 identities with >= 3 photos)."""
    people = {}
    for ident in sorted(p for p in celeba_dir.iterdir() if p.is_dir()):
        photos = sorted(ident.glob("*.jpg"))
        if len(photos) >= 3:
            people[ident.name] = photos
        if len(people) == 4:
            break
    return people
