"""Exceptions of the export tools. They subclass `g2d_edge.errors.G2DError`, so one `except G2DError` covers all."""
from __future__ import annotations

from typing import Any, Optional

from g2d_edge.errors import G2DError


class ExportError(G2DError):
    """An export step failed (model cannot be loaded or traced, the graph is invalid, a file cannot be written)."""


class ParityError(ExportError):
    """The exported graph does not reproduce the PyTorch model closely enough; nothing was written.

    `report` is the `ParityReport` (or engine check) that failed.
    """

    def __init__(self, message: str, report: Optional[Any] = None) -> None:
        super().__init__(message)
        self.report = report


class EngineBuildError(ExportError):
    """TensorRT could not parse the ONNX graph or build an engine (its error messages are quoted)."""
