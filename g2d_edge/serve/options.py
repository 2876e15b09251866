"""`ServeOptions`: everything `g2d serve` is told, checked once (a frozen dataclass validating itself)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..errors import InputError, check_fields, option
from ..imagesize import DEFAULT_MAX_IMAGE_PIXELS, PIXEL_LIMIT
from ..gallery.protocol import THRESHOLD_RANGE

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

    gallery: str = option("people.g2d", non_empty=True)
    sources: Tuple[str, ...] = ()
    host: str = option("127.0.0.1", non_empty=True)
    port: int = option(8000, low=0, high=65535)
    api_key: Optional[str] = None
    auth: str = option("write", choices=AUTH_MODES)
    max_upload_bytes: int = option(DEFAULT_MAX_UPLOAD_BYTES, low=1024, high=2**40, unit="bytes")
    max_image_pixels: int = option(DEFAULT_MAX_IMAGE_PIXELS, **PIXEL_LIMIT)
    queue_size: int = option(16, low=1, high=10_000)
    workers: int = option(1, low=1, high=64)
    cors_origins: Tuple[str, ...] = ()
    webhook_url: Optional[str] = None
    webhook_cooldown_s: float = option(30.0, low=0, below=1e6, unit="seconds")
    realtime: bool = True
    loop_files: bool = True
    model: Optional[str] = None
    backend: str = option("auto", non_empty=True)
    threshold: Optional[float] = option(None, **THRESHOLD_RANGE)
    masked_templates: int = option(0, low=0, high=16)

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.gallery.strip():
            raise InputError("ServeOptions.gallery must name a gallery file or database URL")
        if not all(self.sources):
            raise InputError(f"ServeOptions.sources must be non-empty strings, got {self.sources!r}")
        if self.api_key is not None and len(self.api_key) < 8:
            raise InputError("ServeOptions.api_key must be a string of at least 8 characters")
        if self.webhook_url is not None and not self.webhook_url.startswith(("http://", "https://")):
            raise InputError(f"ServeOptions.webhook_url must be an http:// or https:// URL, got {self.webhook_url!r}")
        if "*" in self.cors_origins:
            raise InputError("ServeOptions.cors_origins must be a tuple of origins (https://host:port); '*' is not "
                             "allowed beside an API key")
