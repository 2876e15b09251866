"""`ServeOptions`: everything `g2d serve` is told, checked once (a frozen dataclass validating itself)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..errors import InputError
from ..imagesize import DEFAULT_MAX_IMAGE_PIXELS

#: Largest request body accepted by default (bytes): a few phone photos in one enrolment.
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Who needs the API key: "write" (enrol, remove, rename; the default) or "all" (every endpoint but the page itself).
AUTH_MODES = ("write", "all")


@dataclass(frozen=True)
class ServeOptions:
    """How `g2d serve` runs.

    gallery: the gallery file or database URL (created if missing, as `g2d enroll` does).
    sources: frame sources for live recognition, as `g2d identify` takes them (video file, camera index, URL ...).
    host, port: where to listen; 127.0.0.1 (this machine only) unless told otherwise; port 0 picks a free one.
    api_key: the key write endpoints (and with auth="all" every endpoint) need; see `g2d_edge.serve.auth`.
    auth: "write" or "all" (`AUTH_MODES`).
    max_upload_bytes: larger request bodies are refused with 413 before they are read to the end.
    max_image_pixels: larger images (read from their header, before decoding) are refused with 413.
    queue_size: identify / verify / enrol requests waiting for a worker; more answer 503 with Retry-After.
    workers: recognisers serving requests (each its own detector and model session).
    cors_origins: origins a browser may call the API from (none: CORS off).
    webhook_url: POSTed a JSON event per recognised person (http:// or https://), at most once per track and
        `webhook_cooldown_s` seconds.
    realtime: play video files at their own frame rate (else as fast as they can be recognised); loop_files: start
        a video file again when it ends.
    model, backend, threshold, masked_templates: the recognisers' (as `g2d identify` / `g2d enroll` take them).
    """

    gallery: str
    sources: Tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: Optional[str] = None
    auth: str = "write"
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    queue_size: int = 16
    workers: int = 1
    cors_origins: Tuple[str, ...] = ()
    webhook_url: Optional[str] = None
    webhook_cooldown_s: float = 30.0
    realtime: bool = True
    loop_files: bool = True
    model: Optional[str] = None
    backend: str = "auto"
    threshold: Optional[float] = None
    masked_templates: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.gallery, str) or not self.gallery.strip():
            raise InputError("ServeOptions.gallery must name a gallery file or database URL")
        if not isinstance(self.sources, tuple) or not all(isinstance(s, str) and s for s in self.sources):
            raise InputError(f"ServeOptions.sources must be a tuple of non-empty strings, got {self.sources!r}")
        if self.auth not in AUTH_MODES:
            raise InputError(f"ServeOptions.auth must be one of {', '.join(AUTH_MODES)}, got {self.auth!r}")
        if self.api_key is not None and (not isinstance(self.api_key, str) or len(self.api_key) < 8):
            raise InputError("ServeOptions.api_key must be a string of at least 8 characters")
        for name, low, high in (("port", 0, 65535), ("max_upload_bytes", 1024, None), ("max_image_pixels", 1, None),
                                ("queue_size", 1, 10_000), ("workers", 1, 64), ("masked_templates", 0, 16)):
            _check_whole(name, getattr(self, name), low, high)
        if not isinstance(self.webhook_cooldown_s, (int, float)) or not 0 <= self.webhook_cooldown_s < 1e6:
            raise InputError(f"ServeOptions.webhook_cooldown_s must be a number of seconds >= 0, "
                             f"got {self.webhook_cooldown_s!r}")
        if self.webhook_url is not None and not str(self.webhook_url).startswith(("http://", "https://")):
            raise InputError(f"ServeOptions.webhook_url must be an http:// or https:// URL, got {self.webhook_url!r}")
        if not isinstance(self.cors_origins, tuple) or "*" in self.cors_origins:
            raise InputError("ServeOptions.cors_origins must be a tuple of origins (https://host:port); '*' is not "
                             "allowed beside an API key")


def _check_whole(name: str, value: object, low: int, high: Optional[int]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        limits = f">= {low}" if high is None else f"from {low} to {high}"
        raise InputError(f"ServeOptions.{name} must be a whole number {limits}, got {value!r}")
