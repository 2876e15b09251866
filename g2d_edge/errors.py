"""Exceptions raised by g2d-edge (runtime, training and export tools). Every one of them says what the user can do
about it; one `except G2DError` covers them all."""
from __future__ import annotations

from typing import Any, Optional


class G2DError(Exception):
    """Base class of every error g2d-edge raises on purpose."""


class ImageReadError(G2DError):
    """An image file is missing, unreadable or not an image, or an array is not a valid BGR frame."""


class NoFaceError(G2DError):
    """No face was found where one was required (enrolment, verification)."""


class ModelError(G2DError):
    """A model file (ONNX, TensorRT engine, sidecar) is missing, corrupt or does not match this build."""


class ServerReplyError(ModelError):
    """A model server (Triton) answered, but not with a valid reply for this model: garbage, invalid JSON, a malformed
    model configuration, or outputs of the wrong shape or with NaN. The server is at fault, not the local model
    file."""


class BackendUnavailableError(ModelError):
    """The requested inference backend cannot run here (a package or a GPU is missing)."""


class InputError(G2DError, ValueError):
    """A batch or argument handed to the SDK has the wrong dtype, shape or value."""


class GalleryError(G2DError):
    """A gallery is empty, corrupt, or was made with another model's embedding space."""


class CaptureError(G2DError):
    """A frame source (camera, file, URL, folder) cannot be opened, does not answer in time, or has ended for good."""


class ClosedError(G2DError):
    """An object (a `Recognizer`) was used after `close()`: create a new one."""


class GalleryUnavailableError(GalleryError, BackendUnavailableError):
    """A gallery database cannot be reached (server down or unreachable, wrong address, local database held by
    another process) or its client package is not installed. Both a GalleryError and a BackendUnavailableError."""


class ExportError(G2DError):
    """An export or engine-build step failed (model cannot be loaded or traced, the graph is invalid, a file cannot be
    written)."""


class ParityError(ExportError):
    """An exported graph or a built engine does not reproduce its reference closely enough; nothing was written.

    `report` is the `ParityReport` (or engine check) that failed.
    """

    def __init__(self, message: str, report: Optional[Any] = None) -> None:
        super().__init__(message)
        self.report = report


class EngineBuildError(ExportError):
    """TensorRT could not parse the ONNX graph or build an engine (its error messages are quoted)."""
