"""The `g2d` command line (`g2d enroll | identify | verify | gallery`; `python -m g2d_edge` runs it too).

Modules: `commands.py` (the parser and the commands), `support.py` (the exit-status and error-line convention the
three command lines share).
"""
from __future__ import annotations

from .commands import main

__all__ = ["main"]
