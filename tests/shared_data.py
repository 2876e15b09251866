"""Where the tests find what is too large for the repo: real photos and models in the team's shared folder.

The folder is `$G2D_SHARED_DATA` when set, else `../shared` beside the repo (every dev machine and the CI box).
Tests that need it skip with `missing(...)`'s reason, which names the variable; `tests/conftest.py` counts those
skips, prints one line about them at the end of the run and, under CI (`CI=true`), fails the run.
"""
from __future__ import annotations

import os
from pathlib import Path

#: The environment variable that points the tests at the shared folder.
DATA_ENV = "G2D_SHARED_DATA"
REPO_DIR = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get(DATA_ENV) or REPO_DIR.parent / "shared").expanduser()


def missing(what: str, path: Path) -> str:
    """The skip reason of a test whose data is missing (it names `DATA_ENV`, which is how the skips are counted)."""
    return f"{what} not found at {path} (set {DATA_ENV}=/path/to/shared; default: ../shared beside the repo)"
