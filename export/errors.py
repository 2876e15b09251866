"""The export tools' exceptions, kept importable here; they live in `g2d_edge.errors` (the engine builder, which
raises them, is part of the runtime) and subclass `G2DError`, so one `except G2DError` covers all."""
from __future__ import annotations

from g2d_edge.errors import EngineBuildError, ExportError, ParityError

__all__ = ["ExportError", "ParityError", "EngineBuildError"]
